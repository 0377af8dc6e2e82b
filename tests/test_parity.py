"""The twin rules (shared/ARCHITECTURE.md), each a test.

1. Same modules and the same ``__all__`` in ``helpers/torch`` and ``helpers/jax``, except what a
   module declares framework-only (``__framework_only__ = True``, or a tuple of names).
2. Mirrored callables take the same parameters in the same order; only framework plumbing
   (``rngs``, ``device``, ``generator``) may differ.
3. Every lab has both adapters with the same ``check_*`` names, and the solutions call them.
4. Only a framework's own folder (and its lab adapters) import that framework.
5. No function is written out identically in both halves (it belongs in the core).
6. Notebook pairs keep the same section numbers; ``shared`` markdown cells are identical.
"""

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

import helpers
from helpers import jax as hj
from helpers import torch as ht
from helpers.labs import lab_names
from helpers.notebooks import ROOT, notebook_name, sources

HELPERS = Path(helpers.__file__).parent
# Placement and randomness, each framework its own way (a JAX ``mesh`` places like ``device``).
PLUMBING = {"rngs", "device", "generator", "mesh"}
FRAMEWORK_PACKAGES = {
    "torch": {"torch", "torchvision"},
    "jax": {"jax", "flax", "optax"},
}


def modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__)}


def framework_only(module) -> set[str] | bool:
    declared = getattr(module, "__framework_only__", ())
    return declared if declared is True else set(declared)


def mirrored_modules() -> list[str]:
    names = modules(ht) | modules(hj)
    return sorted(names)


@pytest.mark.parametrize("name", mirrored_modules())
def test_same_modules_and_names(name):
    mods = {}
    for half in ("torch", "jax"):
        try:
            mods[half] = importlib.import_module(f"helpers.{half}.{name}")
        except ModuleNotFoundError:
            mods[half] = None
    present = [m for m in mods.values() if m is not None]
    if len(present) == 1:
        assert framework_only(present[0]) is True, (
            f"helpers.*.{name} exists in one half only; declare "
            "__framework_only__ = True in it if that is intended"
        )
        return
    torch_mod, jax_mod = mods["torch"], mods["jax"]
    for mod in (torch_mod, jax_mod):
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{mod.__name__}.__all__ names missing objects: {missing}"
    torch_names = set(torch_mod.__all__) - framework_only(torch_mod)
    jax_names = set(jax_mod.__all__) - framework_only(jax_mod)
    assert sorted(torch_names) == sorted(jax_names)


def parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    return [p for p in sig.parameters if p not in PLUMBING | {"self"}]


def mirrored_callables():
    for name in mirrored_modules():
        try:
            t = importlib.import_module(f"helpers.torch.{name}")
            j = importlib.import_module(f"helpers.jax.{name}")
        except ModuleNotFoundError:
            continue
        for attr in sorted(set(t.__all__) & set(j.__all__)):
            a, b = getattr(t, attr), getattr(j, attr)
            if a is b:  # one core object that both halves re-export: nothing mirrored
                continue
            if callable(a) and callable(b):
                yield f"{name}.{attr}", a, b


@pytest.mark.parametrize(
    ("name", "torch_obj", "jax_obj"),
    list(mirrored_callables()),
    ids=[n for n, _, _ in mirrored_callables()],
)
def test_mirrored_callables_take_the_same_parameters(name, torch_obj, jax_obj):
    assert parameters(torch_obj) == parameters(jax_obj), name
    if inspect.isclass(torch_obj):
        for method in sorted(
            m for m in vars(torch_obj) if not m.startswith("_") and m in vars(jax_obj)
        ):
            a, b = getattr(torch_obj, method), getattr(jax_obj, method)
            assert parameters(a) == parameters(b), f"{name}.{method}"
    else:
        same = inspect.getsource(torch_obj) == inspect.getsource(jax_obj)
        assert not same, f"{name} is identical in both halves: move it to the core"


def test_synchronize_means_one_thing():
    """Both wait for a value and return it; neither silently waits for nothing."""
    import jax.numpy as jnp
    import torch

    t = torch.ones(3)
    assert ht.synchronize(t) is t
    a = jnp.ones(3)
    assert hj.synchronize({"a": a})["a"] is a
    for H in (ht, hj):
        with pytest.raises(TypeError):
            H.synchronize()
        with pytest.raises(TypeError, match="holding none"):
            H.synchronize([1, 2])


def test_same_names_in_the_notebook_namespace():
    assert sorted(ht.__all__) == sorted(hj.__all__)
    assert set(helpers.__all__) <= set(ht.__all__)
    for name in ht.__all__:
        assert hasattr(ht, name) and hasattr(hj, name), name
    assert sorted(dir(ht)) and "lab01" in dir(ht) and "tasks" in dir(hj)


@pytest.mark.parametrize("lab", lab_names())
def test_labs_have_both_adapters_called_by_the_solutions(lab):
    adapters = {
        fw: importlib.import_module(f"helpers.labs.{lab}.{fw}")
        for fw in ("torch", "jax")
    }
    names = {fw: sorted(a.__all__) for fw, a in adapters.items()}
    assert names["torch"] == names["jax"] and names["torch"], names
    assert all(n.startswith("check_") for n in names["torch"])
    assert (
        ht.__getattr__(lab) is adapters["torch"]
        and hj.__getattr__(lab) is adapters["jax"]
    )
    chapter = next(p for p in (ROOT / "solutions").iterdir() if p.name[:2] == lab[3:])
    for fw in ("pytorch", "jax"):
        text = (chapter / f"{notebook_name(fw)}.py").read_text()
        called = sorted(set(re.findall(rf"H\.{lab}\.(check_\w+)\(", text)))
        assert called == names["torch"], (fw, called)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def owner(path: Path) -> str | None:
    """Which framework may be imported by a helpers file, or None (the core)."""
    rel = path.relative_to(HELPERS).parts
    if rel[0] in FRAMEWORK_PACKAGES:
        return rel[0]
    if rel[0] == "labs" and len(rel) == 3:
        # helpers/labs/labNN/torch.py, .../jax.py, and an adapter's own parts beside it,
        # .../torch_<part>.py or jax_<part>.py (lab 9's one-process DDP trainer)
        framework = rel[2][:-3].split("_")[0]
        if framework in FRAMEWORK_PACKAGES:
            return framework
    return None


@pytest.mark.parametrize(
    "path", sorted(HELPERS.rglob("*.py")), ids=lambda p: str(p.relative_to(HELPERS))
)
def test_only_its_own_folder_imports_a_framework(path):
    imported = imported_packages(path)
    allowed = owner(path)
    for framework, packages in FRAMEWORK_PACKAGES.items():
        if framework != allowed:
            assert not imported & packages, f"{path} imports {imported & packages}"


def test_importing_a_half_imports_no_topic_module_or_optional_package():
    code = (
        "import sys\n"
        "from helpers import torch, jax\n"
        "mods = sorted(m for m in sys.modules if m.startswith('helpers.'))\n"
        "print(' '.join(mods))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    lazy = {"helpers.torch.tasks", "helpers.jax.tasks", "helpers.labs.lab01.checks"}
    assert not lazy & set(out), lazy & set(out)
    optional = ("gymnasium", "onnx", "onnxruntime", "orbax", "tokenizers")
    check = "import sys; from helpers import torch, jax\n"
    check += "print([m for m in {0!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", check.format(optional)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_core_imports_no_framework():
    code = "import sys, helpers, helpers.data, helpers.labs, helpers.grade, helpers.bench\n"
    code += "print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


# --- rule 6: notebook pairs ---------------------------------------------------------------------
SECTION = re.compile(r"^#{1,3} (\d+(?:\.\d+)*)\b", re.M)


def pairs() -> list[tuple[Path, Path]]:
    folders = sorted({p.parent for p in sources()})
    return [
        (f / f"{notebook_name('pytorch')}.py", f / f"{notebook_name('jax')}.py")
        for f in folders
    ]


def markdown(path: Path) -> list:
    return [c for c in jupytext.read(path).cells if c.cell_type == "markdown"]


@pytest.mark.parametrize(
    ("torch_nb", "jax_nb"), pairs(), ids=lambda p: str(p.parent.relative_to(ROOT))
)
def test_notebook_pair_has_the_same_sections_and_shared_cells(torch_nb, jax_nb):
    sections = [
        [m for c in markdown(p) for m in SECTION.findall(c.source)]
        for p in (torch_nb, jax_nb)
    ]
    assert sections[0] == sections[1]
    shared = [
        [c.source for c in markdown(p) if "shared" in c.metadata.get("tags", [])]
        for p in (torch_nb, jax_nb)
    ]
    assert shared[0] == shared[1], "a `shared` markdown cell differs between the pair"


@pytest.mark.parametrize(
    ("torch_nb", "jax_nb"),
    [p for p in pairs() if p[0].parts[-3] == "chapters"],
    ids=lambda p: str(p.parent.relative_to(ROOT)),
)
def test_chapter_page_ends_with_the_way_on(torch_nb, jax_nb):
    """Every chapter page ends by linking its twin, its own lab and the bibliography."""
    for page, twin in ((torch_nb, jax_nb), (jax_nb, torch_nb)):
        last = jupytext.read(page).cells[-1]
        assert last.cell_type == "markdown" and last.source.startswith("Next:"), page
        lab = f"../../labs/{page.parent.name}/{page.stem}.ipynb"
        for link in (f"({twin.stem}.ipynb)", f"({lab})", "(../../bibliography.md)"):
            assert link in last.source, (
                f"{page}: the closing cell lacks the link {link}"
            )
