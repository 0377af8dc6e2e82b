"""``gpu_visible`` decides the default scale: tested against a fake ``nvidia-smi`` on PATH."""

import os
from pathlib import Path

import pytest

from helpers import scale

DRIVER = Path("/proc/driver/nvidia/gpus")
pytestmark = pytest.mark.skipif(
    DRIVER.is_dir() and any(DRIVER.iterdir()),
    reason="a real NVIDIA driver answers before nvidia-smi is asked",
)


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """Put a fake ``nvidia-smi`` first on PATH; call it with (its output, its exit code)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    def install(output: str, code: int = 0) -> None:
        smi = tmp_path / "nvidia-smi"
        smi.write_text(
            f"#!/bin/sh\n[ \"$1\" = -L ] || exit 9\necho '{output}'\nexit {code}\n"
        )
        smi.chmod(0o755)

    return install


def test_a_listed_gpu_is_visible(fake_smi):
    fake_smi("GPU 0: NVIDIA H100 (UUID: GPU-0)")
    assert scale.gpu_visible() is True


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_hidden_gpus_are_not_visible(fake_smi, monkeypatch, hidden):
    fake_smi("GPU 0: NVIDIA H100 (UUID: GPU-0)")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert scale.gpu_visible() is False


def test_other_visible_devices_keep_the_gpu(fake_smi, monkeypatch):
    fake_smi("GPU 0: NVIDIA H100 (UUID: GPU-0)")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert scale.gpu_visible() is True


@pytest.mark.parametrize(
    ("output", "code"),
    [("No devices were found", 0), ("GPU 0: NVIDIA H100", 1), ("", 0)],
    ids=["no-devices", "failed", "silent"],
)
def test_an_smi_without_a_working_gpu_means_none(fake_smi, output, code):
    fake_smi(output, code)
    assert scale.gpu_visible() is False


def test_no_smi_means_no_gpu(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    assert scale.gpu_visible() is False
