"""Lab 1 (chapter 1): checks in ``checks.py`` (hints and known mistakes in ``mistakes.py``);
adapters in ``torch.py``, ``jax.py``."""
