"""The grader's rules without a kernel, on made-up cells and strings: where checks go, what
counts as tampering, which lab a notebook without metadata is; and the command line's refusals
(plus one short run: a notebook alone, and a folder holding the run's own CSV)."""

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import helpers.labs
from helpers.grade.notebook import _place_checks
from helpers.grade.submission import first_error, lab_from_cells, tampering
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
    out, graded = _place_checks(cells, calls, "helpers.torch")
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
    out, graded = _place_checks(cells, calls, "helpers.jax")
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
