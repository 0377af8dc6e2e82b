"""Chapter 10's helpers and the round trips its notebooks rely on, on tiny models.

- ``H.deploy``: latency percentiles, sizes on disk, the fresh process, the table; bad input
  gets a clear error (both halves).
- Export: a tiny network exported with ``torch.export`` (reloaded in a fresh process), to ONNX
  (run by onnxruntime) and with ``jax.export`` (serialised, reloaded in a fresh process)
  reproduces the original outputs to tolerance, at a batch size other than the example's.
- Per-channel int8: the notebooks' formula equals the lab's numpy reference in both layouts.
- Integrated gradients: completeness within 1 % at a modest step count on a tiny network.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from helpers import deploy
from helpers.labs.lab10 import checks as lab10

FRAMEWORKS = ["torch", "jax"]


def half(framework: str):
    return importlib.import_module(f"helpers.{framework}.deploy")


# ---------------------------------------------------------------- the framework-free core
def test_percentiles_are_in_milliseconds():
    p = deploy.percentiles_ms([0.001] * 19 + [0.1])
    assert p["p50"] == pytest.approx(1.0) and p["p95"] > 1.0


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [-1.0]])
def test_percentiles_reject_bad_durations(bad):
    with pytest.raises(ValueError, match="duration"):
        deploy.percentiles_ms(bad)


def test_time_calls_counts_warmup_and_repeats():
    calls = []
    out = deploy.time_calls(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and set(out) == {"p50", "p95"}
    with pytest.raises(ValueError, match="repeats"):
        deploy.time_calls(lambda: None, repeats=0)


def test_archive_size_sees_zeros_only_when_zipped():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(200, 200)).astype(np.float32)
    sparse = dense * (rng.random(dense.shape) < 0.1)
    a, b = deploy.archive_size({"w": dense}), deploy.archive_size({"w": sparse})
    assert a["bytes"] == b["bytes"] and b["zipped_bytes"] < a["zipped_bytes"] / 2
    int8 = deploy.archive_size({"w": dense.astype(np.int8)})
    assert int8["bytes"] < a["bytes"] / 3
    with pytest.raises(TypeError, match="numeric"):
        deploy.archive_size({"w": np.array(["a"])})


def test_fresh_process_returns_arrays_and_reports_failures():
    script = (
        "import sys, numpy as np\n"
        "x = np.load(sys.argv[1])['x']\n"
        "np.savez(sys.argv[2], y=2 * x)\n"
    )
    out = deploy.run_in_fresh_process(script, {"x": np.arange(3)})
    np.testing.assert_array_equal(out["y"], [0, 2, 4])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        deploy.run_in_fresh_process("1 / 0", {})


def test_format_table_aligns_columns():
    text = deploy.format_table([{"a": 1.23456, "b": "x"}, {"a": 12345.0, "b": "yy"}])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert "1.23" in text and "12,345" in text
    with pytest.raises(ValueError):
        deploy.format_table([])


def test_latency_verdicts_count_a_gap_only_beyond_the_groups_spread():
    def row(params, b1, b64):
        return {"params": params, "b1 p50": b1, "b64 p50": b64}

    rows = [
        row(100, 1.0, 10.0),
        row("-", 1.2, 10.5),
        row(10, 0.5, 9.0),
        row(20, 0.6, 10.2),
    ]
    b1, b64 = deploy.latency_verdicts(rows, reference_params=100)
    # b1: narrow 0.5-0.6, wide 1.0-1.2, spread 0.2 < gap 0.4
    assert b1.startswith("b1 p50: narrow 0.5-0.6 ms, wide 1-1.2 ms, spread 0.2 ms")
    assert b1.endswith("-> narrow faster, beyond the spread")
    # b64: narrow 9-10.2 overlaps wide 10-10.5
    assert b64.endswith("-> within the spread: noise")
    slower = [row(100, 1.0, 1.0), row(10, 2.0, 1.0)]
    assert deploy.latency_verdicts(slower, 100, columns=["b1 p50"])[0].endswith(
        "-> narrow slower, beyond the spread"
    )
    with pytest.raises(ValueError, match="below and at 100"):
        deploy.latency_verdicts([row(100, 1.0, 1.0)], 100)


def test_format_table_prints_the_columns_asked_for_in_their_order():
    rows = [{"a": 1.0, "b": "x", "c": "long value"}, {"a": 2.0, "b": "yy", "c": "z"}]
    lines = deploy.format_table(rows, columns=["b", "a"]).splitlines()
    assert lines[0].split() == ["b", "a"] and "long" not in "\n".join(lines)
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    for bad in (["a", "missing"], []):
        with pytest.raises(ValueError, match="expected columns"):
            deploy.format_table(rows, columns=bad)


# ---------------------------------------------------------------- the halves
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_latency_and_saved_size(framework):
    H = half(framework)
    if framework == "torch":
        import torch

        layer = torch.nn.Linear(8, 4)
        x, state = torch.ones(2, 8), layer.state_dict()
    else:
        import jax.numpy as jnp
        from flax import nnx

        layer = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
        x, state = jnp.ones((2, 8)), nnx.state(layer)
    out = H.latency_ms(layer, x, repeats=3, warmup=1)
    assert 0 < out["p50"] <= out["p95"]
    size = H.saved_size(state)
    assert size["bytes"] >= 4 * (8 * 4 + 4) and size["zipped_bytes"] > 0
    with pytest.raises(TypeError, match="batch"):
        H.latency_ms(layer, [[1.0] * 8], repeats=1)


# ---------------------------------------------------------------- export round trips
def test_torch_export_and_onnx_round_trip(tmp_path):
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.GELU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5),
    ).eval()  # fmt: skip
    example = torch.randn(2, 3, 8, 8)
    probe = torch.randn(7, 3, 8, 8)  # another batch size than the example's
    with torch.no_grad():
        reference = model(probe).numpy()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        model, (example,), dynamic_shapes={"input": {0: batch}}
    )
    path = tmp_path / "m.pt2"
    torch.export.save(program, path)
    script = (
        "import sys, numpy as np, torch\n"
        f"m = torch.export.load({str(path)!r}).module()\n"
        "x = torch.from_numpy(np.load(sys.argv[1])['x'])\n"
        "np.savez(sys.argv[2], y=m(x).detach().numpy())\n"
    )
    fresh = deploy.run_in_fresh_process(script, {"x": probe.numpy()})["y"]
    np.testing.assert_allclose(fresh, reference, rtol=1e-5, atol=1e-5)

    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (example,), onnx_path, dynamo=True,
                      dynamic_shapes={"input": {0: batch}}, verbose=False)  # fmt: skip
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    np.testing.assert_allclose(
        session.run(None, {name: probe.numpy()})[0], reference, rtol=1e-4, atol=1e-5
    )


def test_jax_export_round_trip_in_a_fresh_process(tmp_path):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)
            self.head = nnx.Linear(4, 5, rngs=rngs)

        def __call__(self, x):
            return self.head(jax.nn.gelu(self.conv(x)).max(axis=(1, 2)))

    graphdef, state = nnx.split(Tiny(nnx.Rngs(0)))

    def forward(x):
        return nnx.merge(graphdef, state)(x)

    (b,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(forward))(
        jax.ShapeDtypeStruct((b, 8, 8, 3), jnp.float32)
    )
    path = tmp_path / "m.jax_exported"
    path.write_bytes(exported.serialize())
    probe = np.random.default_rng(0).normal(size=(7, 8, 8, 3)).astype(np.float32)
    script = (
        "import sys, numpy as np, jax\n"
        f"e = jax.export.deserialize(bytearray(open({str(path)!r}, 'rb').read()))\n"
        "np.savez(sys.argv[2], y=np.asarray(e.call(np.load(sys.argv[1])['x'])))\n"
    )
    fresh = deploy.run_in_fresh_process(script, {"x": probe})["y"]
    np.testing.assert_allclose(fresh, np.asarray(forward(probe)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- int8 and IG
def test_int8_formula_of_both_notebooks_equals_the_reference():
    import jax.numpy as jnp
    import torch

    for channels_last in (False, True):
        for w, axis in lab10.quantize_cases(channels_last):
            q_ref, s_ref = lab10.quantize_reference(w, axis)
            others = tuple(d for d in range(w.ndim) if d != axis)
            if channels_last:  # the JAX notebook's formula
                s = jnp.abs(jnp.asarray(w)).max(axis=others, keepdims=True) / 127
                s = jnp.maximum(s, jnp.finfo(jnp.float32).tiny)  # an all-zero channel
                q = jnp.clip(jnp.round(w / s), -127, 127).astype(jnp.int8)
            else:  # the PyTorch notebook's formula
                t = torch.from_numpy(w)
                s = t.abs().amax(dim=others, keepdim=True) / 127
                s = s.clamp(min=torch.finfo(torch.float32).tiny)  # an all-zero channel
                q = torch.clamp(torch.round(t / s), -127, 127).to(torch.int8)
            np.testing.assert_array_equal(np.asarray(q), q_ref)
            np.testing.assert_allclose(np.asarray(s), s_ref, rtol=1e-6)
            # dequantized, every weight is within half a step of its channel's scale
            assert np.all(np.abs(q_ref * s_ref - w) <= s_ref / 2 + 1e-7)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_integrated_gradients_are_complete_on_a_tiny_network(framework):
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(6, 16)), rng.normal(size=(16,))
    x, baseline, steps = rng.normal(size=(3, 6)), np.full((3, 6), -0.2), 64
    alphas = np.linspace(0, 1, steps + 1)
    weights = np.full(steps + 1, 1 / steps)
    weights[[0, -1]] /= 2
    if framework == "torch":
        import torch

        def f(z):
            return torch.nn.functional.gelu(
                z @ torch.from_numpy(w1)
            ) @ torch.from_numpy(w2)

        xt, bt = torch.from_numpy(x), torch.from_numpy(baseline)
        total = torch.zeros_like(xt)
        for a, wt in zip(alphas, weights, strict=True):
            p = (bt + a * (xt - bt)).requires_grad_(True)
            total += wt * torch.autograd.grad(f(p).sum(), p)[0]
        ig = ((xt - bt) * total).numpy()
        gap = (f(xt) - f(bt)).detach().numpy()
    else:
        import jax
        import jax.numpy as jnp

        def f(z):
            return jax.nn.gelu(z @ jnp.asarray(w1, z.dtype)) @ jnp.asarray(w2, z.dtype)

        xj, bj = jnp.asarray(x, jnp.float32), jnp.asarray(baseline, jnp.float32)
        grad = jax.grad(lambda p: f(p).sum())
        grads = jax.vmap(lambda a: grad(bj + a * (xj - bj)))(jnp.asarray(alphas))
        ig = np.asarray((xj - bj) * jnp.tensordot(jnp.asarray(weights), grads, axes=1))
        gap = np.asarray(f(xj) - f(bj))
    error = np.abs(ig.sum(1) - gap) / np.abs(gap)
    assert error.max() < 0.01


def test_plot_size_accuracy_keeps_coincident_variants_visible():
    import matplotlib.pyplot as plt

    from helpers.deploy import plot_size_accuracy

    rows = [{"variant": "float32", "size": 100.0, "acc": 0.8},
            {"variant": "int8", "size": 100.0, "acc": 0.8},  # on top of float32
            {"variant": "pruned", "size": 30.0, "acc": 0.7}]  # fmt: skip
    ax = plot_size_accuracy(rows, title="t").axes[0]
    sizes = [c.get_sizes()[0] for c in ax.collections]
    assert sizes[1] < sizes[0] == sizes[2]  # the second marker nests inside the first
    assert not ax.texts  # names in the legend, where they cannot collide
    names = [text.get_text() for text in ax.get_legend().get_texts()]
    assert names == ["float32", "int8", "pruned"]
    with pytest.raises(ValueError, match="no rows"):
        plot_size_accuracy([], title="t")
    plt.close("all")
