"""docs/pipeline-log.md's tables."""

from __future__ import annotations

import re

from .shared import OUTS, ae_metrics, bench, grid, grid_margin, md_table, rd_floors, rd_points


def gpu_steps() -> str | None:
    f = OUTS / "full" / "steps.txt"
    if not f.is_file():
        return None
    rows = []
    for line in f.read_text().splitlines():
        m = re.match(r"(\S+): (?:rc=(\d+) (\d+)s \(ended at \+(\d+)s\)|(skipped.*))", line)
        if m:
            rc, secs, end, skipped = m.group(2), m.group(3), m.group(4), m.group(5)
            outcome = skipped or ("ok" if rc == "0" else "cut by the deadline" if rc == "124" else f"exit {rc}")
            rows.append([m.group(1), secs or "-", end or "-", outcome])
    return md_table(["step", "seconds", "ended at (s)", "outcome"], rows)


def pipeline_jobs() -> str | None:
    """The Slurm accounting of the CPU pipeline run (sacct --parsable2 dump): one row per job or task."""
    f = OUTS / "pipeline" / "jobs.txt"
    if not f.is_file():
        return None
    lines = [line.split("|") for line in f.read_text().splitlines() if line]
    header, rows = lines[0], [r for r in lines[1:] if "." not in r[0]]  # job steps (.batch) left out
    return md_table(header, rows)


TABLES = {
    "bench": (bench, "make bench"),
    "bench_idle": (lambda: bench("bench_idle.json"), "bench/bench.py --only loader,ae,clf --out outs/bench_idle.json"),
    "bench_convs": (lambda: bench("bench_convs.json"), "experiments/autoencoder/run.sh"),
    "full_steps": (gpu_steps, "experiments/gpu/run.sh collect"),
    "gpu_bench": (lambda: bench("gpu/bench.json"), "bench/gpu_check.sh on a GPU"),
    "gpu_sweep": (lambda: bench("gpu/sweep.json"), "bench/gpu_check.sh on a GPU"),
    "pipeline_ae_metrics": (lambda: ae_metrics("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_grid": (lambda: grid("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_grid_margin": (lambda: grid_margin("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_rd_points": (lambda: rd_points("pipeline/"), "experiments/pipeline/run.sh at commit cdeb663"),
    "pipeline_rd_floors": (lambda: rd_floors("pipeline/"), "experiments/pipeline/run.sh at commit cdeb663"),
    "pipeline_jobs": (pipeline_jobs, "experiments/pipeline/run.sh"),
}
