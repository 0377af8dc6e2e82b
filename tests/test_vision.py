"""``H.vision`` (chapter 5), both halves: the batched augmentation equals the per-image NumPy
reference, the recipe's pieces equal the libraries', bad input is refused with a clear message,
and a framework half does not import its vision module until a notebook names it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers.scale import sizes
from helpers.vision import (
    channel_stats,
    crop_flip_reference,
    lr_multiplier,
    per_sample_batches,
    schedule_knots,
)

FRAMEWORKS = ["torch", "jax"]


def _vision(framework: str):
    if framework == "torch":
        from helpers.torch import vision
    else:
        from helpers.jax import vision
    return vision


def _array(framework: str, a: np.ndarray):
    if framework == "torch":
        import torch

        return torch.from_numpy(a)
    import jax.numpy as jnp

    return jnp.asarray(a)


def _random_kw(framework: str, seed: int) -> dict:
    if framework == "torch":
        import torch

        return {"generator": torch.Generator().manual_seed(seed)}
    import jax

    return {"rngs": jax.random.key(seed)}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_crop_flip_equals_the_per_image_reference(framework):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    offsets = rng.integers(0, 5, (6, 2))
    flips = rng.random(6) < 0.5
    v = _vision(framework)
    out = v.crop_flip(*(_array(framework, a) for a in (images, offsets, flips)), 2)
    assert np.array_equal(
        np.asarray(out), crop_flip_reference(images, offsets, flips, 2)
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_random_crop_flip_gives_valid_crops_that_differ_per_image(framework):
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, (64, 6, 6, 3), dtype=np.uint8)
    v = _vision(framework)
    out = np.asarray(
        v.random_crop_flip(_array(framework, images), 1, **_random_kw(framework, 0))
    )
    again = np.asarray(
        v.random_crop_flip(_array(framework, images), 1, **_random_kw(framework, 0))
    )
    assert np.array_equal(out, again), "the same seed or key gives the same batch"
    found = set()
    for i in range(len(images)):
        for r in range(3):
            for c in range(3):
                for f in (False, True):
                    ref = crop_flip_reference(
                        images[i : i + 1], np.array([[r, c]]), np.array([f]), 1
                    )
                    if np.array_equal(out[i : i + 1], ref):
                        found.add((r, c, f))
    assert len(found) > 9, "offsets and flips should vary across the batch"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_layouts_are_refused_with_the_expected_layout(framework):
    v = _vision(framework)
    nchw = _array(framework, np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"channels last \(B, H, W, C\)"):
        v.to_input(nchw, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        v.crop_flip(_array(framework, np.zeros((8, 8, 3), np.uint8)), None, None, 2)
    with pytest.raises(ValueError, match="widths are"):
        if framework == "torch":
            v.CifarNet((8, 8))
        else:
            from flax import nnx

            v.CifarNet((8, 8), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_smoothed_cross_entropy_equals_the_formula(framework):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5)
    targets = 0.8 * np.eye(10)[labels] + 0.2 / 10
    z = logits - logits.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    expected = -(targets * log_p).sum(1).mean()
    lab = labels.astype(np.int64 if framework == "torch" else np.int32)
    v = _vision(framework)
    got = v.smoothed_cross_entropy(
        _array(framework, logits), _array(framework, lab), 0.2
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cifarnet_maps_images_to_logits_and_tta_adds_the_mirror(framework):
    v = _vision(framework)
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    if framework == "torch":
        model = v.CifarNet((4, 4, 4, 4))
    else:
        from flax import nnx

        model = v.CifarNet((4, 4, 4, 4), rngs=nnx.Rngs(0))
    x = _array(framework, images)
    plain = v.predict_logits(model, x, mean, std)
    mirrored = v.predict_logits(
        model, _array(framework, images[:, :, ::-1].copy()), mean, std
    )
    tta = v.predict_logits(model, x, mean, std, tta=True)
    assert plain.shape == (4, 10)
    np.testing.assert_allclose(tta, plain + mirrored, rtol=1e-4, atol=1e-5)


def test_schedule_warms_up_then_decays_to_zero():
    xs, ys = schedule_knots(100, 0.2)
    assert xs == [0.0, 20.0, 100.0] and ys == [0.1, 1.0, 0.0]
    assert lr_multiplier(20, 100, 0.2) == 1.0 and lr_multiplier(100, 100, 0.2) == 0.0
    assert lr_multiplier(10, 100, 0.2) == pytest.approx(0.55)
    with pytest.raises(ValueError, match="warmup"):
        schedule_knots(10, 1.5)
    with pytest.raises(ValueError, match="total_steps"):
        schedule_knots(0, 0.2)


def test_torch_scheduler_follows_the_knots_that_optax_interpolates():
    import torch

    from helpers.torch import vision as tv

    s = sizes("cifar10", "smoke")
    opt, sched = tv.make_optimizer(torch.nn.Linear(2, 2), s, 50)
    torch_lr = []
    for _ in range(50):
        torch_lr.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [s.learning_rate * lr_multiplier(i, 50, s.warmup) for i in range(50)]
    np.testing.assert_allclose(torch_lr, expected, rtol=1e-6)


def test_channel_stats_and_per_sample_batches():
    images = np.random.default_rng(4).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    assert mean.shape == std.shape == (3,) and mean.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        channel_stats(images[0])
    batches = list(
        per_sample_batches(images, np.arange(10), mean, std, batch_size=4, pad=1)
    )
    assert len(batches) == 2 and batches[0][0].shape == (4, 4, 4, 3)
    assert batches[0][1].dtype == np.int32


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_importing_a_half_does_not_import_its_vision_module(framework):
    code = (
        f"import sys; from helpers import {framework} as H; "
        f"assert 'helpers.{framework}.vision' not in sys.modules; "
        "H.vision; "
        f"assert 'helpers.{framework}.vision' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_refuses_baseline_for_tasks_without_one():
    from helpers.bench import run

    with pytest.raises(ValueError, match="--baseline is available for cifar10"):
        run("mnist", "torch", "smoke", baseline=True)


def test_skip_ynnpack_on_cpu_sets_the_flag_first_and_only_before_jax_starts():
    keep = "--xla_force_host_platform_device_count=1"  # a flag the user set: kept
    code = f"""if True:
        import os, sys, warnings
        from helpers.vision import skip_ynnpack_on_cpu, YNNPACK_OFF
        assert skip_ynnpack_on_cpu()
        assert os.environ["XLA_FLAGS"] == YNNPACK_OFF + " {keep}", os.environ["XLA_FLAGS"]
        assert skip_ynnpack_on_cpu() and os.environ["XLA_FLAGS"].count(YNNPACK_OFF) == 1
        # the user's own setting, quoted or not, is kept; after a bare word XLA ignores it
        for user, off in [("individual_dot", False), ('""', True)]:
            os.environ["XLA_FLAGS"] = YNNPACK_OFF + user
            assert skip_ynnpack_on_cpu() == off and os.environ["XLA_FLAGS"].endswith(user)
        os.environ["XLA_FLAGS"] = "{keep} threads=1 " + YNNPACK_OFF + "individual_dot"
        assert skip_ynnpack_on_cpu() and os.environ["XLA_FLAGS"].startswith(YNNPACK_OFF + " ")
        # a flag file: left alone, with a warning
        os.environ["XLA_FLAGS"] = "/tmp/xla_flags.txt"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not skip_ynnpack_on_cpu()
        assert os.environ["XLA_FLAGS"] == "/tmp/xla_flags.txt"
        assert any("flag file" in str(w.message) for w in caught), caught
        del os.environ["XLA_FLAGS"]; sys.modules["jax"] = None
        assert not skip_ynnpack_on_cpu() and "XLA_FLAGS" not in os.environ
    """
    env = {**os.environ, "XLA_FLAGS": keep}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_skip_ynnpack_on_cpu_leaves_a_flag_this_jaxlib_rejects_unset():
    # A jaxlib without the flag aborts at start-up on it: the helper tries it in a child
    # process first, warns, and leaves XLA_FLAGS as it was.
    code = """if True:
        import os, warnings
        import helpers.vision as v
        v.YNNPACK_OFF = "--xla_cpu_no_such_flag="
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not v.skip_ynnpack_on_cpu()
        assert any("did not start" in str(w.message) for w in caught), caught
        assert "XLA_FLAGS" not in os.environ
    """
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_ynnpack_flag_changes_the_compiled_gradient_and_no_onednn_flag_does():
    # Chapter 5's JAX page says so: with this jaxlib, a convolution's weight gradient (section
    # 5.6's cell) compiles to a YNNPACK call by default and to XLA's own code with YNNPACK off
    # (skip_ynnpack_on_cpu); no oneDNN option reaches it. --xla_cpu_use_onednn=true (older
    # advice) leaves the default program as it was, byte for byte, and so do all oneDNN
    # options together with YNNPACK on; with YNNPACK off, the experimental custom-call option
    # changes nothing, and oneDNN fusion types (individual_convolution among them) take a
    # matrix product but leave the convolution's program XLA's own, byte for byte. A jaxlib
    # where any of this differs fails here: then the page must change.
    code = """if True:
        import hashlib, jax, jax.numpy as jnp
        def kernel_grad(x, g, w):  # x (8, 15, 15, 16), g (8, 15, 15, 32), w (3, 3, 16, 32)
            conv = lambda w: jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return jax.vjp(conv, w)[1](g)[0]
        args = jnp.ones((8, 15, 15, 16)), jnp.ones((8, 15, 15, 32)), jnp.ones((3, 3, 16, 32))
        text = jax.jit(kernel_grad).lower(*args).compile().as_text()
        assert "convolution" in text, "no convolution compiled"
        # a matrix product, (64, 64) @ (64, 64)
        dot = jax.jit(jnp.matmul).lower(jnp.ones((64, 64)), jnp.ones((64, 64)))
        dot_text = dot.compile().as_text()
        print("__ynn_fusion" in text, "__onednn" in text, "__onednn" in dot_text)
        print(hashlib.sha256(text.encode()).hexdigest())
    """
    from helpers.vision import YNNPACK_OFF

    base = os.environ.get("XLA_FLAGS", "")
    onednn = (
        "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true "
        "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce,individual_convolution"
    )
    settings = {
        "default": "",
        "oneDNN flag": "--xla_cpu_use_onednn=true",
        "every oneDNN option": onednn,
        "YNNPACK off": YNNPACK_OFF,
        "custom calls": f"{YNNPACK_OFF} --xla_cpu_use_onednn=true "
        "--xla_cpu_experimental_onednn_custom_call=true",
        "fusion types": f"{YNNPACK_OFF} {onednn}",
    }
    runs = {}
    # Each flag goes first: XLA ignores flags written after a bare word (a caller's may hold one).
    for name, extra in settings.items():
        env = {
            **os.environ,
            "XLA_FLAGS": f"{extra} {base}".strip(),
            "JAX_PLATFORMS": "cpu",
        }
        child = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        assert child.returncode == 0, f"{name}: {child.stderr[-2000:]}"
        # [YNNPACK in the conv, oneDNN in the conv, oneDNN in the dot, the conv's digest]
        runs[name] = child.stdout.split()[-4:]
    assert runs["default"][:2] == ["True", "False"], runs
    assert runs["oneDNN flag"] == runs["default"], (
        "the oneDNN flag changed the programs"
    )
    # with YNNPACK on, YNNPACK keeps the convolution whatever oneDNN is offered
    every = runs["every oneDNN option"]
    assert every[:2] == ["True", "False"] and every[3] == runs["default"][3], runs
    assert runs["YNNPACK off"][:3] == ["False", "False", "False"], runs
    assert runs["custom calls"] == runs["YNNPACK off"], (
        "custom calls changed the programs"
    )
    conv_only = [runs["fusion types"][i] for i in (0, 1, 3)]
    assert conv_only == [runs["YNNPACK off"][i] for i in (0, 1, 3)], "the conv changed"
    assert runs["fusion types"][2] == "True", "oneDNN fusion types did not take the dot"


def test_xla_stops_reading_flags_at_a_bare_word_and_aborts_on_an_unknown_flag():
    # Chapter 9's JAX page says so of `intra_op_parallelism_threads=1` (a TensorFlow option
    # that online answers add to XLA_FLAGS), and skip_ynnpack_on_cpu relies on it: after a
    # bare word XLA ignores every flag, a valid one (here 3 CPU devices instead of 1) or an
    # unknown one; with `--` an unknown flag aborts the start.
    code = "import jax; print('devices', jax.device_count())"
    devices = "--xla_force_host_platform_device_count=3"
    outcomes = []
    for flags in (
        f"{devices} intra_op_parallelism_threads=1",
        # (XLA_FLAGS must start with "-": else XLA reads it as the name of a flag file)
        f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 {devices} --no_such",
        f"{devices} --intra_op_parallelism_threads=1",
    ):
        env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
        child = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        out = child.stdout.split()[-1:] if child.returncode == 0 else ["aborted"]
        outcomes.append((*out, "Unknown flag in XLA_FLAGS" in child.stderr))
    assert outcomes == [("3", False), ("1", False), ("aborted", True)], outcomes


def _torch_weights_into_jax(torch_model, jax_model) -> None:
    """Copy a torch CifarNet's parameters and BatchNorm statistics into a JAX CifarNet."""
    import jax.numpy as jnp
    from torch import nn

    convs = [m for m in torch_model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in torch_model.modules() if isinstance(m, nn.BatchNorm2d)]
    units = [u for b in jax_model.blocks for u in b.layers]
    # a 3x3 stem is one more conv unit; a whitening stem has fixed filters and a bias
    if hasattr(jax_model.stem, "conv"):
        units.insert(0, jax_model.stem)
    else:
        jax_model.stem.bias[...] = jnp.asarray(torch_model.stem.bias.detach())
    assert len(units) == len(convs) == len(bns)
    for unit, conv, bn in zip(units, convs, bns, strict=True):
        # (O, I, kh, kw) -> (kh, kw, I, O)
        unit.conv.kernel[...] = jnp.asarray(conv.weight.detach().permute(2, 3, 1, 0))
        unit.bn.scale[...] = jnp.asarray(bn.weight.detach())
        unit.bn.bias[...] = jnp.asarray(bn.bias.detach())
        unit.bn.mean[...] = jnp.asarray(bn.running_mean)
        unit.bn.var[...] = jnp.asarray(bn.running_var)
    jax_model.head.kernel[...] = jnp.asarray(torch_model.head.weight.detach().T)


@pytest.mark.parametrize("stem", ["conv", "whitening"])
def test_both_cifarnets_compute_the_same_logits_loss_and_sgd_steps(stem):
    """Same weights in both halves: same logits in both modes, same loss, same SGD steps;
    with either stem (the whitening one also checks the 31 -> 15 -> 7 -> 3 pooling)."""
    import dataclasses

    import jax.numpy as jnp
    import torch
    from flax import nnx

    from helpers.jax import vision as jv
    from helpers.torch import vision as tv

    widths = (4, 8, 8, 8) if stem == "conv" else (24, 8, 8, 8)
    s = dataclasses.replace(sizes("cifar10", "smoke"), widths=widths, stem=stem)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 16)
    mean, std = channel_stats(images)
    filters = tv.stem_filters(s, images, mean, std)
    assert (filters is None) == (stem == "conv")
    torch.manual_seed(0)
    t_model = tv.CifarNet(s.widths, whitening=filters)
    j_model = jv.CifarNet(s.widths, whitening=filters, rngs=nnx.Rngs(0))
    _torch_weights_into_jax(t_model, j_model)
    t_x = tv.to_input(torch.from_numpy(images), mean, std)
    j_x = jv.to_input(jnp.asarray(images), mean, std)
    t_y, j_y = torch.from_numpy(labels), jnp.asarray(labels, jnp.int32)
    t_opt, t_sched = tv.make_optimizer(t_model, s, 10)
    j_opt = jv.make_optimizer(j_model, s, 10)

    @nnx.jit
    def j_step(model, optimizer):
        def j_loss(model):
            return jv.smoothed_cross_entropy(model(j_x), j_y, s.label_smoothing)

        loss, grads = nnx.value_and_grad(j_loss)(model)
        optimizer.update(model, grads)
        return loss

    t_model.train()
    j_model.train()
    for _ in range(3):  # three steps: momentum, weight decay and the schedule all act
        t_loss = tv.smoothed_cross_entropy(t_model(t_x), t_y, s.label_smoothing)
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        t_sched.step()
        loss = j_step(j_model, j_opt)
        assert float(loss) == pytest.approx(float(t_loss.detach()), rel=1e-4)
    with torch.no_grad():
        t_train = t_model(t_x).numpy()
    j_train = np.asarray(nnx.jit(lambda m, x: m(x))(j_model, j_x))
    np.testing.assert_allclose(j_train, t_train, rtol=2e-3, atol=2e-4)
    t_model.eval()
    j_model.eval()
    with torch.no_grad():
        t_eval = t_model(t_x).numpy()
    j_eval = np.asarray(nnx.jit(lambda m, x: m(x))(j_model, j_x))
    np.testing.assert_allclose(j_eval, t_eval, rtol=2e-3, atol=2e-4)


def test_both_cifarnets_start_from_the_same_weight_distribution():
    """The JAX half uses PyTorch's default init, uniform in +-1/sqrt(fan_in), not Flax's."""
    import torch
    from flax import nnx

    from helpers.jax import vision as jv
    from helpers.torch import vision as tv

    torch.manual_seed(0)
    t_model = tv.CifarNet((16, 32, 64, 128))
    j_model = jv.CifarNet((16, 32, 64, 128), rngs=nnx.Rngs(0))
    t_w = t_model.blocks[2][4].weight.detach().numpy()  # (128, 128, 3, 3)
    j_w = np.asarray(j_model.blocks[2].layers[1].conv.kernel[...])  # (3, 3, 128, 128)
    bound = 1 / np.sqrt(128 * 9)
    for w in (t_w, j_w):
        assert np.abs(w).max() <= bound + 1e-7
        assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    t_head = t_model.head.weight.detach().numpy()
    j_head = np.asarray(j_model.head.kernel[...])
    assert j_head.std() == pytest.approx(t_head.std(), rel=0.15)


def _tiny_sizes(**changes):
    import dataclasses

    return dataclasses.replace(
        sizes("cifar10", "smoke"), batch_size=8, widths=(4, 4, 4, 4), stem="conv",
        **changes,
    )  # fmt: skip


def _fit_two_steps(framework: str, compute_dtype: str, ema_decay=None, **kw):
    """Two recipe steps on 16 random images: (step losses, the model, its weight average
    when ``ema_decay`` is given, else None)."""
    v = _vision(framework)
    s = _tiny_sizes(compute_dtype=compute_dtype)
    images = np.random.default_rng(5).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 10
    mean, std = channel_stats(images)
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        model = v.CifarNet(s.widths).to(memory_format=torch.channels_last)
        y = torch.from_numpy(labels).long()
        kw["generator"] = torch.Generator().manual_seed(0)
    else:
        import jax
        import jax.numpy as jnp
        from flax import nnx

        model = v.CifarNet(s.widths, dtype=jnp.dtype(s.compute_dtype), rngs=nnx.Rngs(0))
        y = jax.numpy.asarray(labels.astype(np.int32))
        kw["rngs"] = jax.random.key(0)
    average = None if ema_decay is None else v.ema_model(model, ema_decay)
    history = v.fit_fast(
        model,
        _array(framework, images),
        y,
        s,
        mean,
        std,
        epochs=1,
        progress=False,
        average=average,
        **kw,
    )
    return history.step_loss, model, average


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bfloat16_compute_keeps_float32_weights_and_nearly_the_same_loss(framework):
    full, *_ = _fit_two_steps(framework, "float32")
    mixed, model, _ = _fit_two_steps(framework, "bfloat16")
    assert len(mixed) == 2 and np.isfinite(mixed).all()
    # bfloat16 keeps 8 bits of mantissa: the losses agree to about 1 %, but not exactly.
    np.testing.assert_allclose(mixed, full, rtol=0.03)
    assert mixed != full
    x = np.random.default_rng(6).standard_normal((2, 32, 32, 3)).astype(np.float32)
    if framework == "torch":
        import torch

        v = _vision(framework)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        with v.autocast(_tiny_sizes(compute_dtype="bfloat16"), torch.device("cpu")):
            assert model.stem[0](xt).dtype == torch.bfloat16  # the convolution
            # BatchNorm takes the bfloat16 activations; its statistics stay float32.
            model.stem[1](model.stem[0](xt))
            assert model.stem[1].running_var.dtype == torch.float32
        with v.autocast(_tiny_sizes(compute_dtype="float32"), torch.device("cpu")):
            assert model.stem[0](xt).dtype == torch.float32
        # The model's own dtype= does the same inside forward and returns float32 logits.
        torch.manual_seed(1)
        net = v.CifarNet((4, 4, 4, 4), dtype=torch.bfloat16)
        torch.manual_seed(1)
        plain = v.CifarNet((4, 4, 4, 4))
        assert net(xt).dtype == torch.float32
        torch.testing.assert_close(net(xt), plain(xt), rtol=0.05, atol=0.02)
        assert not torch.equal(net(xt), plain(xt))
    else:
        import jax
        import jax.numpy as jnp
        from flax import nnx

        params = jax.tree.leaves(nnx.state(model, nnx.Param))
        assert all(p.dtype == jnp.float32 for p in params)
        model.eval()
        assert model.stem.conv(jnp.asarray(x)).dtype == jnp.bfloat16
        assert model.stem.bn(model.stem.conv(jnp.asarray(x))).dtype == jnp.float32
        assert model(jnp.asarray(x)).dtype == jnp.float32


def test_jax_fit_fast_on_a_mesh_takes_the_same_steps_and_checks_the_batch():
    from helpers.jax.sharding import make_mesh

    mesh = make_mesh(device="cpu")
    plain, *_ = _fit_two_steps("jax", "float32")
    sharded, *_ = _fit_two_steps("jax", "float32", mesh=mesh)
    np.testing.assert_allclose(sharded, plain, rtol=1e-5)
    fake = type("Mesh", (), {"size": 3})()  # 8 images do not split over 3 devices
    with pytest.raises(ValueError, match="does not split across 3 devices"):
        _fit_two_steps("jax", "float32", mesh=fake)


def _ema_probe(framework: str, model) -> tuple[np.ndarray, np.ndarray]:
    """A weight (the head's) and a BatchNorm running mean (the stem's), as NumPy."""
    if framework == "torch":
        return (
            model.head.weight.detach().numpy().T.copy(),
            model.stem[1].running_mean.numpy().copy(),
        )
    return np.asarray(model.head.kernel[...]), np.asarray(model.stem.bn.mean[...])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ema_model_copies_then_averages_weights_and_batchnorm_statistics(framework):
    v = _vision(framework)
    if framework == "torch":
        import torch

        model = v.CifarNet((4, 4, 4, 4))
    else:
        from flax import nnx

        model = v.CifarNet((4, 4, 4, 4), rngs=nnx.Rngs(0))
    average = v.ema_model(model, 0.75)
    average.update_parameters(model)  # the first update copies
    w0, m0 = _ema_probe(framework, model)
    if framework == "torch":
        with torch.no_grad():
            model.head.weight.add_(1.0)
            model.stem[1].running_mean.add_(2.0)
    else:
        model.head.kernel[...] += 1.0
        model.stem.bn.mean[...] += 2.0
    average.update_parameters(model)  # 0.75 * old + 0.25 * new
    w_avg, m_avg = _ema_probe(framework, average.module)
    np.testing.assert_allclose(w_avg, w0 + 0.25, rtol=1e-6)
    np.testing.assert_allclose(m_avg, m0 + 0.5, rtol=1e-6)
    for decay in (1.5, float("nan")):  # torch's own check lets NaN through
        with pytest.raises(ValueError, match="decay"):
            v.ema_model(model, decay)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fit_fast_updates_the_weight_average_after_every_step(framework):
    # decay 0: the average is the model after each update, so after the last step too;
    # decay 1: it keeps the first update's copy, the weights after step 1, not the last.
    _, model, last = _fit_two_steps(framework, "float32", ema_decay=0.0)
    _, _, first = _fit_two_steps(framework, "float32", ema_decay=1.0)
    averaged, trained = _ema_probe(framework, last.module), _ema_probe(framework, model)
    for a, b in zip(averaged, trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    w_first, _ = _ema_probe(framework, first.module)
    assert not np.allclose(w_first, _ema_probe(framework, model)[0])


def test_bench_table_lists_runs_then_sweeps_best_first():
    from helpers.vision import bench_table

    def record(framework, tta, **extra):
        return {
            "framework": framework, "scale": "gpu", "epochs": 16, "test_accuracy": 0.5,
            "test_accuracy_tta": tta, "train_seconds": 8.5, "compile_seconds": 0.0,
            "train_examples_per_second": 83417.0, "data": "CIFAR-10, JPEG", "date": "2026-11-30T23",
            "commit": "abc", "hardware": {"cpu": "Xeon", "cores": 16, "gpu": "H200"}, **extra,
        }  # fmt: skip

    text = bench_table([
        record("torch", 0.8966, speedup_vs_seed_style=23.129, test_accuracy_ema_tta=0.9012),
        record("torch", 0.80, overrides={"epochs": 12}),
        record("jax", 0.90, overrides={"jax_epochs": 24, "learning_rate": 0.4},
               seed=1, devices=2, train_examples_per_second=490.5,
               test_accuracy_ema_tta=0.905),
        record("jax", 0.70, hardware={"cpu": "Xeon", "cores": 2, "gpu": None},
               load_average="busy", devices=2, stem="whitening"),
        {"model_option": "outline", "framework": "torch"},  # section 5.2's: not listed
    ])  # fmt: skip
    lines = text.splitlines()
    assert lines[0].startswith("Runs at each scale's own sizes") and "img/s" in lines[2]
    assert lines[1].startswith("(sizes of the day")
    # each run: a line of numbers, then its data, hardware, date and commit indented under
    # it, as the second header line is
    assert lines[3] == " " * 10 + "data, hardware, date, commit"
    assert "89.66%" in lines[4] and "23.13x" in lines[4] and "83,417" in lines[4]
    assert lines[5] == " " * 10 + "JPEG copy, H200, 2026-11-30, abc"
    # the weight average's column, blank for a record without it
    assert lines[4].split()[6] == "90.12%"
    assert lines[6].split()[5:7] == ["70.00%", "8.5"]
    # the stem: "conv" for a record from before the whitening stem
    assert lines[4].split()[2] == "conv" and lines[6].split()[2] == "whitening"
    assert (
        lines[7].strip() == "JPEG copy, Xeon, 2 cores, 2 XLA devices, 2026-11-30, abc"
    )
    # the load note stays in the record, not on the page
    assert "busy" not in text
    assert lines[8] == "" and lines[9].startswith("Runs with changed sizes")
    assert (
        "seed" in lines[11] and lines[12].strip() == "chip, date, commit: sizes changed"
    )
    # the better sweep first, with its seed, devices, accuracy and img/s
    assert lines[13].split()[:5] == ["jax", "gpu", "conv", "1", "2"]
    assert lines[13].endswith(" 490")
    assert (
        lines[14]
        == " " * 10 + "H200, 2026-11-30, abc: jax_epochs=24, learning_rate=0.4"
    )
    assert (
        lines[11].index("test acc")
        < lines[13].index("50.00%")
        < lines[11].index("+TTA")
    )
    assert lines[11].index("img/s") < lines[13].index("490")  # under its header
    assert (
        lines[15].split()[:5] == ["torch", "gpu", "conv", "0", "1"]
        and "83,417" in lines[15]
    )
    assert lines[16].endswith(": epochs=12") and len(lines) == 17
    assert lines[13].split()[5:8] == ["50.00%", "90.00%", "90.50%"]
    assert lines[15].split()[5:8] == ["50.00%", "80.00%", "8.5"]


def test_bench_table_fits_a_page_s_output_column():
    """No line longer than WIDTH (a page's output column holds about 100 characters): the
    lines under a row wrap at spaces, never inside a range or a date."""
    from helpers.vision import bench_table
    from helpers.vision_tables import WIDTH

    long_changes = {f"setting_{i}": "x" * 8 for i in range(12)}
    record = {
        "framework": "torch", "scale": "cpu", "epochs": 6, "test_accuracy": 0.8359,
        "test_accuracy_tta": 0.8468, "train_seconds": 1168.1, "compile_seconds": 14.6,
        "train_examples_per_second": 135345.0, "data": "CIFAR-10, JPEG",
        "date": "2026-12-01T14", "commit": "abcdef0", "speedup_vs_seed_style": 23.1,
        "hardware": {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "gpu": None},
        "devices": 2, "xla_flags": "--xla_cpu_experimental_ynn_fusion_type=",
        "seed": [0, 1, 2], "test_accuracy_ema_tta": 0.8442, "interleaved_with": long_changes,
        "spread": {
            "test_accuracy": [0.8344, 0.8380], "test_accuracy_tta": [0.8440, 0.8476],
            "train_seconds": [1208.6, 1224.7], "train_examples_per_second": [1196.0, 1289.0],
            "speedup_vs_seed_style": [1.14, 1.35],
        },
    }  # fmt: skip
    text = bench_table([record, {**record, "overrides": long_changes}])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH and len(lines) > 20
    for (
        line
    ) in lines:  # continuations are indented two more than the lines they continue
        assert line[:1] != " " or line.startswith((" " * 10, " " * 12))
    words = " ".join(line.strip() for line in lines).split()
    assert "83.44%-83.80%," in words and "2026-12-01," in words
    assert "setting_11=xxxxxxxx" in words


def test_bench_table_names_chips_and_data_copies_briefly():
    from helpers.system import short_cpu_name
    from helpers.vision_tables import _data_name

    assert short_cpu_name("Intel(R) Xeon(R) Processor") == "Intel Xeon"
    assert short_cpu_name("AMD EPYC") == "AMD EPYC"
    assert _data_name("CIFAR-10, JPEG re-encoded offline copy (lossy, all 60,000)") == (
        "JPEG copy"
    )
    assert _data_name("CIFAR-10, canonical (lossless)") == "canonical"


def test_bench_table_marks_repeated_runs_as_medians_with_their_ranges():
    from helpers.vision import bench_table

    spread = {
        "test_accuracy": [0.7998, 0.8038], "test_accuracy_tta": [0.8105, 0.8123],
        "train_seconds": [273.24, 318.49], "train_examples_per_second": [422.0, 491.9],
    }  # fmt: skip
    repeated = {
        "framework": "jax", "scale": "cpu", "epochs": 3, "test_accuracy": 0.8007,
        "test_accuracy_tta": 0.8111, "train_seconds": 315.09, "compile_seconds": 3.4,
        "train_examples_per_second": 426.5, "data": "CIFAR-10, JPEG", "date": "2026-12-01T14",
        "commit": "abc", "hardware": {"cpu": "Xeon", "cores": 2, "gpu": None},
        "seed": [0, 1, 2], "repeats": 3, "spread": spread,
    }  # fmt: skip

    def under(lines, first):  # the lines from ``first`` on, as one
        return " ".join(line.strip() for line in lines[first:])

    for record, row in [(repeated, 4), ({**repeated, "overrides": {"x": 3}}, 9)]:
        lines = bench_table([record]).splitlines()
        assert "81.11%" in lines[row] and len(lines) == row + 4
        assert (
            lines[row + 2].strip().startswith("median of 3 runs (seeds 0-2); ranges:")
        )
        assert "test acc 79.98%-80.38%, +TTA 81.05%-81.23%" in under(lines, row + 2)
        assert under(lines, row + 2).endswith("train s 273.2-318.5, img/s 422-492")
    sweep = bench_table([{**repeated, "overrides": {}}]).splitlines()[9]
    assert sweep.split()[3] == "0-2"
    # a --baseline record: the ratio's range, since a median of 1.296 prints as 1.30x
    baseline = {
        **repeated, "speedup_vs_seed_style": 1.296,
        "spread": {**spread, "speedup_vs_seed_style": [1.135, 1.355]},
    }  # fmt: skip
    lines = bench_table([baseline]).splitlines()
    assert lines[4].endswith(" 1.30x")
    assert under(lines, 6).endswith("img/s 422-492, vs seed-style 1.14x-1.35x")
    # a median's epochs (3.0) print as a whole number; XLA's own CPU kernels are named
    ynnpack_off = {
        **baseline,
        "epochs": 3.0,
        "xla_flags": "--xla_cpu_experimental_ynn_fusion_type=",
    }
    row, where = bench_table([ynnpack_off]).splitlines()[4:6]
    assert row.split()[3] == "3" and "Xeon, 2 cores, YNNPACK off," in where
    # a --versus pair: a line under each row names its partner's changes, with or
    # without --repeat (a single-run record has no range line)
    pair = [  # B (--versus stem=conv), then A (no --set: no overrides key)
        {**repeated, "overrides": {"stem": "conv"}, "interleaved_with": {}},
        {**repeated, "interleaved_with": {"stem": "conv"}},
    ]
    lines = bench_table(pair).splitlines()
    partner = (
        "alternated seed by seed with the runs of the other jax row so marked, whose "
    )
    # A, first table: its row, data line, two range lines, then two naming the partner
    assert under(lines[:10], 8) == partner + "sizes changed: stem=conv"
    assert under(lines, -2) == partner + "sizes changed: none (the scale's own sizes)"
    single = [{k: v for k, v in r.items() if k not in ("spread", "seed")} for r in pair]
    lines = bench_table(single).splitlines()
    assert under(lines[:8], 6).startswith(partner) and under(lines, -2).startswith(
        partner
    )
    assert not any(line.strip().startswith("median of") for line in lines)


def test_data_source_names_the_jpeg_copy_and_shows_other_warnings_once():
    import warnings

    from helpers.vision import data_source

    with pytest.warns(UserWarning) as shown:
        with data_source() as source:
            for _ in range(2):  # train, then test: the same warnings twice
                warnings.warn(
                    "CIFAR-10 from the JPEG re-encoded offline copy", stacklevel=1
                )
                warnings.warn("something else", stacklevel=1)
    assert source["data"].startswith("CIFAR-10, JPEG")
    # the JPEG warning became the record; the other one is shown, once
    assert [str(w.message) for w in shown] == ["something else"]
    with data_source() as source:
        pass
    assert source["data"] == "CIFAR-10, canonical (lossless)"


def test_outline_table_lists_only_the_outline_runs():
    from helpers.vision import outline_table

    run = {
        "model_option": "outline", "framework": "torch", "train_examples": 45000,
        "epochs": 10, "test_accuracy": 0.7199, "final_train_loss": 0.1272,
        "test_loss": 1.3352, "hardware": {"cpu": "AMD EPYC", "gpu": None},
        "date": "2026-12-01T04:44", "commit": "acbb8ce",
    }  # fmt: skip
    lines = outline_table([run, {"model_option": "cifarnet"}]).splitlines()
    assert len(lines) == 2 and "45,000 images x 10 epochs" in lines[0]
    assert "71.99%" in lines[0] and "0.13" in lines[1] and "1.34" in lines[1]
    assert "AMD EPYC, 2026-12-01, acbb8ce" in lines[1]
    assert outline_table([]) == "no recorded run of the outline CNN"


def test_score_test_split_names_each_net_with_and_without_flips():
    from helpers.vision import score_test_split

    labels = np.array([0, 1, 1, 0])
    # logits: the plain call gets 3 of 4 right for "", 1 of 4 for "_ema"; flips get all
    right = np.eye(2)[labels]
    logits = {("", False): right.copy(), ("_ema", False): 1 - right}
    logits[("", False)][0] = [0, 1]
    logits[("_ema", False)][0] = [1, 0]
    seen = []

    def predict(net, tta):
        seen.append((net, tta))
        return right if tta else logits[(net, False)]

    got = score_test_split(predict, {"": "", "_ema": "_ema"}, labels, ("cat", "dog"))
    assert got == {
        "test_accuracy": 0.75,
        "test_accuracy_tta": 1.0,
        "test_accuracy_tta_by_class": {"cat": 1.0, "dog": 1.0},
        "test_accuracy_ema": 0.25,
        "test_accuracy_ema_tta": 1.0,
    }
    assert seen == [("", False), ("", True), ("_ema", False), ("_ema", True)]


def test_score_test_split_gives_each_class_its_own_accuracy_with_flips():
    from helpers.vision import score_test_split

    # class 1 absent: no entry for it, and no division by 0
    labels = np.array([0, 0, 0, 0, 2, 2])
    hits = np.array([1, 1, 1, 0, 0, 1], bool)
    predicted = np.where(hits, labels, (labels + 1) % 3)
    logits = np.eye(3)[predicted]  # (6, 3)
    got = score_test_split(lambda net, tta: logits, {"": None}, labels, "abc")
    assert got["test_accuracy_tta_by_class"] == {"a": 0.75, "c": 0.5}
    assert got["test_accuracy_tta"] == round(4 / 6, 4)


def test_image_patches_lists_each_patch_rows_then_columns_then_channels():
    """Every 2x2 (and 3x3) patch, in the (rows, cols, C) order of a filter; bad input refused."""
    from helpers.whitening import image_patches

    x = np.arange(2 * 5 * 4 * 3, dtype=np.float64).reshape(2, 5, 4, 3)
    for k in (2, 3):
        rows, cols = 5 - k + 1, 4 - k + 1
        # independent of the helper's strides: one shifted view per position in the patch
        windows = [x[:, i : i + rows, j : j + cols] for i in range(k) for j in range(k)]
        expected = np.stack(windows, axis=3).reshape(-1, k * k * 3)
        got = image_patches(x, k)
        assert got.shape == (2 * rows * cols, k * k * 3) and got.dtype == x.dtype
        np.testing.assert_array_equal(got, expected)
    # a patch's response to a filter is the convolution (no padding) at its position
    w = np.random.default_rng(0).normal(size=(2, 2, 3))
    conv = sum(x[:, i : i + 4, j : j + 3] @ w[i, j] for i in (0, 1) for j in (0, 1))
    np.testing.assert_allclose(image_patches(x, 2) @ w.ravel(), conv.ravel())
    # uint8 images stay uint8: the dtype is x's
    u8 = image_patches(x.astype(np.uint8), 2)
    assert u8.dtype == np.uint8
    np.testing.assert_array_equal(u8, image_patches(x, 2).astype(np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        image_patches(x[0], 2)
    with pytest.raises(ValueError, match="patch >= 1"):
        image_patches(x, 0)
    with pytest.raises(ValueError, match="no 5x5 patch"):
        image_patches(x, 5)


def test_patch_whitening_decorrelates_the_patches_it_was_computed_from():
    """Responses of the first d filters to the 2x2 patches: unit variance, uncorrelated;
    the second d are the first negated; largest eigenvalue first; bad input is refused."""
    from helpers.whitening import _check_whitening, image_patches, patch_whitening

    rng = np.random.default_rng(0)
    # Correlated channels, and neighbouring pixels correlated along rows only: a filter
    # layout with rows and columns swapped would not whiten these patches.
    base = rng.normal(size=(40, 32, 17, 1)).repeat(2, 2)[:, :32, :32]
    images = np.clip(128 + 40 * base + rng.normal(0, 8, (40, 32, 32, 3)), 0, 255)
    images = images.astype(np.uint8)
    mean, std = channel_stats(images)
    filters = patch_whitening(images, mean, std, eps=1e-6)
    assert filters.shape == (24, 2, 2, 3) and filters.dtype == np.float32
    np.testing.assert_array_equal(filters[12:], -filters[:12])
    x = (images / 255.0 - mean) / std
    # (rows, cols, C) order within a patch, as the filters (image_patches' own test checks
    # that layout against shifted views)
    patches = image_patches(x, 2)
    responses = patches @ filters[:12].reshape(12, 12).T
    second_moment = responses.T @ responses / len(responses)
    np.testing.assert_allclose(second_moment, np.eye(12), atol=2e-3)
    # 1/sqrt(eigenvalue) grows as the eigenvalue falls; each filter's largest entry positive
    norms = np.linalg.norm(filters[:12].reshape(12, -1), axis=1)
    assert np.all(np.diff(norms) >= 0)
    flat = filters[:12].reshape(12, -1)
    assert np.all(flat[np.arange(12), np.abs(flat).argmax(axis=1)] > 0)
    with pytest.raises(ValueError, match="uint8"):
        patch_whitening(images.astype(np.float32), mean, std)
    with pytest.raises(ValueError, match="patch >= 1"):
        patch_whitening(images, mean, std, patch=0)
    with pytest.raises(ValueError, match="no 40x40 patch"):
        patch_whitening(images, mean, std, patch=40)
    with pytest.raises(ValueError, match="no image"):
        patch_whitening(images, mean, std, limit=0)
    # CifarNet's check (both halves): 24 filters of (k, k, 3), nothing else
    _check_whitening(filters, 24)
    for shape in [(12, 2, 2, 3), (24, 2, 3, 3), (24, 2, 2, 4), (24, 12)]:
        with pytest.raises(ValueError, match=r"\(24, k, k, 3\)"):
            _check_whitening(np.zeros(shape, np.float32), 24)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_whitening_stem_keeps_its_filters_and_trains_its_bias(framework):
    """Two recipe steps with a whitening stem: the filters stay, the bias moves; filters of
    the wrong shape are refused; stem_filters gives None for a 3x3 stem."""
    import dataclasses

    v = _vision(framework)
    s = dataclasses.replace(_tiny_sizes(), widths=(24, 4, 4, 4), stem="whitening")
    images = np.random.default_rng(5).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 10
    mean, std = channel_stats(images)
    filters = v.stem_filters(s, images, mean, std)
    assert v.stem_filters(_tiny_sizes(), images, mean, std) is None
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        model = v.CifarNet(s.widths, whitening=filters)
        y, kw = torch.from_numpy(labels).long(), {}

        def stem():
            w = model.stem.weight.permute(0, 2, 3, 1)  # (O, k, k, C), as the filters
            return w.numpy().copy(), model.stem.bias.detach().numpy().copy()

        with pytest.raises(ValueError, match=r"\(24, k, k, 3\)"):
            v.CifarNet(s.widths, whitening=filters[:12])
    else:
        import jax
        from flax import nnx

        model = v.CifarNet(s.widths, whitening=filters, rngs=nnx.Rngs(0))
        y, kw = jax.numpy.asarray(labels.astype(np.int32)), {"rngs": jax.random.key(0)}

        def stem():
            w = np.asarray(model.stem.kernel[...]).transpose(3, 0, 1, 2)  # HWIO -> OHWC
            return w, np.asarray(model.stem.bias[...])

        with pytest.raises(ValueError, match=r"\(24, k, k, 3\)"):
            v.CifarNet(s.widths, whitening=filters[:12], rngs=nnx.Rngs(0))
    w0, b0 = stem()
    np.testing.assert_allclose(w0, filters, rtol=1e-6)
    average = v.ema_model(model, 0.5)
    v.fit_fast(model, _array(framework, images), y, s, mean, std, epochs=1,
               progress=False, average=average, **kw)  # fmt: skip
    w1, b1 = stem()
    np.testing.assert_array_equal(w1, w0)
    assert np.abs(b1 - b0).max() > 1e-6
    model = average.module  # the weight average keeps the filters too
    np.testing.assert_array_equal(stem()[0], w0)


def test_cifar10_sizes_refuse_an_unknown_stem_and_a_whitening_stem_not_24_wide():
    import dataclasses

    s = sizes("cifar10", "smoke")
    with pytest.raises(ValueError, match="'conv' or 'whitening'"):
        dataclasses.replace(s, stem="whiten")
    with pytest.raises(ValueError, match="must be 24"):
        dataclasses.replace(s, widths=(16, 16, 32, 64), stem="whitening")


def test_recipe_data_reads_the_sample_and_keeps_the_validation_split_out():
    import dataclasses

    from helpers.data import load_cifar10
    from helpers.scale import sizes
    from helpers.vision import recipe_data

    smoke = sizes("cifar10", "smoke")
    # "auto": what load_cifar10 finds, the last val_examples of train_examples left out
    x, y, x_test, y_test, _ = recipe_data(smoke)
    full, labels = load_cifar10("train", limit=smoke.train_examples)
    n = smoke.train_examples - smoke.val_examples
    assert len(x) == n and (x == full[:n]).all() and (y == labels[:n]).all()
    test, test_labels = load_cifar10("test", limit=smoke.test_examples)
    assert (x_test == test).all() and (y_test == test_labels).all()
    s = dataclasses.replace(
        smoke, data="sample", train_examples=None, test_examples=None
    )
    x, y, _, y_test, source = recipe_data(s)
    full, labels = load_cifar10("train", sample=True)
    assert x.shape == (4_000 - s.val_examples, 32, 32, 3) and len(y_test) == 1_000
    assert (x == full[: len(x)]).all() and (y == labels[: len(y)]).all()
    assert "lossless" in source
    with pytest.raises(ValueError, match="val_examples=4000 leaves none"):
        recipe_data(dataclasses.replace(s, val_examples=4_000))


def test_recipe_data_reads_the_sample_from_the_jpeg_copy():
    import dataclasses

    from helpers.data import cifar10, load_cifar10
    from helpers.data.download import find_local
    from helpers.scale import sizes
    from helpers.vision import recipe_data

    if find_local(*cifar10._CIFAR10_JPEG) is None:
        pytest.skip(
            "the course's JPEG copy of CIFAR-10 is not here (it is not downloadable)"
        )
    s = dataclasses.replace(
        sizes("cifar10", "smoke"), data="sample-jpeg", train_examples=None
    )
    with pytest.warns(UserWarning, match="JPEG"):
        x, y, *_, source = recipe_data(s)
        jpeg, labels = load_cifar10("train", sample=True, jpeg=True)
    assert (x == jpeg[: len(x)]).all() and (y == labels[: len(y)]).all()
    assert source.startswith("CIFAR-10, JPEG")


def test_bench_table_names_only_the_changes_a_framework_uses():
    from helpers.vision_tables import _changes

    assert _changes({"jax_epochs": 3, "epochs": 2}, "torch") == "epochs=2"
    assert _changes({"jax_epochs": 3}, "torch") == "none that PyTorch uses"
    assert _changes({"jax_epochs": 3}, "jax") == "jax_epochs=3"
