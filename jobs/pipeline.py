"""Run the whole pipeline (jobs/pipeline.yaml): AE -> classifiers and codec -> evaluation.

    python jobs/pipeline.py --data PATH [--run runs/full] [--profile smoke|full] [--modes finetune,linear,scratch]
                            [--grid jobs/configs/clf_grid.yaml] [--no-codec] [--gpus N] [--nodes N] [--cpus N]
                            [--partition P] [--time MIN] [--eval-args "..."] [--executor submitit|sbatch|local]
                            [key=value ...]

Executors:
  submitit (default)  each stage a Slurm job, or a job array with one task per command, submitted
                      with submitit and chained with afterok; waits and reports how each ended.
  sbatch              the same jobs with plain sbatch (what slurm/pipeline.sh runs); --wait follows them.
  local (--local)     every stage on this machine, one after the other (what `make pipeline` runs).

Every command runs its src/ script through jobs/launch.sh, so GPUs, several nodes and CPU-only
nodes are handled the same way. Jobs are checkpointable: on pre-emption or near the time limit
submitit calls ``StageCommand.checkpoint()`` (on rank 0 only, inside its signal handler), which
asks the training processes to save last.pt and stop, then requeues the job. The requeued job
runs the same command and the engine resumes from last.pt, so no state lives in submitit's pickle.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import submitit

from cifarae import pipeline, slurm
from cifarae.errors import REQUEUE_EXIT_CODE, UserError, cli_main


class StageFailed(RuntimeError):
    pass


class StageCommand(submitit.helpers.Checkpointable):
    """Run one src/ script through jobs/launch.sh, from the checkout, with ``env`` added."""

    def __init__(self, env: dict[str, str], stop_timeout_s: float = 90.0):
        self.env = env
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:  # the running process stays out of the requeue pickle
        return {**self.__dict__, "_proc": None}

    def __call__(self, command: list[str]) -> None:
        print(f"stage: {' '.join(command)}", flush=True)
        # submitit's own stop signal (USR2) goes to every process of the job: the launcher must
        # not die of it; checkpoint() below tells the training processes to stop instead.
        self._proc = subprocess.Popen(
            ["bash", "jobs/launch.sh", *command],
            cwd=pipeline.REPO,
            env={**os.environ, **self.env, "PYTHON": sys.executable},
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN),
        )
        tail: collections.deque[str] = collections.deque(maxlen=30)
        pump = threading.Thread(target=_tee, args=(self._proc.stderr, tail), daemon=True)
        pump.start()
        # Poll rather than block in wait(): checkpoint() runs in a signal handler on this thread.
        while (rc := self._proc.poll()) is None:
            time.sleep(0.5)
        pump.join(timeout=5)
        if rc == REQUEUE_EXIT_CODE and os.environ.get("SLURM_JOB_ID"):
            # Stopped by a SIGTERM from Slurm (pre-emption, scancel): last.pt is saved and Slurm is
            # about to requeue or end this job. Give it the time; then report.
            print("stage: training stopped after saving last.pt; waiting for Slurm to requeue this job", flush=True)
            time.sleep(120)
        if rc != 0:
            errors = [line for line in tail if line.startswith("error:")]
            detail = errors[-1] if errors else (tail[-1] if tail else "no output")
            raise StageFailed(f"{command[0]} exited with code {rc}: {detail}")

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit (rank 0, in its signal handler) before it requeues this job."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            print("stage: pre-empted or near the time limit: asking training to save last.pt", flush=True)
            os.kill(proc.pid, signal.SIGUSR1)  # launch.sh passes it to the training processes
            deadline = time.monotonic() + self.stop_timeout_s
            # waitid(WNOWAIT) sees the exit without reaping it and without Popen's lock, which the
            # interrupted main loop may hold.
            while time.monotonic() < deadline:
                if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    break
                time.sleep(0.2)
        return super().checkpoint(*args, **kwargs)  # resubmit the same command; it resumes


def _tee(stream, tail: collections.deque) -> None:
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))


def submit_submitit(stages: list[pipeline.Stage], args) -> dict[str, list]:
    """Every stage as a submitit job (one command) or job array (several), chained with afterok."""
    if shutil.which("sbatch") is None:
        raise UserError("sbatch not found: run on a Slurm login node, or run locally with --local")
    executor = submitit.AutoExecutor(folder=args.run / "submitit" / "%j", cluster="slurm")
    env = pipeline.job_env(args)
    jobs: dict[str, list] = {}
    for stage in stages:
        train = stage.resources == "train"
        gpus = 1 if args.gpus is None else (args.gpus if train else min(args.gpus, 1))
        deps = [jobs[a][0].job_id.split("_")[0] for a in stage.after]
        executor.update_parameters(
            name=f"cifarae-{stage.name}",
            nodes=args.nodes if train else 1,
            gpus_per_node=gpus,
            tasks_per_node=1,
            cpus_per_task=args.cpus or 8,
            timeout_min=(args.time if train and args.time else stage.time_min),
            slurm_partition=args.partition,
            slurm_signal_delay_s=120,
            slurm_additional_parameters=(
                {"dependency": f"afterok:{':'.join(deps)}", "kill_on_invalid_dep": "yes"} if deps else {}
            ),
        )
        runner = StageCommand({**env, "GPUS": pipeline.stage_gpus(stage, args)})
        if len(stage.commands) == 1:
            jobs[stage.name] = [executor.submit(runner, stage.commands[0])]
        else:
            jobs[stage.name] = executor.map_array(runner, stage.commands)
        after = f" after {', '.join(stage.after)}" if stage.after else ""
        print(
            f"  {stage.name:6s} job {jobs[stage.name][0].job_id.split('_')[0]} ({len(stage.commands)} task(s)){after}"
        )
    print("job ids: " + " ".join(f"{n}={j[0].job_id.split('_')[0]}" for n, j in jobs.items()), flush=True)
    return jobs


def report(jobs: dict[str, list]) -> int:
    """Wait for every job and say how each stage ended; 0 only if all succeeded."""
    culprit = None
    for name, stage_jobs in jobs.items():
        for job in stage_jobs:
            try:
                job.result()
                print(f"pipeline: {name} (job {job.job_id}) succeeded", flush=True)
            except submitit.core.utils.FailedJobError as err:
                culprit = culprit or name
                print(f"pipeline: {name} (job {job.job_id}) FAILED: {_reason(err)} (log {job.paths.stderr})")
            except submitit.core.utils.UncompletedJobError as err:
                if culprit:
                    print(
                        f"pipeline: {name} (job {job.job_id}) was cancelled without running, "
                        f"because {culprit} did not succeed (afterok dependency)"
                    )
                else:
                    culprit = name
                    print(f"pipeline: {name} (job {job.job_id}) did not complete: {_reason(err)}")
    if culprit:
        print(f"pipeline: FAILED at the {culprit} stage", flush=True)
        return 1
    print("pipeline: all stages succeeded", flush=True)
    return 0


def _reason(err: Exception) -> str:
    text = str(err)
    for line in reversed(text.splitlines()):
        if "StageFailed:" in line:
            return line.split("StageFailed:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


@cli_main
def main(argv=None) -> int:
    p = pipeline.parser("full", __doc__.splitlines()[0])
    p.add_argument("--executor", choices=("submitit", "sbatch", "local"), default="submitit")
    p.add_argument("--local", dest="executor", action="store_const", const="local", help="= --executor local")
    p.add_argument("--wait", action="store_true", help="sbatch: follow the jobs and report how each stage ended")
    args = pipeline.resolve_args(p.parse_args(argv))
    stages = pipeline.plan(args)
    if args.executor == "local":
        return pipeline.run_local(stages, args)
    print(f"pipeline: {args.run} ({args.executor}, config {args.config}, data {args.data})")
    if args.executor == "submitit":
        return report(submit_submitit(stages, args))
    ids = slurm.submit(stages, args)
    for stage in stages:
        after = f"after {', '.join(stage.after)}" if stage.after else ""
        print(f"  {stage.name:6s} job {ids[stage.name]:8s} {len(stage.commands)} task(s) {after}")
    print("job ids: " + " ".join(f"{name}={job}" for name, job in ids.items()))
    print(f"logs: {args.run / 'logs'}/<stage>-<job>.out", flush=True)
    if not args.wait:
        print(f"follow with: squeue -j {','.join(ids.values())}   (or run again with --wait)")
        return 0
    return slurm.wait(stages, ids, args.run)


if __name__ == "__main__":
    sys.exit(main())
