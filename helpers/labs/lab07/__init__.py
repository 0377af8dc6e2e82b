"""Lab 7 (chapter 7): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
