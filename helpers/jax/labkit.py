"""What every lab's JAX adapter shares: how a check hands arrays over and reads them back.

``helpers/labs/labNN/jax.py`` builds its :class:`~helpers.labs.kit.Framework` here, giving
only what is particular to its lab (its hints and how to explain JAX's errors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import jet

from helpers.labs.kit import Framework, Hints, WatchedCalls, recording

__all__ = ["TRACER_ERRORS", "autodiff_calls", "lab_framework", "to_numpy"]
__framework_only__ = (
    "TRACER_ERRORS",
)  # PyTorch runs eagerly: no tracers to turn concrete

# What tracing raises when code uses a traced value in Python (int(), float(), if, NumPy):
# the exception type names, for a lab's ``explainer(..., types=...)``.
TRACER_ERRORS = (
    "ConcretizationTypeError",
    "TracerArrayConversionError",
    "TracerBoolConversionError",
    "TracerIntegerConversionError",
)


def to_numpy(value: object) -> np.ndarray:
    """A JAX array as numpy; ``TypeError`` (naming the type) for anything that is not one."""
    if not isinstance(value, jax.Array):
        raise TypeError(type(value).__name__)
    return np.asarray(value)


def lab_framework(
    hints: Hints,
    explain: Callable[[BaseException], str | None],
    side_effects: Callable[[Any], str | None] | None = None,
) -> Framework:
    """The JAX ``Framework`` of one lab: its ``hints``, ``explain`` and ``side_effects``."""
    extra = {} if side_effects is None else {"side_effects": side_effects}
    return Framework(
        name="jax",
        array_type="a jax.Array",
        from_numpy=jnp.asarray,
        to_numpy=to_numpy,
        hints=hints,
        explain=explain,
        **extra,
    )


# JAX's autodiff, watched through its public names...
_PUBLIC_AUTODIFF = [
    (jax, name)
    for name in (
        "grad",
        "value_and_grad",
        "vjp",
        "jvp",
        "jacrev",
        "jacfwd",
        "jacobian",
        "hessian",
        "linearize",
        "linear_transpose",
    )
] + [(nnx, name) for name in ("grad", "value_and_grad", "vjp", "jvp")]
# ...and through the functions of JAX's ad module that all of them run, so that a name
# imported before the watch (from jax import grad) is seen too. Internal names: each is
# watched only where this JAX has it, and a calibration says whether they still work.
_AD_INTERNALS = ("jvp", "linearize", "backward_pass", "backward_pass3")
_calibration_grad = jax.grad  # bound now: a name the watcher never replaces


def _ad_internals() -> list[tuple[Any, str, str]]:
    try:
        from jax._src.interpreters import ad
    except ImportError:  # pragma: no cover - a JAX that moved its internals
        return []
    return [
        (ad, name, f"autodiff (JAX's internal ad.{name})")
        for name in _AD_INTERNALS
        if callable(getattr(ad, name, None))
    ]


def _taylor_mode() -> list[tuple[Any, str, str]]:
    """Taylor mode, which runs outside the ad module: ``jax.experimental.jet.jet``, under
    any name, calls its module's ``jet_fun`` (watched where this JAX has it)."""
    if not callable(getattr(jet, "jet_fun", None)):  # pragma: no cover
        return []
    return [(jet, "jet_fun", "jax.experimental.jet.jet")]


def _global_disable_jit() -> bool:
    """The process-wide jax_disable_jit, as a thread without a setting of its own reads it
    (this one may be inside a ``jax.disable_jit`` block)."""
    value: list[bool] = []
    reader = threading.Thread(target=lambda: value.append(jax.config.jax_disable_jit))
    reader.start()
    reader.join()
    return value[0]


@contextmanager
def _jit_off_everywhere() -> Iterator[None]:
    """Jit disabled in this thread and every other: a function compiled earlier, called from
    another thread, would otherwise run its cached trace and differentiate unseen."""
    before = _global_disable_jit()
    jax.config.update("jax_disable_jit", True)
    try:
        with jax.disable_jit():
            yield
    finally:
        jax.config.update("jax_disable_jit", before)


@contextmanager
def autodiff_calls() -> Iterator[WatchedCalls]:
    """Watch JAX's automatic differentiation while the block runs, with jit disabled.

    Yields a :class:`~helpers.labs.kit.WatchedCalls` that gets an entry per call, such as
    ``"jax.grad"`` or ``"autodiff (JAX's internal ad.linearize)"``: the public
    transformations (``jax.grad``, ``vjp``, ``jvp``, ``jacrev``..., ``nnx.grad``...) called
    through their modules, and the functions of ``jax._src.interpreters.ad`` that every one
    of them runs, under whatever name it was imported; and Taylor mode
    (``jax.experimental.jet``). Jit is disabled inside, in every thread (``jax.disable_jit``
    and the global setting, restored after): a function compiled earlier would otherwise run
    its cached trace and differentiate unseen. Before yielding, a calibration differentiates
    through a name bound at import; if the ad functions did not see it (a JAX that renamed
    them) ``complete`` is False. Raises nothing of its own; every watched name is restored
    when the block ends, whatever happens.
    """
    targets = _PUBLIC_AUTODIFF + _ad_internals() + _taylor_mode()
    with _jit_off_everywhere(), recording(targets) as calls:
        _calibration_grad(lambda v: v * v)(1.0)
        complete = bool(calls)
        calls.clear()
        calls.complete = complete
        yield calls
