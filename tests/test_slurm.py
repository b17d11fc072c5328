"""The cluster-launch layer against a live Slurm cluster (CI starts one with slurm/local/start.sh).

Tiny synthetic data and the smoke profile keep each job to seconds; the Slurm time is mostly
Python start-up. The jobs run in the submitting environment (sbatch exports it), so their data
cache goes to a temporary directory and W&B stays offline (and off where the tests do not need
it: it costs seconds per process).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from conftest import script_env

REPO = Path(__file__).resolve().parents[1]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
# Every job on a GPU-less test node: no GPUs requested, one CPU each (two jobs run at once).
CPU_JOB = ["--gpus-per-node=0", "--cpus-per-task=1"]

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm here (sinfo not found); CI installs Slurm and starts slurm/local/start.sh")
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = proc.stdout.split()
    if proc.returncode != 0 or not {"idle", "mixed", "allocated", "completing"} & set(states):
        pytest.fail(
            f"sinfo is installed but no usable node answers ({proc.stderr.strip() or states}); "
            "start a local cluster with: sudo bash slurm/local/start.sh"
        )


@pytest.fixture
def env(tmp_path) -> dict:
    """The environment the jobs inherit: offline W&B, a private data cache."""
    return {**script_env(), "CIFARAE_CACHE": str(tmp_path / "cache")}


def run(cmd, env, timeout=300, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    m = re.search(r"JobState=(\S+)", out)
    if m:
        return m.group(1)
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True)
    return (out.stdout.split() or ["UNKNOWN"])[0]


def wait_jobs(job_ids, timeout=240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {j: job_state(j) for j in job_ids}
        if all(s in TERMINAL for s in states.values()):
            return states
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *job_ids])
            raise AssertionError(f"jobs still not finished after {timeout}s: {states}")
        time.sleep(1)


def accounting(job_ids) -> dict[str, dict]:
    """sacct's view (the jobs' final records), waiting for it to catch up with the finished jobs."""
    for _ in range(30):
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode,Start,End"],
            capture_output=True,
            text=True,
        ).stdout
        rows = {}
        for line in out.splitlines():
            job, state, exit_code, start, end = line.split("|")
            rows[job] = {"state": state.split()[0], "exit": exit_code, "start": start, "end": end}
        if rows and all(r["state"] in TERMINAL and r["end"] not in ("Unknown", "") for r in rows.values()):
            return rows
        time.sleep(1)
    raise AssertionError(f"sacct did not report the finished jobs {job_ids}: {out}")


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def assert_in_order(rows: dict, earlier: list[str], later: list[str]) -> None:
    last_end = max(when(rows[j]["end"]) for j in earlier)
    first_start = min(when(rows[j]["start"]) for j in later)
    assert last_end <= first_start, f"{later} started at {first_start}, before {earlier} ended at {last_end}"


def wait_for_file(path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.05)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def backbone(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


# --------------------------------------------------------------------------- sbatch pipeline
def test_sbatch_pipeline_runs_the_chain_in_order(cluster, env, synth_folder, tmp_path):
    out = tmp_path / "pipe"
    proc = run(
        ["bash", "slurm/pipeline.sh", "--data", synth_folder, "--run", out, "--profile", "smoke"]
        + ["--gpus", "0", "--cpus", "1", "--eval-args=--no-wandb --splits test", "--wait", "wandb=false"],
        env,
    )
    ids = dict(re.findall(r"(ae|clf|eval)=(\d+)", re.search(r"^job ids: .*$", proc.stdout, re.M).group(0)))
    assert "all stages succeeded" in proc.stdout, proc.stdout

    rows = accounting(list(ids.values()))
    assert {r["state"] for r in rows.values()} == {"COMPLETED"}, rows
    assert_in_order(rows, [ids["ae"]], [ids["clf"]])
    assert_in_order(rows, [ids["clf"]], [ids["eval"]])

    ae, clf = out / "ae", out / "clf-finetune"
    # The classifier was built on the AE's checkpoint: its config names the AE run, and the
    # backbone it inherited has the AE's architecture.
    clf_ckpt, ae_ckpt = load(clf / "best.pt"), load(ae / "best.pt")
    assert clf_ckpt["config"]["encoder"] == str(ae)
    assert clf_ckpt["config"]["mode"] == "finetune"
    assert clf_ckpt["config"]["widths"] == ae_ckpt["config"]["widths"]
    assert {k: v.shape for k, v in backbone(clf_ckpt["model"]).items()} == {
        k: v.shape for k, v in backbone(ae_ckpt["model"]).items()
    }
    for run_dir in (ae, clf):
        assert (run_dir / "eval" / "metrics.json").is_file(), sorted(run_dir.rglob("*"))
    # Logs land in the run directories.
    assert "[ae] epoch 1/1" in (ae / f"slurm-{ids['ae']}.out").read_text(errors="replace")
    assert (clf / f"slurm-{ids['clf']}.out").is_file()
    assert "evaluated" in (out / f"slurm-{ids['eval']}.out").read_text(errors="replace")


def test_failing_first_stage_cancels_the_later_ones(cluster, env, synth_folder, tmp_path):
    proc = run(
        ["bash", "slurm/pipeline.sh", "--data", synth_folder, "--run", tmp_path / "bad", "--profile", "smoke"]
        + ["--gpus", "0", "--cpus", "1", "--wait", "no_such_key=1"],
        env,
        check=False,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    ids = dict(re.findall(r"(ae|clf|eval)=(\d+)", proc.stdout))
    report = proc.stdout
    assert re.search(rf"ae \(job {ids['ae']}\) FAILED: .*exit code 2: error: unknown config key 'no_such_key'", report)
    for stage in ("clf", "eval"):
        assert re.search(rf"{stage} \(job {ids[stage]}\) was cancelled without running, because ae", report), report
    assert "FAILED at the ae stage" in report
    rows = accounting(list(ids.values()))
    assert [rows[ids[s]]["state"] for s in ("ae", "clf", "eval")] == ["FAILED", "CANCELLED", "CANCELLED"]
    assert rows[ids["clf"]]["start"] in ("None", "Unknown") or rows[ids["clf"]]["start"] == rows[ids["clf"]]["end"]


# --------------------------------------------------------------------------- requeue
@pytest.mark.parametrize("machines", [1, 2], ids=["one-process", "two-machines-srun-accelerate"])
def test_signalled_job_requeues_and_ends_bitwise_equal(cluster, env, synth_folder, tmp_path, machines):
    """USR1 to the batch shell (as --signal=B:USR1@120 sends it near the time limit) reaches the
    training process(es); they save last.pt and exit 75; the job requeues itself and resumes.
    The final weights equal those of an uninterrupted run, bit for bit.

    "two machines" runs the multi-node path on the one test node: two srun tasks, each running
    `accelerate launch --multi_gpu --num_machines 2 --machine_rank <task> --main_process_ip <first
    host>` (LAUNCHER=accelerate: the GPU launcher, whose workers train on the CPU with gloo where,
    as here, there is no GPU)."""
    layout = ["--ntasks", "2", "--ntasks-per-node", "2"] if machines == 2 else []
    overrides = ["epochs=6", "batch_size=16", "wandb=false"]  # ~35 steps an epoch: time to signal mid-run
    jobs = {}
    for name in ("signalled", "uninterrupted"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        job_env = {**env, "DATA": str(synth_folder), "RUN": str(run_dir), "PROFILE": "smoke"}
        if machines == 2:
            job_env["LAUNCHER"] = "accelerate"
        proc = run(
            ["sbatch", "--parsable", *CPU_JOB, *layout, f"--output={run_dir}/slurm-%j.out"]
            + ["slurm/train_ae.sbatch", *overrides],
            job_env,
        )
        jobs[name] = proc.stdout.strip().split(";")[0]

    wait_for_file(tmp_path / "signalled" / "last.pt")  # epoch 1 saved: training is under way
    run(["scancel", "--batch", "--signal=USR1", jobs["signalled"]], env)
    states = wait_jobs(list(jobs.values()))
    assert set(states.values()) == {"COMPLETED"}, states

    log = (tmp_path / "signalled" / f"slurm-{jobs['signalled']}.out").read_text(errors="replace")
    assert "stop signal: saved" in log, log[-3000:]
    assert f"requeueing job {jobs['signalled']}" in log, log[-3000:]
    assert re.search(r"resuming .* at epoch \d, step \d+", log), log[-3000:]
    assert "(restart 1)" in log
    if machines == 2:
        assert re.search(r"--num_machines 2 --machine_rank 1 --main_process_ip \S+ --main_process_port", log), log
    baseline_log = tmp_path / "uninterrupted" / f"slurm-{jobs['uninterrupted']}.out"
    assert "stop signal" not in baseline_log.read_text(errors="replace")

    signalled, uninterrupted = load(tmp_path / "signalled" / "last.pt"), load(tmp_path / "uninterrupted" / "last.pt")
    assert signalled["epoch"] == uninterrupted["epoch"] == 6
    assert same_tensors(signalled["model"], uninterrupted["model"]), "final weights differ after the requeue"
    opt_a, opt_b = signalled["optimizer"]["state"], uninterrupted["optimizer"]["state"]
    assert all(same_tensors(opt_a[k], opt_b[k]) for k in opt_a)
    assert [h["val_loss"] for h in signalled["history"]] == [h["val_loss"] for h in uninterrupted["history"]]


# --------------------------------------------------------------------------- submitit
def test_submitit_pipeline_chain_grid_and_checkpoint_requeue(cluster, env, synth_folder, tmp_path):
    """jobs/pipeline.py on Slurm: AE -> classifier array (linear, finetune, scratch) -> evaluation
    array, chained with afterok. The AE job gets submitit's time-limit signal (USR2) mid-training:
    Stage.checkpoint() has last.pt saved, submitit requeues the job, and it resumes."""
    out = tmp_path / "grid"
    cmd = [sys.executable, "jobs/pipeline.py", "--data", str(synth_folder), "--out", str(out), "--profile", "smoke"]
    cmd += [
        "--gpus",
        "0",
        "--cpus",
        "1",
        "--eval-args=--no-wandb --splits test",
        "epochs=6",
        "batch_size=16",
        "wandb=false",
    ]
    driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, ids = [], {}
    try:
        for line in driver.stdout:
            lines.append(line)
            if line.startswith("job ids:"):
                break
        ids = dict(re.findall(r"(ae|clf|eval)=(\d+)", "".join(lines)))
        assert set(ids) == {"ae", "clf", "eval"}, "".join(lines)
        wait_for_file(out / "ae" / "last.pt")
        run(["scancel", "--signal=USR2", ids["ae"]], env)
        rest, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
            subprocess.run(["scancel", *ids.values()])
    report = "".join(lines) + rest
    assert driver.returncode == 0, report[-4000:]
    assert "all stages succeeded" in report

    ae_log = "".join(p.read_text(errors="replace") for p in (out / "submitit" / ids["ae"]).glob("*_log.*"))
    assert "asking training to save last.pt" in ae_log, ae_log[-3000:]
    assert "stop signal: saved" in ae_log and re.search(r"resuming .* at epoch \d", ae_log), ae_log[-3000:]
    assert len(load(out / "ae" / "last.pt")["history"]) == 6

    clf_ids = [f"{ids['clf']}_{i}" for i in range(3)]
    eval_ids = [f"{ids['eval']}_{i}" for i in range(4)]
    rows = accounting([ids["ae"], ids["clf"], ids["eval"]])
    assert {r["state"] for r in rows.values()} == {"COMPLETED"}, rows
    assert set(clf_ids + eval_ids) <= set(rows), rows
    assert_in_order(rows, [ids["ae"]], clf_ids)
    assert_in_order(rows, clf_ids, eval_ids)

    # Every classifier consumed the AE checkpoint; the linear probe's frozen backbone is the AE's, bit for bit.
    ae_best = load(out / "ae" / "best.pt")
    for mode in ("linear", "finetune", "scratch"):
        ckpt = load(out / f"clf-{mode}" / "best.pt")
        assert ckpt["config"]["encoder"] == str(out / "ae") and ckpt["config"]["mode"] == mode
    linear = load(out / "clf-linear" / "best.pt")
    assert same_tensors(backbone(linear["model"]), backbone(ae_best["model"]))
    assert not same_tensors(backbone(load(out / "clf-finetune" / "best.pt")["model"]), backbone(ae_best["model"]))
    for run_dir in ("ae", "clf-linear", "clf-finetune", "clf-scratch"):
        assert (out / run_dir / "eval" / "metrics.json").is_file()
