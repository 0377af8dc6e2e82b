"""Lab 10: int8 quantization and integrated gradients (checks, PyTorch and JAX adapters)."""
