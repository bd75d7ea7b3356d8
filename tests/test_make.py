"""A fresh clone: `make test` installs what its tests drive (the tests build their own data)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")  # the README's commands need it


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", *args], capture_output=True, text=True, timeout=60
    )


def test_make_test_installs_chromium_for_the_browser_tests_or_says_how() -> None:
    plan = make("-n", "test").stdout  # -n: print the recipes without running them
    assert "test -x /usr/bin/chromium" in plan and "apt-get install -y -qq chromium" in plan
    assert "install it with: sudo apt-get install chromium" in plan
    assert plan.index("chromium") < plan.index("-m pytest")  # before the tests run
    assert plan.index("/ruff check .") < plan.index("-m pytest")  # the lint first: it takes a second
    present = make("browser", "CHROMIUM=/bin/sh")  # already there: nothing to do
    assert present.returncode == 0 and present.stdout == present.stderr == ""


def test_ci_just_runs_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in script and script.rstrip().endswith("make test")
