"""Lab 1 (chapter 1): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
