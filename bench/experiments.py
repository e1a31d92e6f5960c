"""Experiment runner: wall time of one 4-run grid with ``--workers 1`` vs ``--workers 2``.

The grid is the ``mixing`` experiment cut to four independent runs (examples-proportional at
two caps, temperature 2, equal) on the tasks of ``--families``, ``--budget`` steps each, the
tiny model. Each side is a fresh ``taskmix experiment`` process on a fresh folder, so both pay
process start-up alike: with 1 worker the runs train one after the other in that process with
all cores' threads (torch's default); with 2 workers each runs in its own process with
cores / 2 threads, so the cores are never oversubscribed. The two sides run one after the
other (never at once: each needs the whole machine); ``--rounds`` repeats the pair and the
median ratio is printed.

    TASKMIX_CACHE=/tmp/tmcache .venv/bin/python bench/experiments.py [--budget 150]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = """\
evals: 1
grid: {{cap: [64, 1024], temperature: [2]}}
base:
  data: {{batch_size: {batch}, input_length: 128, target_length: 32}}
  eval: {{max_examples: {eval_examples}}}
"""


def run_grid(workers: int, settings: Path, args: argparse.Namespace) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"bench-experiments-w{workers}-"))
    command = [
        sys.executable,
        "-m",
        "taskmix.cli.main",
        "experiment",
        "mixing",
        str(settings),
        "--out",
        str(out),
        "--budget",
        str(args.budget),
        "--families",
        args.families,
        "--workers",
        str(workers),
        "--no-plots",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0 or '"status": "failed"' in (out / "results.json").read_text():
        sys.exit(f"workers {workers} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=150, help="steps per run")
    parser.add_argument("--families", default="nli,classification")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-examples", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(
        f"settings: mixing grid of 4 runs, {args.budget} steps each, batch {args.batch_size}, "
        f"families {args.families}, tiny model, {cores} cores; workers 1: one process, "
        f"{cores} threads; workers 2: two processes, {max(1, cores // 2)} threads each"
    )
    settings = Path(tempfile.mkdtemp(prefix="bench-experiments-")) / "settings.yaml"
    settings.write_text(SETTINGS.format(batch=args.batch_size, eval_examples=args.eval_examples))
    ratios = []
    for round_ in range(1, args.rounds + 1):
        one = run_grid(1, settings, args)
        two = run_grid(2, settings, args)
        ratios.append(one / two)
        print(
            f"round {round_}: workers 1 {one:.1f} s, workers 2 {two:.1f} s, ratio {one / two:.2f}x"
        )
    print(f"summary: workers {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
