#!/usr/bin/env python3
"""One entry point for a fresh checkout: sets up `.venv` once, then runs the demo or the tests.

    python3 dev.py demo [ARGS...]   # the main job: `taskmix demo` on the embedded default data
    python3 dev.py test [ARGS...]   # the test suite (pytest)
    python3 dev.py taskmix ARGS...  # any other taskmix command inside the environment

Set-up installs the CPU build of PyTorch pinned by TORCH_SPEC (override with the environment
variable TASKMIX_TORCH, e.g. TASKMIX_TORCH="torch>=2.5" on a CUDA machine), then this package with
its extras. It re-runs only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_SPEC = os.environ.get("TASKMIX_TORCH", "torch==2.13.0")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _stamp() -> str:
    text = (ROOT / "pyproject.toml").read_bytes() + TORCH_SPEC.encode()
    return hashlib.sha256(text).hexdigest()


def ensure_env() -> None:
    stamp_file = VENV / ".taskmix-stamp"
    if stamp_file.exists() and stamp_file.read_text() == _stamp():
        return
    if not (BIN / "python").exists():
        print(f"[dev] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    print(f"[dev] installing {TORCH_SPEC}", flush=True)
    subprocess.run([*pip, TORCH_SPEC], check=True)
    print("[dev] installing taskmix[dev] (editable)", flush=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp_file.write_text(_stamp())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "taskmix"}:
        print(__doc__)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "test":
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        cmd = [str(BIN / "taskmix"), "demo", *rest]
    else:
        cmd = [str(BIN / "taskmix"), *rest]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
