"""Lab 2 (chapter 2): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``."""
