"""glibc malloc tuning for CPU training: applied once, and optional."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "from taskmix.training.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_value: str) -> str:
    env = {"TASKMIX_MALLOC_TUNING": env_value, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuning_applies_once_on_glibc():
    assert _run("1") == "True True"


def test_tuning_can_be_switched_off():
    assert _run("0") == "False False"


def test_huge_pages_are_asked_for_before_torch_only():
    code = (
        "import os; from taskmix.training.allocator import use_huge_pages as u; a = u(); "
        "import torch; print(a, u(), os.environ['THP_MEM_ALLOC_ENABLE'])"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False", "1"], out.stderr
    env["THP_MEM_ALLOC_ENABLE"] = "0"  # the user's setting wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False", "0"], out.stderr
