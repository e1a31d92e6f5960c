"""``RUN_DIR/report.json`` and the data counts it holds: rewritten with every checkpoint, so it
always matches the newest one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskmix.files import atomic_write_text
from taskmix.training.batches import REPORT_KINDS, BatchStream
from taskmix.training.checkpoint import list_checkpoints
from taskmix.training.scores import RunState


def data_counts(batches: BatchStream) -> dict[str, dict[str, dict[str, int]]]:
    """``{source: {kind: {reason: count}}}`` of what this rank's data pipeline truncated,
    dropped or skipped so far (sources: ``packing`` and each task)."""
    return {
        source: {kind: dict(getattr(report, kind)) for kind in REPORT_KINDS}
        for source, report in batches.reports().items()
    }


def merge_data_counts(per_rank: list[dict[str, dict[str, dict[str, int]]]]) -> dict[str, Any]:
    """The ranks' counts summed: ``totals`` per kind, and ``sources`` with any count."""
    sources: dict[str, dict[str, dict[str, int]]] = {}
    for counts in per_rank:
        for source, kinds in counts.items():
            merged = sources.setdefault(source, {kind: {} for kind in REPORT_KINDS})
            for kind, reasons in kinds.items():
                for reason, n in reasons.items():
                    merged[kind][reason] = merged[kind].get(reason, 0) + n
    totals = {
        kind: sum(sum(kinds[kind].values()) for kinds in sources.values()) for kind in REPORT_KINDS
    }
    nonzero = {
        source: {kind: reasons for kind, reasons in kinds.items() if reasons}
        for source, kinds in sources.items()
        if any(kinds.values())
    }
    return {"totals": totals, "sources": nonzero}


def write_report(
    run_dir: Path, state: RunState, data: dict[str, Any], cpu: dict[str, bool]
) -> None:
    """RUN_DIR/report.json, rewritten with every checkpoint so it matches the newest one: the
    last evaluation, the best score and step of every task/metric, the data counts, and the
    CPU switches in effect (``training.cpu``)."""
    kept = {p.name for p in list_checkpoints(run_dir / "checkpoints")}
    best = {}
    for name, entry in sorted(state.best.items()):
        folder = f"step-{entry['step']:08d}"
        best[name] = {**entry, "checkpoint": f"checkpoints/{folder}" if folder in kept else None}
    report = {
        "step": state.step,
        "final": state.history[-1] if state.history else None,
        "best": best,
        "data": data,
        "cpu": cpu,
    }
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2) + "\n")
