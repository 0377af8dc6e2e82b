"""Lab 4 (chapter 4): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
