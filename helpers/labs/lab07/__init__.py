"""Lab 7 (chapter 7): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``.

``checks.py`` re-exports the exercises' modules: ``returns.py`` (exercises 1, 2), ``ppo.py`` (3),
``vtrace.py`` (4, V-trace targets, beyond the chapter).
"""
