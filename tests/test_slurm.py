"""The cluster-launch layer against a live Slurm cluster (CI starts one with slurm/local/start.sh).

Tiny synthetic data and the smoke profile keep each job to seconds; the Slurm time is mostly
Python start-up. The jobs run in the submitting environment (sbatch exports it), so their data
cache goes to a temporary directory and W&B stays offline (and off where the tests do not need
it: it costs seconds per process).
"""

from __future__ import annotations

import json
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


def my_jobs() -> set[str]:
    out = subprocess.run(["squeue", "-h", "--me", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    return {j.split("_")[0] for j in out.split()}


@pytest.fixture(autouse=True)
def cancel_leftover_jobs(cluster):
    """Cancel the jobs a test leaves queued or running (one that failed mid-way), and wait until they
    are gone, so that they do not hold the node's CPUs while the next test's jobs wait behind them."""
    before = my_jobs()
    yield
    leftover = sorted(my_jobs() - before)
    if leftover:
        subprocess.run(["scancel", *leftover])
        deadline = time.monotonic() + 90
        while my_jobs() & set(leftover) and time.monotonic() < deadline:
            time.sleep(1)


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


def wait_for_file(path: Path, job_id: str, logs: Path, timeout: float = 300) -> None:
    """Wait for a file that job_id's training writes. Fails at once when the job ends first, and
    either way shows the job's state (with Slurm's reason for a pending job) and its logs."""
    deadline = time.monotonic() + timeout
    checked = 0.0
    while not path.exists():
        now = time.monotonic()
        if now > checked + 1:
            checked = now
            state = job_state(job_id)
            ended = state in TERMINAL
            if ended or now > deadline:
                detail = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
                tails = "".join(
                    f"--- {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]) + "\n"
                    for log in sorted(logs.glob("**/*.out")) + sorted(logs.glob("**/*_log.*"))
                )
                why = f"job {job_id} ended ({state})" if ended else f"not within {timeout}s"
                raise AssertionError(f"{path} did not appear: {why}\n{detail}\n{tails}")
        time.sleep(0.05)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def backbone(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


# --------------------------------------------------------------------------- sbatch pipeline
STAGE_IDS = r"(ae|clf|codec|eval)=(\d+)"


def stage_ids(text: str) -> dict[str, str]:
    return dict(re.findall(STAGE_IDS, re.search(r"^job ids: .*$", text, re.M).group(0)))


def test_sbatch_pipeline_sh_runs_every_stage_and_the_codec(cluster, env, synth_folder, tmp_path):
    """`sbatch slurm/pipeline.sh ...` as users type it: Slurm runs a copy of the script from its
    spool directory, which finds the checkout from the submit directory and submits the stages."""
    out = tmp_path / "pipe"
    args = ["--data", synth_folder, "--run", out, "--profile", "smoke", "--gpus", "0", "--cpus", "1"]
    args += ["--modes", "finetune", "--eval-args=--no-wandb --splits test", "wandb=false"]
    submitted = run(["sbatch", "--parsable", f"--output={tmp_path}/pipeline-%j.out", "slurm/pipeline.sh", *args], env)
    pipeline_job = submitted.stdout.strip().split(";")[0]
    assert wait_jobs([pipeline_job]) == {pipeline_job: "COMPLETED"}
    log = (tmp_path / f"pipeline-{pipeline_job}.out").read_text()
    ids = stage_ids(log)
    assert set(ids) == {"ae", "clf", "codec", "eval"}, log
    assert set(wait_jobs(list(ids.values()), timeout=400).values()) == {"COMPLETED"}

    rows = accounting(list(ids.values()))
    eval_tasks = [f"{ids['eval']}_0", f"{ids['eval']}_1"]  # the AE and the classifier
    assert {r["state"] for r in rows.values()} == {"COMPLETED"} and set(eval_tasks) <= set(rows), rows
    assert_in_order(rows, [ids["ae"]], [ids["clf"], ids["codec"]])
    assert_in_order(rows, [ids["clf"]], eval_tasks)

    ae, clf, codec = out / "ae", out / "clf-finetune", out / "codec"
    clf_ckpt, ae_ckpt = load(clf / "best.pt"), load(ae / "best.pt")
    assert clf_ckpt["config"]["encoder"] == str(ae) and clf_ckpt["config"]["mode"] == "finetune"
    assert {k: v.shape for k, v in backbone(clf_ckpt["model"]).items()} == {
        k: v.shape for k, v in backbone(ae_ckpt["model"]).items()
    }
    for run_dir in (ae, clf):
        assert (run_dir / "eval" / "metrics.json").is_file(), sorted(run_dir.rglob("*"))
    assert "[ae] epoch 1/1" in (out / "logs" / f"ae-{ids['ae']}.out").read_text(errors="replace")

    # The codec stage ran its whole recipe: a trained v2 codec exported as a model folder, and an
    # RD evaluation on real files; src/codec.py takes RUN/codec as the model.
    assert {"best.pt", "model"} <= {p.name for p in codec.iterdir()}
    rd = json.loads((codec / "rd" / "rd.json").read_text())
    assert rd["splits"]["test"]["curves"]["cae"][0]["bpp"] > 0 and (codec / "rd" / "rd_test.png").is_file()
    images = sorted(synth_folder.glob("test/*/*.png"))[:2]
    run([sys.executable, "src/codec.py", "compress", *images, "-o", tmp_path / "cae", "--model", codec], env)
    files = sorted((tmp_path / "cae").glob("*.cae"))
    run([sys.executable, "src/codec.py", "decompress", *files, "-o", tmp_path / "png", "--model", codec], env)
    assert sorted(p.stem for p in (tmp_path / "png").glob("*.png")) == sorted(p.stem for p in images)


def test_bash_pipeline_sh_waits_and_reports(cluster, env, synth_folder, tmp_path):
    """`bash slurm/pipeline.sh --wait` without the codec stage: the chain down to the evaluation files."""
    out = tmp_path / "pipe"
    proc = run(
        ["bash", "slurm/pipeline.sh", "--data", synth_folder, "--run", out, "--profile", "smoke", "--no-codec"]
        + ["--gpus", "0", "--cpus", "1", "--modes", "scratch", "--eval-args=--no-wandb --splits test", "--wait"]
        + ["wandb=false"],
        env,
        timeout=400,
    )
    ids = stage_ids(proc.stdout)
    assert set(ids) == {"ae", "clf", "eval"}, proc.stdout
    assert "all stages succeeded" in proc.stdout
    for stage in ("ae", "clf", "eval"):
        assert f"{stage} (job {ids[stage]}) succeeded" in proc.stdout
    for run_dir in ("ae", "clf-scratch"):
        assert "test" in json.loads((out / run_dir / "eval" / "metrics.json").read_text())
    assert not (out / "codec").exists()


def test_failing_first_stage_cancels_the_later_ones(cluster, env, synth_folder, tmp_path):
    proc = run(
        ["bash", "slurm/pipeline.sh", "--data", synth_folder, "--run", tmp_path / "bad", "--profile", "smoke"]
        + ["--gpus", "0", "--cpus", "1", "--modes", "finetune", "--wait", "no_such_key=1"],
        env,
        check=False,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    ids = stage_ids(proc.stdout)
    report = proc.stdout
    assert re.search(rf"ae \(job {ids['ae']}\) FAILED: .*exit code 2: error: unknown config key 'no_such_key'", report)
    for stage in ("clf", "codec", "eval"):
        assert re.search(rf"{stage} \(job {ids[stage]}\) was cancelled without running, because ae", report), report
    assert "FAILED at the ae stage" in report
    rows = accounting(list(ids.values()))
    states = [rows[ids[s]]["state"] for s in ("ae", "clf", "codec", "eval") if ids[s] in rows]
    assert states[0] == "FAILED" and set(states[1:]) == {"CANCELLED"}, rows
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
        job_env = {**env, "LAUNCHER": "accelerate"} if machines == 2 else env
        command = ["src/train_ae.py", "--data", synth_folder, "--out", run_dir, "--config", "jobs/configs/smoke.yaml"]
        proc = run(
            ["sbatch", "--parsable", *CPU_JOB, *layout, f"--output={run_dir}/slurm-%j.out"]
            + ["slurm/stage.sbatch", *command, *overrides],
            job_env,
        )
        jobs[name] = proc.stdout.strip().split(";")[0]

    # epoch 1 saved: training is under way
    wait_for_file(tmp_path / "signalled" / "last.pt", jobs["signalled"], tmp_path / "signalled")
    run(["scancel", "--batch", "--signal=USR1", jobs["signalled"]], env)
    states = wait_jobs(list(jobs.values()))
    assert set(states.values()) == {"COMPLETED"}, states

    log = (tmp_path / "signalled" / f"slurm-{jobs['signalled']}.out").read_text(errors="replace")
    assert "stop signal: saved" in log, log[-3000:]
    assert f"requeued job {jobs['signalled']}, which resumes from it" in log, log[-3000:]
    assert "could not requeue" not in log, log[-3000:]  # no contradictory lines
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
    StageCommand.checkpoint() has last.pt saved, submitit requeues the job, and it resumes."""
    out = tmp_path / "grid"
    cmd = [sys.executable, "jobs/pipeline.py", "--data", str(synth_folder), "--out", str(out), "--profile", "smoke"]
    cmd += [
        "--gpus",
        "0",
        "--cpus",
        "1",
        "--eval-args=--no-wandb --splits test",
        "--no-codec",
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
        wait_for_file(out / "ae" / "last.pt", ids["ae"], out)
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
