import pytest

from helpers import scale


def test_unset_scale_follows_hardware(monkeypatch):
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    monkeypatch.setattr(scale, "gpu_visible", lambda: False)
    assert scale.current_scale() == "cpu"
    monkeypatch.setattr(scale, "gpu_visible", lambda: True)
    assert scale.current_scale() == "gpu"


@pytest.mark.parametrize("value", ["smoke", "cpu", "gpu", " GPU "])
def test_explicit_scale(monkeypatch, value):
    monkeypatch.setenv("BOOK_SCALE", value)
    assert scale.current_scale() == value.strip().lower()


def test_unknown_scale_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "bogus")
    with pytest.raises(ValueError, match=r"BOOK_SCALE='bogus'.*smoke, cpu, gpu"):
        scale.current_scale()


def test_hidden_gpus_mean_no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert scale.gpu_visible() is False


def test_sizes_grow_with_scale():
    smoke, cpu, gpu = (scale.sizes("mnist", s) for s in scale.SCALES)
    assert smoke.train_examples < 60_000 and cpu.train_examples is None
    assert smoke.epochs <= cpu.epochs <= gpu.epochs
    assert scale.sizes("timing", "smoke").n < scale.sizes("timing", "cpu").n


def test_sizes_are_frozen():
    with pytest.raises(AttributeError):
        scale.sizes("mnist", "cpu").epochs = 100


def test_sizes_reject_unknown_task_and_scale():
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        scale.sizes("nope", "cpu")
    with pytest.raises(ValueError, match="scale 'huge'"):
        scale.sizes("mnist", "huge")


def test_gpu_scale_on_a_cpu_is_said_loudly(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "gpu")
    message = scale.scale_mismatch("gpu", "cpu", "JAX")
    assert (
        "JAX sees no GPU" in message and 'os.environ["BOOK_SCALE"] = "cpu"' in message
    )
    assert scale.scale_mismatch("gpu", "cuda", "PyTorch") is None
    assert scale.scale_mismatch("cpu", "cpu", "PyTorch") is None


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_runtime_info_warns_when_gpu_scale_runs_on_a_cpu(monkeypatch, framework):
    import importlib

    H = importlib.import_module(f"helpers.{framework}")
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    # Nvidia-smi, CPU-only wheels.
    monkeypatch.setattr(scale, "gpu_visible", lambda: True)
    with pytest.warns(scale.ScaleWarning, match="sees no GPU"):
        info = H.runtime_info()
    assert info["scale"] == "gpu" and info["device"].startswith("cpu")
    monkeypatch.setenv("BOOK_SCALE", "cpu")  # the reader switches
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert H.runtime_info()["scale"] == "cpu"


def test_every_topic_module_is_in_the_one_table():
    """A topic module of helpers.scale whose tasks were not merged would be invisible."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(scale.__path__):
        module = importlib.import_module(f"helpers.scale.{info.name}")
        for task, by_scale in module.SIZES.items():
            assert scale._SIZES[task] is by_scale, f"{info.name}: {task} not merged"
            assert set(by_scale) == set(scale.SCALES), f"{task} lacks a scale"


def test_a_task_defined_in_two_topic_modules_is_refused():
    from types import SimpleNamespace

    one, other = (
        SimpleNamespace(SIZES={"mnist": {}}),
        SimpleNamespace(SIZES={"mnist": {}}),
    )
    with pytest.raises(ValueError, match=r"defined twice.*mnist"):
        scale._merge(one, other)


def test_cifar10_sizes_reject_an_unknown_data_choice():
    import dataclasses

    cpu = scale.sizes("cifar10", "cpu")
    assert cpu.data == "auto"
    assert dataclasses.replace(cpu, data="sample-jpeg").data == "sample-jpeg"
    with pytest.raises(ValueError, match="'auto', 'sample' or 'sample-jpeg'"):
        dataclasses.replace(cpu, data="jpeg")
