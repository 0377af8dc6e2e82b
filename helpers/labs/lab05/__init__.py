"""Lab 5 (chapter 5): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
