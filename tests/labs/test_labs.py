"""Every lab's checks, whatever the lab: they pass on the solution and on nothing else.

For each lab (``helpers.labs.lab_names()``) and framework, every check the solution calls
- passes on the solution and prints its pass line, having called the function at least twice;
- fails with "not implemented yet" on the unsolved lab (the generated stub);
- fails with its own ``CheckFailed``, never another error, when the function returns garbage
  (None, a list, a string, NaN, a NumPy array instead of the framework's type);
- rejects a near miss: the solution's result 3 % off.
Each lab's typical mistakes, with the hint each must get, are in its own ``test_labNN.py``.
"""

from __future__ import annotations

import functools
import importlib
import math
import re

import jupytext
import numpy as np
import pytest
from labtools import (
    FRAMEWORKS,
    adapter,
    check_calls,
    exercise_functions,
    source,
)

from helpers.labs import CheckFailed, Framework, Hints, lab_names
from helpers.labs.kit import checking
from helpers.notebooks import ROOT, lab_text

CASES = [
    (lab, framework, check, function)
    for lab in lab_names()
    for framework in FRAMEWORKS
    for check, function in check_calls(source(lab, framework)).items()
]
IDS = [f"{lab}-{fw}-{check.removeprefix('check_')}" for lab, fw, check, _ in CASES]


@functools.cache
def solved(lab: str, framework: str) -> dict:
    return exercise_functions(source(lab, framework))


def framework_of(lab: str, framework: str) -> Framework:
    """The adapter's Framework (its to_numpy turns results into numpy)."""
    module = vars(adapter(lab, framework)).values()
    return next(v for v in module if isinstance(v, Framework))


def wrapped(fn, change):
    """``fn`` with ``change`` applied to each result, and a count of calls."""

    @functools.wraps(fn)
    def student(*args, **kwargs):
        student.calls += 1
        return change(fn(*args, **kwargs))

    student.calls = 0
    return student


def test_every_lab_has_cases():
    assert lab_names() and {lab for lab, *_ in CASES} == set(lab_names())


EXERCISE = re.compile(r"^## Exercise (\d+):", re.MULTILINE)


@pytest.mark.parametrize("lab", lab_names())
def test_a_lab_has_three_to_five_exercises_and_the_instructors_table_says_how_many(lab):
    """CHAPTERS.md: 3-5 exercises per framework, numbered alike in both notebooks."""
    numbers = {}
    for framework in FRAMEWORKS:
        cells = jupytext.read(source(lab, framework), fmt="py:percent").cells
        markdown = [cell.source for cell in cells if cell.cell_type == "markdown"]
        numbers[framework] = [
            int(n) for text in markdown for n in EXERCISE.findall(text)
        ]
    count = len(numbers["pytorch"])
    assert numbers["pytorch"] == numbers["jax"] == list(range(1, count + 1)), numbers
    assert 3 <= count <= 5, f"{lab} has {count} exercises; CHAPTERS.md asks for 3-5"
    word = ["Three", "Four", "Five"][count - 3]
    for framework in FRAMEWORKS:  # the lab's introduction counts them too
        text = source(lab, framework).read_text()
        assert f"{word} exercises" in text, f"{lab} {framework}: not '{word} exercises'"
    folder = source(lab, "pytorch").parent.name
    table = (ROOT / "appendices" / "instructors.md").read_text().splitlines()
    row = next(line for line in table if f"labs/{folder}/in-pytorch>" in line)
    assert row.split(" | ")[2].split()[0] == str(count), row


@pytest.mark.parametrize(("lab", "framework", "check", "function"), CASES, ids=IDS)
def test_check_passes_on_the_solution(lab, framework, check, function, capsys):
    student = wrapped(solved(lab, framework)[function], lambda result: result)
    getattr(adapter(lab, framework), check)(student)
    assert f"✅ {function}: passed" in capsys.readouterr().out
    # One call could pass a hard-coded answer; two on different inputs cannot.
    assert student.calls >= 2


@pytest.mark.parametrize(("lab", "framework", "check", "function"), CASES, ids=IDS)
def test_check_fails_on_the_unsolved_lab(lab, framework, check, function):
    unsolved = exercise_functions(source(lab, framework, kind="labs"))
    with pytest.raises(CheckFailed, match="not implemented yet") as info:
        getattr(adapter(lab, framework), check)(unsolved[function])
    assert info.value.exercise == function
    assert "NotImplementedError" in info.value.hint


def _garbage(fw: Framework) -> dict:
    """Results a check must reject, each made from the solution's right result."""

    def is_array(result) -> bool:
        try:
            fw.to_numpy(result)
            return True
        except Exception:
            return False

    def as_list(result):
        return fw.to_numpy(result).tolist() if is_array(result) else [result]

    def nan(result):
        return result * math.nan if is_array(result) else math.nan

    def as_numpy(
        result,
    ):  # a NumPy array where a framework array or a float is asked for
        return np.asarray(fw.to_numpy(result) if is_array(result) else result)

    return {
        "None": lambda result: None,
        "list": as_list,
        "string": lambda result: "0.5",
        "NaN": nan,
        "numpy": as_numpy,
    }


@pytest.mark.parametrize("garbage", ["None", "list", "string", "NaN", "numpy"])
@pytest.mark.parametrize(("lab", "framework", "check", "function"), CASES, ids=IDS)
def test_check_rejects_garbage_with_its_own_failure(
    lab, framework, check, function, garbage
):
    change = _garbage(framework_of(lab, framework))[garbage]
    student = wrapped(solved(lab, framework)[function], change)
    with pytest.raises(CheckFailed) as info:
        getattr(adapter(lab, framework), check)(student)
    assert info.value.exercise == function


@pytest.mark.parametrize(("lab", "framework", "check", "function"), CASES, ids=IDS)
def test_check_rejects_a_near_miss(lab, framework, check, function):
    """A tolerance loosened by mistake shows here: the right answer, 3 % off, must fail.

    For a function that returns a tuple, each part in turn is the one 3 % off.
    """
    right = solved(lab, framework)[function]
    for part in range(_parts(right, lab, framework, check)):

        def off(result, part=part):
            if isinstance(result, tuple):
                return tuple(r * 1.03 if i == part else r for i, r in enumerate(result))
            return result * 1.03

        with pytest.raises(CheckFailed) as info:
            getattr(adapter(lab, framework), check)(wrapped(right, off))
        assert info.value.exercise == function, part


def _parts(function, lab, framework, check) -> int:
    """How many values ``function`` returns (1 unless a tuple), seen through its check."""
    seen = []

    def spy(*args, **kwargs):
        result = function(*args, **kwargs)
        seen.append(len(result) if isinstance(result, tuple) else 1)
        return result

    getattr(adapter(lab, framework), check)(spy)
    return max(seen)


# --- the kit ---------------------------------------------------------------------------------
def test_check_failed_renders_without_a_traceback():
    error = CheckFailed("preprocess", "wrong shape", "reshape it")
    assert error._render_traceback_() == [
        "\x1b[31m❌ preprocess: wrong shape\x1b[0m",
        "\x1b[31m   Hint: reshape it\x1b[0m",
    ]


@pytest.mark.parametrize(("lab", "framework", "check", "function"), CASES, ids=IDS)
def test_a_non_function_is_a_failed_check(lab, framework, check, function):
    with pytest.raises(CheckFailed, match="expected a function, got int"):
        getattr(adapter(lab, framework), check)(3)


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        ("Exercise: replace this line with your code", "not implemented yet"),
        ("", "not implemented yet"),  # a bare `raise NotImplementedError`
        ("Subtraction, the `-` operator, with a bool tensor", "NotImplementedError"),
    ],
)
def test_only_the_stub_counts_as_not_implemented(message, failure):
    """A library's NotImplementedError is the student's error, reported as raised."""

    def student():
        raise NotImplementedError(message)

    fw = Framework("numpy", "an array", np.asarray, np.asarray)
    with pytest.raises(CheckFailed, match=failure), checking("x", fw) as c:
        c.call(student)


def test_hints_prefer_the_later_table_and_reject_unknown_keys():
    hints = Hints({"a": "shared", "b": "only shared"}, {"a": "framework"})
    assert dict(hints) == {"a": "framework", "b": "only shared"} and len(hints) == 2
    with pytest.raises(KeyError):
        hints["c"]


# --- generating labs from solutions ----------------------------------------------------------
def test_lab_text_replaces_regions_with_indented_stubs():
    solution = (
        "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n"
        "    ### END SOLUTION\n\nprint(f)\n"
    )
    assert lab_text(solution, headers=False) == (
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("Exercise: replace this line with your code")\n\nprint(f)\n'
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("### END SOLUTION\n", r"x.py:1: ### END SOLUTION without"),
        ("### BEGIN SOLUTION\n", r"x.py:1: ### BEGIN SOLUTION is never closed"),
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\n",
            r"x.py:2: .* inside the region opened",
        ),
    ],
)
def test_lab_text_rejects_unbalanced_markers(text, error):
    with pytest.raises(ValueError, match=error):
        lab_text(text, "x.py", headers=False)


_SOLUTION_HEAD = (
    "# %% [markdown]\n# # Lab 3 solutions: data in JAX\n#\n# Two exercises.\n"
    "# The exercises alone, without the answers: "
    "[Lab 3 in JAX](../../labs/03-x/in-jax.ipynb).\n"
)


def test_lab_text_gives_the_lab_its_title_and_a_link_to_the_solution():
    """A solution page is "Lab N solutions" and links to its lab; the lab is "Lab N" and
    links to the solution, so neither page links to itself."""
    assert lab_text(_SOLUTION_HEAD) == (
        "# %% [markdown]\n# # Lab 3: data in JAX\n#\n# Two exercises.\n"
        "# The solved lab: [Lab 3 solutions in JAX](../../solutions/03-x/in-jax.ipynb).\n"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Lab 3 solutions:", "Lab 3:"),
        ("without the answers", "without answers"),
        ("[Lab 3 in JAX]", "[`labs/03-x/in-jax.ipynb`]"),  # the old form: a file name
        ("", ""),
    ],
)
def test_lab_text_needs_one_title_and_one_lab_link(old, new):
    text = _SOLUTION_HEAD.replace(old, new) if old else _SOLUTION_HEAD * 2
    with pytest.raises(ValueError, match=r"x\.py: expected"):
        lab_text(text, "x.py")


@pytest.mark.parametrize("text", ["[Lab 4 in JAX]", "[Lab 3 in PyTorch]"])
def test_lab_text_refuses_a_link_that_names_another_lab(text):
    with pytest.raises(ValueError, match="text and target differ"):
        lab_text(_SOLUTION_HEAD.replace("[Lab 3 in JAX]", text), "x.py")


@pytest.mark.parametrize("solution", sorted(ROOT.glob("solutions/*/in-*.py")), ids=str)
def test_lab_and_solution_pages_have_their_own_titles_and_link_to_each_other(solution):
    lab = ROOT / "labs" / solution.relative_to(ROOT / "solutions")
    notebook = solution.relative_to(ROOT / "solutions").with_suffix(".ipynb").as_posix()
    number = int(solution.parent.name[:2])
    framework = {"in-pytorch": "PyTorch", "in-jax": "JAX"}[solution.stem]
    for path, title, other, text_of_link in [
        (solution, " solutions: ", "labs", f"Lab {number} in {framework}"),
        (lab, ": ", "solutions", f"Lab {number} solutions in {framework}"),
    ]:
        text = path.read_text()
        assert f"# # Lab {number}{title}" in text, path
        assert f"[{text_of_link}](../../{other}/{notebook})" in text, path
        assert (ROOT / other / notebook).exists()


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_a_wrong_return_type_gets_a_hint(framework):
    """A forgotten ``return`` and an integer division are named, not just "expected ..."."""
    lab = importlib.import_module(
        f"helpers.labs.lab01.{framework.replace('pytorch', 'torch')}"
    )
    with pytest.raises(CheckFailed) as info:
        lab.check_preprocess(lambda images: None)
    assert "returned None" in info.value.hint
    with pytest.raises(CheckFailed) as info:
        lab.check_directional_gradient_error(lambda f, grad_f, x, eps, v: len(x) // 2)
    assert "an int is not a float" in info.value.hint


def test_function_calls_sees_a_torch_function_under_every_name_and_nothing_else():
    """helpers.torch.labkit.function_calls: one TorchFunctionMode, keyed on __name__."""
    import torch

    from helpers.torch.labkit import function_calls

    def label(name):
        name = name.split(".")[0]  # gru_cell.default
        return f"torch.{name}" if name == "gru_cell" else None

    x, h = torch.randn(2, 3), torch.randn(2, 4)
    w_ih, w_hh, b = torch.randn(12, 3), torch.randn(12, 4), torch.zeros(12)
    with function_calls(label) as calls:
        torch.tanh(x)  # not watched
        for gru_cell in (
            torch.gru_cell,
            torch._VF.gru_cell,
            torch.ops.aten.gru_cell.default,
        ):
            gru_cell(x, h, w_ih, w_hh, b, b)
    assert calls == ["torch.gru_cell"] * 3
    torch.gru_cell(x, h, w_ih, w_hh, b, b)  # after the block: not recorded
    assert len(calls) == 3
