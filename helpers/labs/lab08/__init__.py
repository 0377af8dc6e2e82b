"""Lab 8 (chapter 8): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
