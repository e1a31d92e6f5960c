"""Checkpoints that survive a kill at any moment and detect truncation or corruption.

A checkpoint is a folder ``step-00001234/`` with the model (safetensors), the optimizer state
(``torch.save``, read back with ``weights_only=True``), ``state.json`` (step, data-stream state,
RNG states, metrics, the model's config and the run's identity: architecture and vocabulary
fingerprint) and, written last, ``manifest.json`` with the size and SHA-256 of every file.

A run that freezes parameters of a model from ``model.init_from`` stores only the trained
tensors; ``state.json``'s ``frozen`` entry names the frozen keys, where they come from and a
SHA-256 of their values, and loading checks the rebuilt model against it
(``training.trainable.frozen_record``).
It is built in a temporary folder and renamed into place, so a folder with that name is complete;
the manifest catches later damage.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from taskmix.errors import CheckpointError
from taskmix.models.hf import load_weights
from taskmix.training.identity import check_identity

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
PREFIX = "step-"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU) and, where CUDA is available, every GPU's RNG state, as JSON
    (GPU dropout draws from the CUDA generators, so resuming exactly needs them too)."""
    py = random.getstate()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": _jsonable(np.random.get_state(legacy=False)),
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, inner, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"]}
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state.get("cuda") and torch.cuda.is_available():
        # A machine with fewer GPUs restores those it has (such a resume is not exact anyway).
        count = min(len(state["cuda"]), torch.cuda.device_count())
        torch.cuda.set_rng_state_all(
            [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"][:count]]
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def tensors_fingerprint(model: torch.nn.Module, keys: Collection[str]) -> str:
    """SHA-256 of the model's ``state_dict`` entries ``keys``: names, dtypes, shapes, values."""
    digest = hashlib.sha256()
    tensors = model.state_dict()
    for key in sorted(keys):
        t = tensors[key].detach().contiguous().cpu()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(
    directory: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
    *,
    exclude: Collection[str] = (),
) -> Path:
    """Write ``directory/step-XXXXXXXX`` atomically and return its path; the ``state_dict``
    keys in ``exclude`` (frozen tensors that can be rebuilt) are not written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{final.name}.", suffix=".tmp"))
    skip = set(exclude)
    try:
        tensors = {
            k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in skip
        }
        save_file(_untie(tensors), tmp / MODEL_FILE)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(_jsonable({"step": step, **state})))
        manifest = {
            p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (tied embeddings): store a copy of each repeat."""
    seen: set[int] = set()
    out = {}
    for name, t in tensors.items():
        key = t.untyped_storage().data_ptr()
        out[name] = t.clone() if key in seen else t
        seen.add(key)
    return out


def verify_checkpoint(path: Path) -> None:
    """Raise CheckpointError unless every file matches the manifest."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{manifest_path}: unreadable manifest ({err})") from None
    for name, entry in manifest.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing from checkpoint")
        if file.stat().st_size != entry["size"]:
            raise CheckpointError(
                f"{file}: truncated or resized ({file.stat().st_size} bytes, expected {entry['size']})"
            )
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"{file}: corrupted (SHA-256 does not match the manifest)")


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint folders, oldest first (temporary folders of interrupted saves are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_valid_checkpoint(directory: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that verifies, and the problems found with any newer ones."""
    problems = []
    for path in reversed(list_checkpoints(directory)):
        try:
            verify_checkpoint(path)
            return path, problems
        except CheckpointError as err:
            problems.append(str(err))
    return None, problems


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's ``state.json`` (not verified against the manifest: see load_checkpoint)."""
    try:
        return json.loads((Path(path) / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable {STATE_FILE} ({err})") from None


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Verify, check ``identity`` (architecture, vocabulary fingerprint) if given, then load
    weights (strict: another shape is an error) and optimizer state; returns the state.

    A checkpoint without its frozen tensors (``state["frozen"]["init_from"]``) needs ``model``
    built from that ``init_from``: its frozen tensors must match the recorded fingerprint."""
    path = Path(path)
    verify_checkpoint(path)
    state = read_state(path)
    if identity is not None:
        check_identity(path, state.get("identity"), identity)
    weights = load_file(path / MODEL_FILE)
    frozen = state.get("frozen") or {}
    if frozen.get("init_from"):
        keys = frozen["keys"]
        if tensors_fingerprint(model, keys) != frozen["sha256"]:
            raise CheckpointError(
                f"{path}: holds only the trained parameters; the {len(keys)} frozen ones come "
                f"from {frozen['init_from']}, but the model built from there has other values "
                "(SHA-256 differs): that checkpoint changed since this run started"
            )
        own = model.state_dict()
        weights = {**{k: own[k] for k in keys}, **weights}
    load_weights(model, weights, path)
    if optimizer is not None:
        opt_file = path / OPTIMIZER_FILE
        if not opt_file.is_file():
            raise CheckpointError(f"{path}: no optimizer state to resume from")
        saved = torch.load(opt_file, map_location="cpu", weights_only=True)
        try:
            optimizer.load_state_dict(saved)
        except ValueError as err:  # other parameter groups or group sizes
            raise CheckpointError(
                f"{path}: the optimizer state does not fit this run's parameter groups ({err})"
            ) from None
    return state


def prune_checkpoints(directory: Path, *, keep_last: int, protected: set[str]) -> None:
    """Delete all but the newest ``keep_last`` checkpoints, never one named in ``protected``."""
    checkpoints = list_checkpoints(directory)
    for path in checkpoints[: max(0, len(checkpoints) - keep_last)]:
        if path.name not in protected:
            shutil.rmtree(path, ignore_errors=True)
