"""Lab 10: int8 quantization, integrated gradients and fake quantization with a
straight-through estimator (checks, PyTorch and JAX adapters)."""
