"""Lab 1 (chapter 1): checks in ``checks.py`` (hints and known mistakes in ``mistakes.py``),
``topk.py`` (exercise 2) and ``directional.py`` (exercise 4); adapters in ``torch.py`` and
``jax.py``."""
