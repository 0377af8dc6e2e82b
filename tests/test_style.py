"""ruff lint and format over the whole project (helpers, tests and notebook sources)."""

import subprocess
import sys

import pytest

from helpers.notebooks import ROOT


@pytest.mark.parametrize(
    "command", [["check"], ["format", "--check"]], ids=["lint", "format"]
)
def test_ruff(command):
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *command, str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
