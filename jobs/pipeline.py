"""The whole chain from Python with submitit: AE pretraining -> classifier grid -> evaluation (-> codec RD).

    python jobs/pipeline.py --data PATH --out runs/grid [--profile smoke|full] [--modes linear,finetune,scratch]
                            [--grid jobs/configs/clf_grid.yaml] [--lambdas 0.004,0.012,0.035]
                            [--gpus N] [--nodes N] [--cpus N] [--partition P] [--time MIN] [--eval-args "..."]
                            [--local] [key=value ...]

On Slurm each stage is a job that starts only when the one before it succeeded (afterok, with
--kill-on-invalid-dep=yes): the autoencoder, then the classifier grid as one job array
(map_array, one task per mode), then an evaluation array (one task per run) after the whole
grid. --local runs the same chain with submitit's local executor (stage after stage, no Slurm) for debugging.

--grid FILE replaces the one-run-per-mode classifier stage by every cell of a jobs/clf_grid.py grid
file (modes x label fractions x seeds, in OUT/grid/<cell>), and adds a last job that tabulates it
(OUT/grid/grid.{csv,json,png}, W&B table). --lambdas adds the codec branch, which needs only the
autoencoder and so runs beside the classifiers: codec_init.py (OUT/codec/init.pt), one codec
training + prior refit per lambda as an array (OUT/codec/lambda<L>), then rd_eval.py over all of
them against JPEG and WebP (OUT/rd/rd.json and the RD plots).

Every job runs its src/ script through jobs/launch.sh in a subprocess, as the sbatch scripts do,
so GPUs, several nodes and CPU-only nodes are handled the same way. Jobs are checkpointable: on
pre-emption or near the time limit submitit calls ``Stage.checkpoint()`` (on rank 0 only, inside
its signal handler), which asks the training processes to save last.pt and stop, then requeues
the job. The requeued job runs the same command and the engine resumes from last.pt, the same
checkpoint the engine writes at every epoch, so no state lives in the submitit pickle.
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import clf_grid  # jobs/clf_grid.py (beside this file): the cells of a grid file
import submitit

ROOT = Path(__file__).resolve().parents[1]
REQUEUE_EXIT_CODE = 75  # src/cifarae/engine.py: the run saved last.pt after SIGTERM/SIGUSR1
MODES = ("linear", "finetune", "scratch")


class StageFailed(RuntimeError):
    pass


class Stage(submitit.helpers.Checkpointable):
    """Run src/ scripts one after the other through jobs/launch.sh, from the checkout ``root``."""

    def __init__(self, root: Path, env: dict[str, str], stop_timeout_s: float = 90.0):
        self.root = str(root)
        self.env = env
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:  # the running process stays out of the requeue pickle
        return {**self.__dict__, "_proc": None}

    def __call__(self, *commands: list[str]) -> list[str]:
        env = {**os.environ, **self.env, "PYTHON": sys.executable}
        for command in commands:
            self._run(command, env)
        return [c[c.index("--out" if "--out" in c else "--run") + 1] for c in commands]

    def _run(self, command: list[str], env: dict[str, str]) -> None:
        print(f"stage: {' '.join(command)}", flush=True)
        # submitit's own stop signal (USR2) goes to every process of the job: the launcher must
        # not die of it; checkpoint() below tells the training processes to stop instead.
        self._proc = subprocess.Popen(
            ["bash", "jobs/launch.sh", *command],
            cwd=self.root,
            env=env,
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
        return super().checkpoint(*args, **kwargs)  # resubmit the same commands; they resume


def _tee(stream, tail: collections.deque) -> None:
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10: cifar-10-batches-py root, image folder, .tar.gz or cache")
    p.add_argument("--out", required=True, type=Path, help="pipeline directory: OUT/ae, OUT/clf-<mode>, OUT/submitit")
    p.add_argument("--profile", default="full", help="jobs/configs/<profile>.yaml: smoke (tiny) or full (default)")
    p.add_argument("--config", help="YAML config for the training stages instead of the profile")
    p.add_argument("--modes", default=",".join(MODES), help="classifier grid (default linear,finetune,scratch)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per node (default 1; 0 for CPU nodes)")
    p.add_argument("--procs", type=int, default=None, help="training processes per node (default: --gpus)")
    p.add_argument("--nodes", type=int, default=1, help="nodes for the training stages")
    p.add_argument("--cpus", type=int, default=None, help="CPUs per task (default 8)")
    p.add_argument("--partition", default=None)
    p.add_argument("--time", type=int, default=240, help="time limit of each training job, minutes")
    p.add_argument("--eval-args", default="", help='extra src/evaluate.py flags, e.g. "--splits test --no-wandb"')
    p.add_argument("--grid", type=Path, default=None, help="classifier grid file (jobs/configs/clf_grid.yaml)")
    p.add_argument(
        "--lambdas", default="", help="codec rate-distortion lambdas, e.g. 0.004,0.012,0.035 (none: no codec)"
    )
    p.add_argument("--latent-channels", type=int, default=48, help="codec latent channels (codec_init.py)")
    p.add_argument("--codec-epochs", type=int, default=None, help="epochs of each codec run (default: the config's)")
    p.add_argument("--rd-splits", default="test,val", help="splits of the RD evaluation")
    p.add_argument("--rd-limit", type=int, default=0, help=">0: RD on a stratified subset of this many images")
    p.add_argument("--local", action="store_true", help="run the chain locally with submitit's LocalExecutor")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for the training stages")
    args = p.parse_args(argv)
    args.no_wandb = "--no-wandb" in shlex.split(args.eval_args)  # the same for the table and RD jobs
    args.modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"--modes {','.join(bad) or '(none)'}: use {', '.join(MODES)}")
    if args.grid is not None:
        args.grid = args.grid.resolve()
        if not args.grid.is_file():
            p.error(f"grid file {args.grid} does not exist (e.g. jobs/configs/clf_grid.yaml)")
    try:
        args.lambdas = [float(x) for x in args.lambdas.split(",") if x]
    except ValueError:
        p.error(f"--lambdas {args.lambdas!r}: give numbers separated by commas, e.g. 0.004,0.012,0.035")
    args.config = str(Path(args.config).resolve()) if args.config else str(ROOT / f"jobs/configs/{args.profile}.yaml")
    if not Path(args.config).is_file():
        p.error(f"config {args.config} does not exist (profiles: smoke, full)")
    if not Path(args.data).exists():
        p.error(f"data path {args.data} does not exist")
    for item in args.overrides:
        if "=" not in item:
            p.error(f"override {item!r} must look like key=value")
    return args


def make_executor(args: argparse.Namespace) -> submitit.AutoExecutor:
    cluster = "local" if args.local else "slurm"
    if cluster == "slurm" and subprocess.run(["which", "sbatch"], capture_output=True).returncode:
        sys.exit("error: sbatch not found; run with --local, or on a Slurm login node")
    executor = submitit.AutoExecutor(folder=args.out / "submitit" / "%j", cluster=cluster)
    gpus = 1 if args.gpus is None else args.gpus
    executor.update_parameters(
        gpus_per_node=gpus,
        tasks_per_node=1,
        cpus_per_task=args.cpus or (1 if args.local else 8),
        timeout_min=args.time,
        slurm_partition=args.partition,
        slurm_signal_delay_s=120,
    )
    return executor


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    args.out = out
    data = str(Path(args.data).resolve())
    executor = make_executor(args)
    procs = args.procs if args.procs is not None else args.gpus
    stage = Stage(ROOT, {} if procs is None else {"GPUS": str(procs)})
    single = Stage(ROOT, {"GPUS": "0" if args.gpus == 0 else "1"})  # evaluation and the codec tools: one process
    train_common = ["--data", data, "--config", args.config]
    ae_dir = out / "ae"
    if args.grid is None:  # classifier run directory -> its command line
        clf_runs = {
            out / f"clf-{m}": ["src/train_clf.py", *train_common, "--encoder", str(ae_dir), "--mode", m]
            + ["--out", str(out / f"clf-{m}"), *args.overrides]
            for m in args.modes
        }
    else:
        grid = clf_grid.load_grid(args.grid)
        cells = clf_grid.cells(grid, data, str(ae_dir), out / "grid", args.overrides, [])
        clf_runs = {cell: cmd for *_, cell, cmd in cells}
    clf_dirs, clf_commands = list(clf_runs), list(clf_runs.values())

    def after(job_id: str) -> None:
        if not args.local:
            executor.update_parameters(
                slurm_additional_parameters={"dependency": f"afterok:{job_id}", "kill_on_invalid_dep": "yes"}
            )

    def submit(name: str, stage_fn: Stage, commands: list, depends_on: str, array: bool = True, **params) -> str:
        """After job ``depends_on``: a job array, one task per command, or (array=False) one job that
        runs the commands in turn. Returns the job (array) id; --local waits for the result."""
        after(depends_on)
        executor.update_parameters(name=f"cifarae-{name}", **params)
        jobs[name] = executor.map_array(stage_fn, commands) if array else [executor.submit(stage_fn, *commands)]
        if args.local:
            for job in jobs[name]:
                job.result()
        return jobs[name][0].job_id.split("_")[0]

    executor.update_parameters(name="cifarae-ae", nodes=args.nodes)
    ae = executor.submit(stage, ["src/train_ae.py", *train_common, "--out", str(ae_dir), *args.overrides])
    print(f"submitit pipeline: {out} ({'local' if args.local else 'slurm'}, config {args.config})")
    print(f"  ae    job {ae.job_id} -> {ae_dir}", flush=True)
    jobs = {"ae": [ae]}
    ids = {"ae": ae.job_id}
    try:
        if args.local:
            ae.result()
        ids["clf"] = submit("clf", stage, clf_commands, ae.job_id)
        names = ", ".join(d.name for d in clf_dirs)
        print(f"  clf   job array {ids['clf']} ({names}) after ae -> {clf_dirs[0].parent}", flush=True)
        eval_commands = [
            ["src/evaluate.py", "--run", str(d), "--data", data, *shlex.split(args.eval_args)]
            for d in (ae_dir, *clf_dirs)
        ]
        ids["eval"] = submit("eval", single, eval_commands, ids["clf"], nodes=1, timeout_min=30)
        print(f"  eval  job array {ids['eval']} (each run) after the clf array -> <run>/eval/metrics.json", flush=True)
        if args.grid is not None:
            table = [
                "jobs/clf_grid.py",
                "--tabulate",
                "--data",
                data,
                "--grid",
                str(args.grid),
                "--out",
                str(out / "grid"),
            ]
            table += ["--no-wandb"] if args.no_wandb else []
            ids["grid"] = submit("grid", single, [table], ids["eval"], array=False)
            print(f"  grid  job {ids['grid']} after the eval array -> {out}/grid/grid.csv", flush=True)
        if args.lambdas:
            executor.update_parameters(timeout_min=args.time)
            submit_codec_branch(args, data, ae.job_id, ids, submit, single, stage)
        print("job ids: " + " ".join(f"{k}={v}" for k, v in ids.items()), flush=True)
    except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as err:
        return report(jobs, err)  # --local: a stage failed before the next was submitted
    return report(jobs)


def submit_codec_branch(args, data: str, ae_id: str, ids: dict, submit, single: Stage, stage: Stage) -> None:
    """codec_init.py -> one codec training per lambda (array) -> prior refits + rd_eval.py (one job)."""
    codec_dir = args.out / "codec"
    init = codec_dir / "init.pt"
    init_cmd = ["src/codec_init.py", "--ae", str(args.out / "ae"), "--out", str(init), "--data", data]
    init_cmd += ["--latent-channels", str(args.latent_channels)]
    ids["codec_init"] = submit("codec_init", single, [init_cmd], ae_id, array=False)
    # The GPU report's codec recipe; the command line's overrides and --codec-epochs come after it.
    codec_overrides = ["entropy_model=factorized", f"latent_channels={args.latent_channels}", f"init_from={init}"]
    codec_overrides += ["lr=0.001", "warmup_epochs=0.2", *args.overrides]
    codec_overrides += [f"epochs={args.codec_epochs}"] if args.codec_epochs else []
    runs = [codec_dir / f"lambda{lam:g}" for lam in args.lambdas]
    train = [
        ["src/train_ae.py", "--data", data, "--config", args.config, "--out", str(run), f"rd_lambda={lam:g}"]
        + codec_overrides
        for lam, run in zip(args.lambdas, runs)
    ]
    ids["codec"] = submit("codec", stage, train, ids["codec_init"])
    rd_cmd = ["src/rd_eval.py", "--data", data, "--runs", *map(str, runs), "--out", str(args.out / "rd")]
    rd_cmd += ["--splits", *args.rd_splits.split(",")] + (["--limit", str(args.rd_limit)] if args.rd_limit else [])
    rd_cmd += ["--no-wandb"] if args.no_wandb else []
    fits = [["src/codec_fit.py", "--run", str(run), "--data", data] for run in runs]
    ids["rd"] = submit("rd", single, [*fits, rd_cmd], ids["codec"], array=False)
    print(
        f"  codec job {ids['codec_init']} (init) -> array {ids['codec']} (lambda "
        f"{', '.join(f'{lam:g}' for lam in args.lambdas)}) -> job {ids['rd']} (prior refits, RD) -> {args.out}/rd",
        flush=True,
    )


def report(jobs: dict, early_error: Exception | None = None) -> int:
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
    if early_error is not None and culprit is None:
        culprit = "local"
        print(f"pipeline: FAILED: {_reason(early_error)}")
    if culprit:
        print(f"pipeline: FAILED at the {culprit} stage", flush=True)
        return 1
    print("pipeline: all stages succeeded; metrics in <run>/eval/metrics.json", flush=True)
    return 0


def _reason(err: Exception) -> str:
    text = str(err)
    for line in reversed(text.splitlines()):
        if "StageFailed:" in line:
            return line.split("StageFailed:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
