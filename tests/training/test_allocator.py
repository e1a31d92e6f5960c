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
