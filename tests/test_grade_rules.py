"""The grader's rules without a kernel, on made-up cells and strings: where checks go, what
counts as tampering, which lab a notebook without metadata is, how notes name cells and CSV
cells read failures; and the command line's refusals (plus short runs: a notebook alone, a
folder holding the run's own CSV, and a tiny made-up course graded with ``--course``)."""

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import helpers.labs
from helpers.grade.notebook import _failure, _place_checks
from helpers.grade.submission import (
    cell_name,
    first_error,
    lab_from_cells,
    rebinds_h,
    tampering,
)
from helpers.notebooks import ROOT

LAB = "01-introduction"


def _code(source: str, outputs=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = list(outputs)
    return cell


def _read(kind: str, framework: str):
    return nbformat.read(ROOT / kind / LAB / f"in-{framework}.ipynb", as_version=4)


def _full() -> str:
    from helpers.grade import check_calls

    n = len(check_calls(LAB, "pytorch"))
    return f"{n}/{n}"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("H.lab01.check_x = lambda f: None", True),
        ("setattr(H.lab01, 'check_x', print)", True),
        ("del H.lab05", True),
        ("H.lab01.__dict__['check_x'] = print", True),
        ("vars(H.lab01)['check_x'] = print", True),
        ("m = H.lab01.lab01\nm.check_preprocess = print", True),  # through an alias
        ("m = H.lab01\nm.__spec__.loader.exec_module = print", True),
        ("from helpers import labs\nlabs.kit.checking = None", True),
        ("import helpers.labs.lab01.torch as lab", True),
        ("from helpers.grade import main", True),
        ("import sys\nsys.modules.pop('helpers.labs.lab01.torch')", True),
        ("%time y = f(x)\nH.vision.crop_flip = f", True),  # magics skipped
        ("_grader_lab = None", True),
        # ordinary code
        ("H.lab01.check_x(my_f)", False),
        ("model = H.vision.CifarNet(rngs=rngs)\nmodel.head = head", False),
        ("self.lab05 = 3\nruns['lab01'].score = 1", False),
        ('import sys\nif "google.colab" in sys.modules:\n    pass', False),
    ],
)
def test_tampering_flags_code_that_reaches_into_the_checks(source, flagged):
    assert tampering([source]) == (0 if flagged else None)


def test_tampering_follows_aliases_across_cells_and_sees_through_magics():
    assert tampering(["m = H.lab01.lab01", "x = 1", "m.check_preprocess = print"]) == 2
    assert tampering(["import helpers.torch as T", "T.lab01.check_x = print"]) == 1
    assert tampering(["x = !ls\nH.lab01.check_x = print"]) == 0  # IPython syntax parsed
    assert tampering(["get_ipython().set_custom_exc((Exception,), handler)"]) == 0
    assert (
        tampering(["import importlib.util\nimportlib.util.module_from_spec = f"]) == 0
    )
    # reading internals, reading sys.modules, a course name inside an index: ordinary code
    assert tampering(["self.__dict__.update(kw)", "keys = sys.modules.keys()"]) is None
    assert tampering(["counts[H.data.CLASSES[y]] += 1"]) is None


def test_no_course_notebook_is_flagged_and_every_lab_is_found_from_its_cells():
    import jupytext

    for path in sorted(ROOT.glob("*/*/in-*.py")):
        if path.parts[-3] not in ("chapters", "labs", "solutions"):
            continue
        nb = jupytext.read(path)
        assert tampering([c.source for c in nb.cells if c.cell_type == "code"]) is None
        if path.parts[-3] != "chapters":
            assert lab_from_cells(nb, ROOT) == (path.parent.name, path.stem[3:]), path


def test_lab_from_cells_reads_statements_not_comments():
    nb = nbformat.v4.new_notebook(
        cells=[
            _code("from helpers import torch as H"),
            _code("# unlike H.lab05.check_crop_flip(crop_flip) in lab 5\nx = 1"),
            _code("H.lab01.check_preprocess(preprocess)"),
        ]
    )
    nb.cells.append(nbformat.v4.new_markdown_cell("`from helpers import jax as H` too"))
    assert lab_from_cells(nb, ROOT) == (LAB, "pytorch")  # markdown does not count
    call = "try:\n    H.lab05.check_crop_flip(crop_flip)\nexcept Exception:\n    pass"
    nb.cells.append(_code(call))
    assert lab_from_cells(nb, ROOT) is None  # two labs (a call inside try counts): none


def test_first_error_names_the_first_raising_cell_of_the_students():
    error = {
        "output_type": "error",
        "ename": "ModuleNotFoundError",
        "evalue": "No module",
    }
    cells = [
        _code("x = 1"),
        _code("check()", [error]),
        _code("import torchvisionx", [error]),
    ]
    assert first_error(cells, graded={1: "H.lab01.check_x(x)"}, skip=set()) == (
        "the cell `import torchvisionx` raised ModuleNotFoundError: No module"
    )
    assert first_error(cells, graded={1: "c"}, skip={2}) is None


def test_a_note_names_a_cell_by_its_number_and_says_when_the_lab_wrote_it():
    assert cell_name("x = f(1)\n", 7) == "code cell 7 (`x = f(1)`)"
    lab = {"class Net(nnx.Module):\n    pass"}
    assert cell_name("class Net(nnx.Module):\n    pass\n", 3, lab) == (
        "code cell 3 (`class Net(nnx.Module):`, a cell of the lab, unchanged, that calls "
        "the student's code)"
    )
    assert cell_name("class Net(nnx.Module):\n    x = 1", 3, lab).endswith(":`)")


@pytest.mark.parametrize(
    ("sources", "index"),
    [
        (
            ["from helpers import torch as H", "B, H, W, C = 4, 32, 32, 3", "H.MLP(2)"],
            1,
        ),
        (["H = 256", "x = 1", "model = H.vision.CifarNet()"], 0),
        (["for H in range(3):\n    pass\nH.lab05"], 0),
        (["B, H, W, C = x.shape", "from helpers import jax as H", "H.vision"], None),
        (["H = 256  # a last experiment"], None),  # nothing uses it after
        (["def f(x):\n    H = x.shape[1]\n    return H", "H.vision"], None),  # local
        (["[H for H in range(3)]", "H.vision"], None),  # a comprehension's own
        (["H.lab01.check_x(x)", "H = 3"], None),  # used before, not after
    ],
)
def test_rebinds_h_finds_a_top_level_h_that_a_later_cell_uses(sources, index):
    assert rebinds_h(dict(enumerate(sources))) == index


def test_a_failure_reads_without_its_mark_and_name():
    text = "❌ adamw: not implemented yet\n   Hint: replace the stub"
    assert _failure(text) == "not implemented yet. Hint: replace the stub"
    assert _failure("❌ adam: got 3, expected 2.") == "got 3, expected 2."
    assert _failure("❌ a: wrong sign!\n   Hint: h") == "wrong sign! Hint: h"
    assert _failure("a message of its own") == "a message of its own"


def test_checks_are_placed_after_each_exercise():
    """The placement rule on made-up cells, without a kernel."""
    calls = ["H.lab09.check_f(f)", "H.lab09.check_g(g)", "H.lab09.check_h(h)"]
    cells = [
        _code("H.lab09.check_f(f)  # moved above its exercise"),
        _code("def f(x):\n    return x"),
        _code("def g(x):\n    return x"),
        _code("H.lab09.check_g(g)\nH.lab09.check_f(f)"),
        _code("def f(x):\n    return None  # going further"),
        _code("H.lab09.check_g(lambda x: x)"),
    ]
    out, graded = _place_checks(cells, calls, "pytorch")
    # f: only its check cell after its first definition counts; g: checked in place and
    # nowhere else; h is defined nowhere: checked at the end.
    assert [graded.get(i) or c.source.split("\n")[0] for i, c in enumerate(out)] == [
        "def f(x):",
        "def g(x):",
        "H.lab09.check_f(f)",
        "H.lab09.check_g(g)",
        "def f(x):",
        "H.lab09.check_g(lambda x: x)",
        "H.lab09.check_h(h)",
    ]
    assert all("H.lab09" not in out[i].source for i in graded)


def test_check_cell_deleted_goes_right_after_the_definition():
    calls = ["H.lab09.check_f(f)", "H.lab09.check_g(g)"]
    cells = [_code("def f(x):\n    return x"), _code("def g(x):\n    return x")]
    out, graded = _place_checks(cells, calls, "jax")
    assert graded == {1: calls[0], 3: calls[1]}
    # a fresh copy of the lab's jax adapter, under a private name
    adapter = str(Path(helpers.labs.__file__).parent / "lab09" / "jax.py")
    assert f"'helpers.labs.lab09.jax', {adapter!r}" in out[1].source
    assert out[1].source.endswith("_grader_lab.check_f(f)\nprint('passed')")


def test_grader_needs_submissions(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "no .ipynb files" in run.stderr


def test_help_describes_the_options():
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", "--help"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0
    for option in ("--out", "--summary", "--timeout", "--course", "where it stands"):
        assert option in run.stdout


def test_a_wrong_path_is_refused_before_any_grading(tmp_path):
    def grade(*args):
        return subprocess.run(
            [sys.executable, "-m", "helpers.grade", *map(str, args)],
            capture_output=True,
            text=True,
        )

    run = grade(tmp_path / "nope")
    assert run.returncode == 2 and "nope does not exist" in run.stderr
    nbformat.write(_read("labs", "pytorch"), tmp_path / "a.ipynb")
    # no folder; a folder; a notebook (a submission: never overwritten)
    for out in (tmp_path / "missing" / "g.csv", tmp_path, tmp_path / "a.ipynb"):
        run = grade(tmp_path, "--out", out)
        assert run.returncode == 2 and "cannot write" in run.stderr, run.stderr
        assert not run.stdout  # refused before grading
    run = grade(tmp_path, "--out", tmp_path / "g.csv", "--summary", tmp_path / "g.csv")
    assert run.returncode == 2 and "the same file" in run.stderr
    run = grade(tmp_path, "--course", tmp_path)
    assert run.returncode == 2 and "is not the course" in run.stderr
    # Permission bits do not stop root; /proc takes no new file, for root too.
    run = grade(tmp_path, "--out", "/proc/grades.csv")
    assert run.returncode == 2 and "cannot write /proc/grades.csv" in run.stderr
    assert not run.stdout  # refused before grading
    run = grade(tmp_path, "--out", tmp_path / "g.csv", "--summary", "/proc/summary.md")
    assert run.returncode == 2 and "cannot write /proc/summary.md" in run.stderr
    assert not (tmp_path / "g.csv").exists() and not run.stdout
    for seconds in ("0", "-5"):
        run = grade(tmp_path, "--timeout", seconds, "--out", tmp_path / "g.csv")
        assert run.returncode == 2 and "--timeout" in run.stderr, run.stderr
        assert "a number > 0" in run.stderr and not run.stdout
    (tmp_path / "notes.py").write_text("x = 1\n")
    run = grade(tmp_path / "notes.py", "--out", tmp_path / "g.csv")
    assert run.returncode == 2 and not run.stdout
    assert "notes.py is a file, not a notebook (.ipynb) or a folder" in run.stderr


def _fake_course(root: Path, checks: str = "check_hidden, check_preprocess") -> Path:
    """A tiny course: lab 1 (PyTorch) with one exercise, its check edited (it always fails)
    and a hidden check the real course does not have (it passes on ``lambda x: x``)."""
    lab = root / "helpers" / "labs" / "lab01"
    lab.mkdir(parents=True)
    for package in (root / "helpers", root / "helpers" / "labs", lab):
        (package / "__init__.py").write_text("")
    (root / "helpers" / "torch.py").write_text("")
    (lab / "checks.py").write_text(
        "class CheckFailed(AssertionError):\n    pass\n\n\n"
        "def check_preprocess(f):\n"
        "    raise CheckFailed('❌ preprocess: the edited check\\n   Hint: the copy')\n\n\n"
        "def check_hidden(f):\n    assert f(2) == 2\n"
    )
    (lab / "torch.py").write_text(f"from helpers.labs.lab01.checks import {checks}\n")
    solution = root / "solutions" / LAB / "in-pytorch.py"
    solution.parent.mkdir(parents=True)
    solution.write_text(
        "# %%\nfrom helpers import torch as H\n\n"
        "# %%\ndef preprocess(x):\n    return x\n\n"
        "# %%\nH.lab01.check_preprocess(preprocess)\n\n"
        "# %%\nH.lab01.check_hidden(preprocess)\n"
    )
    return root


def test_a_course_copy_runs_its_own_checks(tmp_path):
    """--course: the copy's checks run (hidden and edited), from the copy's helpers."""
    course = _fake_course(tmp_path / "course")
    nb = nbformat.v4.new_notebook(
        cells=[
            _code("from helpers import torch as H"),
            _code("def preprocess(x):\n    return x"),
            _code("H.lab01.check_preprocess(preprocess)"),
        ],
        metadata={"course": {"kind": "labs", "chapter": LAB, "framework": "pytorch"}},
    )
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, tmp_path / "subs" / "a.ipynb")
    out = tmp_path / "g.csv"
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(tmp_path / "subs"), "--out", str(out),
         "--course", str(course)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    [row] = csv.DictReader(out.open())
    assert row["check_hidden"] == "pass", row
    assert row["check_preprocess"] == "fail: the edited check. Hint: the copy", row
    assert (row["passed"], row["checks"]) == ("1", "2")


def test_a_course_whose_solution_calls_a_missing_check_is_refused(tmp_path):
    course = _fake_course(tmp_path / "course", checks="check_preprocess")
    (tmp_path / "subs").mkdir()
    nbformat.write(_read("labs", "pytorch"), tmp_path / "subs" / "a.ipynb")
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(tmp_path / "subs"), "--out",
         str(tmp_path / "g.csv"), "--course", str(course)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 2 and not run.stdout, run.stdout
    assert (
        f"solutions/{LAB}/in-pytorch.py calls H.lab01.check_hidden(preprocess), but "
        "helpers/labs/lab01/torch.py does not define check_hidden"
    ) in run.stderr, run.stderr
    assert not (tmp_path / "g.csv").exists()


def test_one_notebook_alone_and_the_runs_own_csv_is_no_submission(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(_read("solutions", "pytorch"), subs / "a.ipynb")
    out = subs / "grades.csv"
    for _ in range(2):  # the second run finds the first one's grades.csv in the folder
        run = subprocess.run(
            [sys.executable, "-m", "helpers.grade", str(subs), "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        assert [r["submission"] for r in csv.DictReader(out.open())] == ["a.ipynb"]
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(subs / "a.ipynb"), "--out",
         str(tmp_path / "one.csv")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 0 and f"a.ipynb: {_full()}" in run.stdout, run.stdout
