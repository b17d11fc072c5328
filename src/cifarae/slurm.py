"""The pipeline on Slurm through plain sbatch: one job (or job array) per stage, chained with afterok.

slurm/pipeline.sh runs this (`python jobs/pipeline.py --executor sbatch`). Every job runs
slurm/stage.sbatch, which runs its command (array task i: the stage's i-th) through jobs/launch.sh
and requeues itself when training stopped on a signal after saving last.pt. A failed stage
cancels every stage after it (--kill-on-invalid-dep=yes) instead of leaving it pending for ever.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from .errors import UserError
from .pipeline import REPO, Stage, job_env, stage_gpus

TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "UNKNOWN",  # neither scontrol nor sacct knows the job any more
}


def submission_env(args: argparse.Namespace) -> dict[str, str]:
    """This environment without the SLURM_* variables of a job it may run in (`sbatch slurm/pipeline.sh`):
    the stage jobs must not inherit the pipeline job's own allocation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    return {**env, **job_env(args)}


def sbatch_resources(stage: Stage, args: argparse.Namespace) -> list[str]:
    opts = [f"--partition={args.partition}"] if args.partition else []
    opts += [f"--cpus-per-task={args.cpus}"] if args.cpus else []
    if stage.resources == "train":
        opts += [f"--gpus-per-node={args.gpus}"] if args.gpus is not None else []
        opts += [f"--nodes={args.nodes}", f"--time={args.time or stage.time_min}"]
    else:
        opts += [f"--gpus-per-node={min(args.gpus, 1)}"] if args.gpus is not None else []
        opts += ["--nodes=1", f"--time={stage.time_min}"]
    return opts


def submit(stages: list[Stage], args: argparse.Namespace) -> dict[str, str]:
    """Submit every stage; returns {stage: job id}. A refused stage cancels those already submitted."""
    if shutil.which("sbatch") is None:
        raise UserError("sbatch not found: submit from a Slurm login node, or run locally with make pipeline")
    env = submission_env(args)
    logs = args.run / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    for stage in stages:
        n = len(stage.commands)
        cmd = ["sbatch", "--parsable", f"--chdir={REPO}", f"--job-name=cifarae-{stage.name}"]
        cmd += [f"--output={logs}/{stage.name}-%A_%a.out", f"--array=0-{n - 1}"] if n > 1 else []
        cmd += [] if n > 1 else [f"--output={logs}/{stage.name}-%j.out"]
        cmd += sbatch_resources(stage, args)
        if stage.after:
            cmd += [f"--dependency=afterok:{':'.join(ids[a] for a in stage.after)}", "--kill-on-invalid-dep=yes"]
        cmd += [*shlex.split(os.environ.get("SBATCH_ARGS", "")), "slurm/stage.sbatch"]
        commands = "\n".join(shlex.join(c) for c in stage.commands)
        stage_env = {**env, "GPUS": stage_gpus(stage, args), "STAGE_COMMANDS": commands}
        proc = subprocess.run(cmd, cwd=REPO, env=stage_env, capture_output=True, text=True)
        if proc.returncode != 0:
            if ids:
                subprocess.run(["scancel", *ids.values()], capture_output=True)
            cancelled = f" (cancelled jobs {' '.join(ids.values())})" if ids else ""
            raise UserError(f"sbatch refused the {stage.name} stage: {proc.stderr.strip()}{cancelled}")
        ids[stage.name] = proc.stdout.strip().split(";")[0]
    return ids


def job_states(job_id: str) -> list[tuple[str, str]]:
    """(state, exit code) of each task of a job or job array: scontrol, or sacct once Slurm forgot it."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        state, code = re.search(r"JobState=(\S+)", line), re.search(r" ExitCode=(\S+)", line)
        if state:
            rows.append((state.group(1), code.group(1) if code else "?"))
    if not rows:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"], capture_output=True, text=True
        ).stdout
        rows = [(line.split("|")[0].split()[0], line.split("|")[1]) for line in out.splitlines() if "|" in line]
    return rows or [("UNKNOWN", "?")]


def first_error(logs: list[Path]) -> str:
    for log in logs:
        lines = log.read_text(errors="replace").splitlines()
        found = [line for line in lines if line.startswith(("error:", "Traceback"))]
        if found:
            return found[0]
    tails = [" ".join(log.read_text(errors="replace").splitlines()[-3:]) for log in logs]
    return next((t for t in tails if t), "no log")


def wait(stages: list[Stage], ids: dict[str, str], run: Path, poll_s: float = 2.0) -> int:
    """Follow the jobs until all have ended, then say how each stage ended; 0 only if all succeeded."""
    last = ""
    while True:
        states = {name: job_states(job) for name, job in ids.items()}
        now = " ".join(f"{name}={','.join(sorted({s for s, _ in rows}))}" for name, rows in states.items())
        if now != last:
            print(f"pipeline: {now}", flush=True)
            last = now
        if all(s in TERMINAL for rows in states.values() for s, _ in rows):
            break
        time.sleep(poll_s)
    culprit = None
    for stage in stages:
        job, rows = ids[stage.name], states[stage.name]
        if all(s == "COMPLETED" for s, _ in rows):
            print(f"pipeline: {stage.name} (job {job}) succeeded")
        elif culprit and all(s == "CANCELLED" for s, _ in rows):
            why = f"because {culprit} did not succeed"
            print(f"pipeline: {stage.name} (job {job}) was cancelled without running, {why}")
        else:
            culprit = culprit or stage.name
            state, code = next((s, c) for s, c in rows if s != "COMPLETED")
            logs = sorted((run / "logs").glob(f"{stage.name}-{job}*.out"))
            where = f"log {logs[0]}" if len(logs) == 1 else f"logs {run / 'logs'}/{stage.name}-{job}*.out"
            print(
                f"pipeline: {stage.name} (job {job}) FAILED: state {state}, exit code {code.split(':')[0]}: "
                f"{first_error(logs) if logs else 'no log'} ({where})"
            )
    if culprit:
        print(f"pipeline: FAILED at the {culprit} stage", flush=True)
        return 1
    print(f"pipeline: all stages succeeded; results under {run}", flush=True)
    return 0
