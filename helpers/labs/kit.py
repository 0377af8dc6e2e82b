"""Self-checks for the labs: each check says "passed", or fails with what was expected and a hint.

A check is a function ``check_<exercise>(student_fn)`` in ``helpers/labs/labNN/<framework>.py``. It
runs the student's code on small inputs and compares with an answer computed independently.
Whatever goes wrong (the stub's ``NotImplementedError``, a wrong shape, an exception in the
student's code) ends as one :class:`CheckFailed`, never as an unrelated traceback; in a notebook
it prints as a short message, not a stack of frames from the helpers.

    with checking("preprocess", passed="shape, dtype and values match") as c:
        out = c.call(preprocess, images)          # stub or crash -> CheckFailed
        c.expect(out.shape == (5, 784), f"shape {out.shape}", hint="flatten with reshape")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["CheckFailed", "Checker", "checking"]

PASS_MARK = "✅"
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


class Checker:
    """Helpers for one check; every failure becomes a :class:`CheckFailed` for ``exercise``."""

    def __init__(self, exercise: str) -> None:
        self.exercise = exercise

    def fail(self, problem: str, hint: str = "") -> CheckFailed:
        return CheckFailed(self.exercise, problem, hint)

    def expect(self, ok: bool, problem: str, hint: str = "") -> None:
        if not ok:
            raise self.fail(problem, hint)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the student's function; turn the stub or any crash into a failed check."""
        if not callable(fn):
            raise self.fail(f"expected a function, got {type(fn).__name__}")
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise self.fail(
                "not implemented yet",
                "replace the `raise NotImplementedError(...)` line with your code, "
                "run that cell, then run this check again",
            ) from None
        except CheckFailed:
            raise
        except Exception as e:
            raise self.fail(f"your code raised {type(e).__name__}: {e}") from None

    def array(
        self, value: Any, to_numpy: Callable[[Any], np.ndarray], what: str
    ) -> np.ndarray:
        """``value`` as numpy via the framework's ``to_numpy``; fail clearly if it is no array."""
        try:
            return to_numpy(value)
        except Exception:
            raise self.fail(f"expected {what}, got {type(value).__name__}") from None

    def shape(self, arr: np.ndarray, expected: tuple[int, ...], hint: str = "") -> None:
        self.expect(
            tuple(arr.shape) == tuple(expected),
            f"the result has shape {tuple(arr.shape)}, expected {tuple(expected)}",
            hint,
        )

    def close(
        self,
        actual: np.ndarray,
        expected: np.ndarray,
        *,
        what: str = "the result",
        rtol: float = 1e-5,
        atol: float = 1e-6,
        hint: str = "",
    ) -> None:
        """Fail unless ``actual`` matches ``expected``; the message shows the worst entry."""
        actual = np.asarray(actual, np.float64)
        expected = np.asarray(expected, np.float64)
        self.shape(actual, expected.shape, hint)
        if np.allclose(actual, expected, rtol=rtol, atol=atol):
            return
        if not np.all(np.isfinite(actual)):
            raise self.fail(f"{what} contains NaN or inf", hint)
        i = np.unravel_index(np.argmax(np.abs(actual - expected)), expected.shape)
        where = f" at index {tuple(int(k) for k in i)}" if expected.ndim else ""
        raise self.fail(
            f"{what} is {actual[i]:.6g}{where}, expected {expected[i]:.6g}", hint
        )


@contextmanager
def checking(exercise: str, *, passed: str = "") -> Iterator[Checker]:
    """Run one check: prints a pass line on success, raises :class:`CheckFailed` otherwise.

    An exception that escapes the check's own code (a student's result of an unexpected type
    tripping a comparison, say) is reported as a failure of this exercise too.
    """
    checker = Checker(exercise)
    try:
        yield checker
    except CheckFailed:
        raise
    except Exception as e:
        raise checker.fail(
            f"the check could not use your result ({type(e).__name__}: {e})",
            "compare your function's inputs and outputs with the exercise's description",
        ) from None
    print(f"{PASS_MARK} {exercise}: passed" + (f" ({passed})" if passed else ""))
