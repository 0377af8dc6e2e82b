"""Lab 6 (chapter 6): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
