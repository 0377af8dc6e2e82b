"""Lab 2 (chapter 2): checks in ``checks.py``; adapters in ``torch.py``, ``jax.py``.

``checks.py`` re-exports the exercises' modules: ``backprop.py``, ``gru.py``, ``attention.py``,
``attention_backward.py``.
"""
