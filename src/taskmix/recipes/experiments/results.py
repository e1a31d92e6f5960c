"""An experiment's results on disk: ``results.json``, ``results.md`` (the table) and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskmix.files import atomic_write_text
from taskmix.recipes.experiments.base import Context, Outcome, Summary
from taskmix.tables import format_cell, print_table

MISSING = "n/a"  # a cell whose run failed or was skipped


def cell(value: Any) -> Any:
    return MISSING if value is None else value


def problems_table(outcomes: dict[str, Outcome]) -> list[list[Any]]:
    """One row per run that did not finish: name, status, error."""
    return [[o.name, o.status, o.error or ""] for o in outcomes.values() if o.status != "done"]


def write_results(
    ctx: Context, summary: Summary, outcomes: dict[str, Outcome], plots: Sequence[Path]
) -> dict[str, Any]:
    """Write ``results.json`` and ``results.md`` into the experiment folder; returns the JSON."""
    runs = {
        name: {
            "status": o.status,
            "labels": o.labels,
            "error": o.error,
            "seconds": o.seconds,
            "final_loss": o.final_loss,
            "step": o.report.get("step"),
            "best": {k: v["value"] for k, v in o.report.get("best", {}).items()},
        }
        for name, o in outcomes.items()
    }
    result = {
        "experiment": ctx.experiment.name,
        "description": ctx.experiment.description,
        "settings": ctx.settings.as_dict(),
        "columns": summary.columns,
        "rows": summary.rows,
        "notes": summary.notes,
        "data": summary.data,
        "runs": runs,
        "plots": [p.name for p in plots],
    }
    atomic_write_text(ctx.out / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(ctx.out / "results.md", markdown(ctx, summary, outcomes, plots))
    return result


def markdown(
    ctx: Context, summary: Summary, outcomes: dict[str, Outcome], plots: Sequence[Path]
) -> str:
    lines = [f"# {ctx.experiment.name}", "", ctx.experiment.description, ""]
    lines += markdown_table(summary.columns, summary.rows)
    lines += ["", *(f"- {note}" for note in summary.notes)]
    problems = problems_table(outcomes)
    if problems:
        lines += ["", "Runs that did not finish:", ""]
        lines += markdown_table(["run", "status", "error"], problems)
    lines += ["", *(f"![{p.stem}]({p.name})" for p in plots)]
    return "\n".join(lines).rstrip() + "\n"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(format_cell(cell(v)) for v in row) + " |" for row in rows]
    return lines


def print_summary(summary: Summary, outcomes: dict[str, Outcome]) -> None:
    print_table(summary.columns, [[cell(v) for v in row] for row in summary.rows])
    for note in summary.notes:
        print(f"- {note}")
    problems = problems_table(outcomes)
    if problems:
        print("\nruns that did not finish:")
        print_table(["run", "status", "error"], problems)


# ---------------------------------------------------------------------------- plots


def pyplot() -> Any:
    """matplotlib's pyplot drawing into files only (matplotlib is the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_plot(
    path: Path,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
) -> Path:
    """Grouped bars: one group per label, one bar per series (a missing value is no bar)."""
    fig, ax = pyplot().subplots(figsize=(max(5.0, 0.6 * len(labels) * max(1, len(series))), 3.6))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * width for j, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=name)
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=30, ha="right"
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize="small")
    return _save(fig, path)


def heatmap(
    path: Path,
    matrix: Sequence[Sequence[float | None]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Signed values on a diverging colour map centred on 0, each cell labelled."""
    values = [[float("nan") if v is None else v for v in row] for row in matrix]
    finite = [abs(v) for row in values for v in row if v == v]
    limit = max(finite, default=1.0) or 1.0
    fig, ax = pyplot().subplots(figsize=(1.0 + 0.9 * len(columns), 1.0 + 0.7 * len(rows)))
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, MISSING if v != v else f"{v:+.1f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    tmp.replace(path)
    return path
