"""ruff and mypy over the package, as configured in pyproject.toml (a finding fails the suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is in the test extra: pip install -e '.[test]'")
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_finds_nothing():
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    result = _run("mypy", "--cache-dir", "/dev/null")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ci_installs_what_readme_command_1_installs():
    """The tested set is one: README command 1 and .ci/run install the same extras from constraints.txt
    (a CI without the `fast` extra would skip every compiled-kernel test instead of running it)."""
    readme = (REPO / "README.md").read_text()
    command_1 = next(line for line in readme.splitlines() if line.startswith("python3 -m venv .venv"))
    ci = (REPO / ".ci" / "run").read_text()
    extras = '-e ".[test,fast]" -c constraints.txt'
    assert f"pip install {extras}" in command_1
    assert f"pip install -q {extras}" in ci
    assert "numba==" in (REPO / "constraints.txt").read_text()
