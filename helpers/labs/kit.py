"""Self-checks for the labs: each check says "passed", or fails with what was expected and a hint.

A check is a function ``check_<exercise>(student_fn)`` in ``helpers/labs/labNN/<framework>.py``. It
runs the student's code on small inputs and compares with an answer computed independently.
Whatever goes wrong (the stub's ``NotImplementedError``, a wrong shape, an exception in the
student's code, a result of any type) ends as one :class:`CheckFailed`, never as an unrelated
traceback; in a notebook it prints as a short message, not a stack of frames from the helpers.

    with checking("preprocess", fw, passed="shape, dtype and values match") as c:
        out = c.call(preprocess, images)          # stub or crash -> CheckFailed
        c.expect(out.shape == (5, 784), f"shape {out.shape}", hint="flatten with reshape")

Hints for known mistakes are declared data, not strings scattered in code: each lab lists them in
a :class:`Hints` table (shared ones in ``checks.py``, framework ones in the adapters), checks
look them up by key, and a test proves that every declared hint is produced by some mistake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import numpy as np

__all__ = [
    "CheckFailed",
    "Checker",
    "Framework",
    "Hints",
    "Watch",
    "WatchedCalls",
    "checking",
    "explainer",
    "recording",
]

PASS_MARK = "✅"
# What the lab's stubs raise (``helpers.notebooks`` writes them): NotImplementedError(...).
STUB_MESSAGE = "replace this line with your code"
FAIL_MARK = "❌"


class CheckFailed(AssertionError):
    """A lab self-check failed. ``exercise``, ``problem`` and ``hint`` say why."""

    def __init__(self, exercise: str, problem: str, hint: str = "") -> None:
        self.exercise, self.problem, self.hint = exercise, problem, hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{FAIL_MARK} {self.exercise}: {self.problem}"
        return f"{text}\n   Hint: {self.hint}" if self.hint else text

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the student needs the message, not frames.
        return [f"\x1b[31m{line}\x1b[0m" for line in self.message.splitlines()]


class Hints(Mapping[str, str]):
    """The hints a lab gives for known mistakes: ``{key: text}``, read-only.

    ``Hints(shared, framework_specific)`` looks keys up in the later tables first, so an
    adapter can word a shared hint for its framework; a missing key is a ``KeyError``.
    """

    def __init__(self, *tables: Mapping[str, str]) -> None:
        self._tables = tables

    def __getitem__(self, key: str) -> str:
        for table in reversed(self._tables):
            if key in table:
                return table[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for table in self._tables for k in table))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _no_explanation(error: BaseException) -> str | None:
    return None


def explainer(
    messages: Mapping[str, str],
    hints: Mapping[str, str],
    *,
    types: Mapping[str, str] | None = None,
) -> Callable[[BaseException], str | None]:
    """A ``Framework.explain``: the hint for a framework error, or None.

    ``types`` maps an exception's class name to a hint key; ``messages`` maps a regular
    expression searched in the error's message to a hint key (first match wins). The keys are
    looked up in ``hints`` when an error is explained, so every key must be declared there.
    """
    types = dict(types or {})

    def explain(error: BaseException) -> str | None:
        if type(error).__name__ in types:
            return hints[types[type(error).__name__]]
        for pattern, key in messages.items():
            if re.search(pattern, str(error)):
                return hints[key]
        return None

    return explain


@dataclass(frozen=True)
class Framework:
    """How a check talks to one framework; each lab adapter builds one.

    ``explain`` turns a framework error raised by the student's code (a tracer converted to a
    Python bool, tensors on two devices, ...) into a hint that says what to change, or None.
    ``hints`` holds every known-mistake hint the checks may give in this framework.
    """

    name: str  # "torch" or "jax"
    array_type: str  # what students return, e.g. "a torch.Tensor"
    from_numpy: Callable[[np.ndarray], Any]
    # Raises TypeError for anything but its arrays.
    to_numpy: Callable[[Any], np.ndarray]
    hints: Hints = field(default_factory=Hints)
    explain: Callable[[BaseException], str | None] = _no_explanation
    # What the student's code left on one of the check's inputs (PyTorch: requires_grad, a
    # filled .grad), described in a few words, or None.
    side_effects: Callable[[Any], str | None] = _no_explanation


def _wrong_type_hint(value: Any, expected: str = "a Python float") -> str:
    """What to change when the student's function returned a value of the wrong type.

    ``expected`` is what the check asked for: ``"a Python float"``, or an array type such as
    ``"a torch.Tensor"``; the hint leads there, never to a type the next run rejects.
    """
    if value is None:
        return (
            "your function returned None: end it with `return ...` (print shows a value "
            "but does not return it)"
        )
    if isinstance(value, bool):
        return "return the number itself, not a comparison"
    if isinstance(value, (tuple, list)):
        return "return one value, not a tuple or list of values"
    if callable(value):
        return "that is a function: call it, and return its result"
    if expected != "a Python float":  # an array of the framework is asked for
        if isinstance(value, (int, float, np.generic)):
            return (
                f"return {expected} (one number is a 0-d one), not a Python or NumPy "
                "number: keep the framework's result as it is, without .item(), "
                "float(...) or NumPy functions"
            )
        if isinstance(value, np.ndarray):
            return "compute with the framework's own operations, not numpy"
        return ""
    if isinstance(value, int):
        return (
            "an int is not a float: divide with / (not //), or convert with float(...)"
        )
    if isinstance(value, (np.generic, np.ndarray)) and np.size(value) == 1:
        return "convert the one-number NumPy value to a Python float with float(...)"
    if isinstance(value, np.ndarray):
        return "return one number, a Python float, not an array"
    return ""


class WatchedCalls(list[str]):
    """The library functions a watcher saw called, in order, as ``"module.name"`` strings.

    ``complete`` is False when the watcher could not confirm that it also sees calls made
    under another name (``from jax import grad``): then an empty list proves nothing, and a
    check that requires a call must not fail for its absence.
    """

    complete: bool = True


# A watcher: ``with watch() as called:`` collects the calls made inside the block.
Watch = Callable[[], AbstractContextManager[WatchedCalls]]


@contextmanager
def recording(
    targets: Iterable[tuple[Any, str] | tuple[Any, str, str]],
) -> Iterator[WatchedCalls]:
    """Record calls of some library functions while a check runs the student's code.

    ``targets`` pairs a module (or any object) with the name of a function on it; each is
    replaced by a wrapper that appends ``"module.name"`` (or the target's third entry, a
    label, if it has one) to the yielded list and calls the original. All are restored on
    exit, whatever happens. A check uses it to notice that the student called the answer key
    (the library's own version of the exercise). It sees only calls made through the
    attribute, not through a name imported before the block: the yielded list's
    ``complete`` is False.
    """
    calls = WatchedCalls()
    calls.complete = False
    saved = [(obj, name, getattr(obj, name), *label) for obj, name, *label in targets]

    def recorder(label: str, original: Callable) -> Callable:
        @wraps(original)  # keeps the signature: optax.inject_hyperparams reads it
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append(label)
            return original(*args, **kwargs)

        return record

    try:
        for obj, name, original, *label in saved:
            owner = getattr(obj, "__name__", type(obj).__name__)
            setattr(
                obj, name, recorder(label[0] if label else f"{owner}.{name}", original)
            )
        yield calls
    finally:
        for obj, name, original, *_ in saved:
            setattr(obj, name, original)


class Checker:
    """Helpers for one check; every failure becomes a :class:`CheckFailed` for ``exercise``."""

    def __init__(self, exercise: str, fw: Framework | None = None) -> None:
        self.exercise, self.fw = exercise, fw

    def hint(self, key: str) -> str:
        """The declared hint ``key`` of this framework (``KeyError`` if none is declared)."""
        if self.fw is None:
            raise KeyError(key)
        return self.fw.hints[key]

    def fail(self, problem: str, hint: str = "") -> CheckFailed:
        return CheckFailed(self.exercise, problem, hint)

    def expect(self, ok: bool, problem: str, hint: str = "") -> None:
        if not ok:
            raise self.fail(problem, hint)

    def raised(self, error: Exception) -> CheckFailed:
        """The failure for an exception from the student's code, with the framework's hint."""
        hint = self.fw.explain(error) if self.fw is not None else None
        first_line = (str(error).strip().splitlines() or [""])[0]
        return self.fail(
            f"your code raised {type(error).__name__}: {first_line}", hint or ""
        )

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the student's function; turn the stub or any crash into a failed check."""
        if not callable(fn):
            raise self.fail(f"expected a function, got {type(fn).__name__}")
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as e:
            # Only the lab's stub means "not done yet"; a library's NotImplementedError (PyTorch
            # raises one for ``1 - mask`` on a bool tensor) is an error in the student's code.
            if str(e) and STUB_MESSAGE not in str(e):
                raise self.raised(e) from None
            raise self.fail(
                "not implemented yet",
                "replace the `raise NotImplementedError(...)` line with your code, "
                "run that cell, then run this check again",
            ) from None
        except CheckFailed:
            raise
        except Exception as e:
            raise self.raised(e) from None

    def array(self, value: Any, what: str | None = None) -> np.ndarray:
        """``value`` as numpy via the framework's ``to_numpy``; fail clearly if it is no array."""
        array_type = self.fw.array_type if self.fw is not None else "an array"
        what = what or array_type
        try:
            return self.fw.to_numpy(value)
        except Exception:
            raise self.fail(
                f"expected {what}, got {type(value).__name__}",
                _wrong_type_hint(value, array_type),
            ) from None

    def python_float(
        self, value: Any, what: str = "the result", hint: str = ""
    ) -> float:
        """``value`` if it is a Python float (``bool`` and ``int`` are not); fail otherwise."""
        if isinstance(value, float):  # np.float64 is a float subclass: accepted
            return float(value)
        raise self.fail(
            f"{what} should be a Python float, got {type(value).__name__}",
            hint or _wrong_type_hint(value),
        )

    def shape(self, arr: np.ndarray, expected: tuple[int, ...], hint: str = "") -> None:
        self.expect(
            tuple(arr.shape) == tuple(expected),
            f"the result has shape {tuple(arr.shape)}, expected {tuple(expected)}",
            hint,
        )

    def dtype(self, arr: np.ndarray, expected: str, hint: str = "") -> None:
        self.expect(
            arr.dtype == np.dtype(expected),
            f"the result has dtype {arr.dtype}, expected {expected}",
            hint,
        )

    def close(
        self,
        actual: Any,
        expected: Any,
        *,
        what: str = "the result",
        rtol: float = 1e-5,
        atol: float = 1e-6,
        hint: str = "",
        mistakes: Iterable[tuple[str, Any]] = (),
    ) -> None:
        """Fail unless ``actual`` matches ``expected``; the message shows the worst entry.

        ``mistakes`` pairs a hint with the result a known mistake gives: a result that
        matches one (within the same tolerance) fails with the first such hint, not ``hint``.
        """
        actual = np.asarray(actual, np.float64)
        expected = np.asarray(expected, np.float64)

        def matches(target: np.ndarray) -> bool:  # same shape: no broadcasting allowed
            return actual.shape == target.shape and np.allclose(
                actual, target, rtol=rtol, atol=atol
            )

        if matches(expected):
            return
        for mistake_hint, wrong in mistakes:
            if matches(np.asarray(wrong, np.float64)):
                hint = mistake_hint
                break
        self.shape(actual, expected.shape, hint)
        if not np.all(np.isfinite(actual)):
            raise self.fail(f"{what} contains NaN or inf", hint)
        i = np.unravel_index(np.argmax(np.abs(actual - expected)), expected.shape)
        where = f" at index {tuple(int(k) for k in i)}" if expected.ndim else ""
        raise self.fail(
            f"{what} is {actual[i]:.6g}{where}, expected {expected[i]:.6g}", hint
        )


@contextmanager
def checking(
    exercise: str, fw: Framework | None = None, *, passed: str = ""
) -> Iterator[Checker]:
    """Run one check: prints a pass line on success, raises :class:`CheckFailed` otherwise.

    An exception that escapes the check's own code (a student's result of an unexpected type
    tripping a comparison, say) is reported as a failure of this exercise too.
    """
    checker = Checker(exercise, fw)
    try:
        yield checker
    except CheckFailed:
        raise
    except Exception as e:
        hint = fw.explain(e) if fw is not None else None
        raise checker.fail(
            f"the check could not use your result ({type(e).__name__}: {e})",
            hint
            or "compare your function's inputs and outputs with the exercise's text",
        ) from None
    print(f"{PASS_MARK} {exercise}: passed" + (f" ({passed})" if passed else ""))
