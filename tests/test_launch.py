"""The local launch layer: make targets, jobs/launch.sh, and jobs/pipeline.py --local (no Slurm)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import script_env

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["train-ae", "train-clf", "evaluate", "pipeline", "data", "test", "bench", "docker", "lint", "help"]


def make(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    cmd = ["make", "--no-print-directory", "-C", str(REPO), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_make_help_lists_the_targets():
    proc = make("help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert set(TARGETS) <= listed, listed


def test_entry_scripts_start_without_the_heavy_metric_and_vision_libraries():
    """torchmetrics and torchvision cost ~2 s each to import; a command that prints --help, fails on bad
    input or only codes files must not pay for them (they are imported where metrics and grids are made)."""
    scripts = ["train_ae", "train_clf", "evaluate", "codec", "train_codec", "rd_eval", "prepare_data"]
    heavy = "{'torchmetrics', 'torchvision'}"
    probe = f"import sys, {', '.join(scripts)}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO / "src", env=script_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_multi_gpu_launch_stops_on_a_signal_and_resumes(synth_folder, tmp_path):
    """GPUS=2 with two GPUs visible runs `accelerate launch --multi_gpu --num_processes 2` (as
    `make train-ae GPUS=2` does). Here CUDA_VISIBLE_DEVICES names two devices, so jobs/launch.sh
    takes the GPU path; on a machine without GPUs the workers then run on the CPU (gloo). SIGUSR1
    to the launcher reaches both workers: last.pt is saved, the exit code is 75, and the same
    command resumes and finishes."""
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        pytest.skip("one GPU here: CUDA_VISIBLE_DEVICES=0,1 would name a device that does not exist")
    env = {**script_env(), "CIFARAE_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": "0,1", "GPUS": "2"}
    out = tmp_path / "run"
    cmd = ["bash", "jobs/launch.sh", "src/train_ae.py", "--data", str(synth_folder), "--out", str(out)]
    cmd += ["--config", "jobs/configs/smoke.yaml", "epochs=6", "batch_size=16", "wandb=false"]
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not (out / "last.pt").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGUSR1)
        rc = first.wait(timeout=120)
    text = log.read_text(errors="replace")
    assert "accelerate.commands.launch --multi_gpu --num_processes 2" in text, text[-3000:]
    assert rc == 75, text[-3000:]
    assert text.count("stop signal: saved") >= 1, text[-3000:]
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["epoch"] < 6

    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, errors="replace", timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming" in second.stdout
    assert len(torch.load(out / "last.pt", weights_only=True)["history"]) == 6


def test_make_pipeline_without_data_or_network_fails_in_one_line(tmp_path):
    """No DATA: the torchvision download into data/ is tried; with no network (here a proxy
    that refuses every connection) it ends with one line that says to pass DATA=."""
    env = {**script_env(), "CIFARAE_CACHE": str(tmp_path / "cache")}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    proc = make("pipeline", f"RUN={tmp_path / 'run'}", env=env, timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DATA=" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_make_train_without_data_says_what_to_do(tmp_path):
    if (REPO / "data" / "cifar-10-batches-py").is_dir():
        pytest.skip("this checkout holds a torchvision download in data/, the default when DATA is empty")
    proc = make("train-ae", f"RUN={tmp_path}", "DATA=", env=script_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no DATA=") and "Traceback" not in proc.stderr, proc.stderr


def test_make_pipeline_runs_the_chain_with_two_cpu_processes(synth_archive, tmp_path):
    """`make pipeline DATA=... GPUS=2` on a machine without GPUs: jobs/pipeline.yaml's stages here,
    the training stages as two torchrun CPU processes, the rest as one."""
    env = {**script_env(), "CIFARAE_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}
    run_dir = tmp_path / "run"
    overrides = ["OVERRIDES=wandb=false", "EVAL_ARGS=--no-wandb --splits test", "MODES=finetune", "CODEC=0"]
    proc = make("pipeline", f"DATA={synth_archive}", f"RUN={run_dir}", "GPUS=2", *overrides, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no GPU" in proc.stderr and "running 2 CPU process(es) with torchrun" in proc.stderr, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    for stage in ("ae", "clf-finetune"):
        assert (run_dir / stage / "eval" / "metrics.json").is_file()
    assert "3 stages: ae, clf, eval" in proc.stdout and "all stages succeeded" in proc.stdout


def test_local_pipeline_runs_the_grid_and_the_codec_and_stops_at_a_failure(synth_folder, tmp_path):
    """jobs/pipeline.py --local --grid: AE -> every grid cell -> evaluation -> grid table, and AE ->
    the codec's recipe (train, export, RD on real files against AVIF, WebP, JPEG). A failing first
    stage stops the chain there."""
    env = {**script_env(), "CIFARAE_CACHE": str(tmp_path / "cache")}
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "config: jobs/configs/smoke.yaml\nmodes: [linear, scratch]\n"
        "fractions:\n  0.5: {seeds: [0]}\n  1.0: {seeds: [0]}\n"
    )
    out = tmp_path / "pipe"
    cmd = [sys.executable, "jobs/pipeline.py", "--local", "--data", str(synth_folder), "--profile", "smoke"]
    args = ["--run", str(out), "--grid", str(grid), "--eval-args=--no-wandb --splits test", "wandb=false"]
    proc = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all stages succeeded" in proc.stdout

    table = (out / "grid" / "grid.csv").read_text().splitlines()
    cells = {tuple(line.split(",")[:2]) for line in table[1:]}
    assert cells == {(m, f) for m in ("linear", "scratch") for f in ("0.5", "1.0")}, table
    assert (out / "grid" / "grid.png").is_file()

    codec = out / "codec"
    assert {"best.pt", "model"} <= {p.name for p in codec.iterdir()}  # the v2 chain: train, export, rd
    assert (codec / "model" / "model.json").is_file()
    rd = json.loads((codec / "rd" / "rd.json").read_text())
    assert [p["rd_lambda"] for p in rd["splits"]["test"]["curves"]["cae"]] == [0.005, 0.05]
    files = list((codec / "rd" / "files").rglob("*.cae"))
    assert files and all(f.stat().st_size > 0 for f in files)

    # Run again: every codec step is done already and is skipped; training resumes (nothing left).
    again = subprocess.run(
        [sys.executable, "src/train_codec.py", "--data", str(synth_folder), "--ae", str(out / "ae")]
        + ["--out", str(codec), "--recipe", "jobs/configs/codec/smoke.yaml", "--no-wandb"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    done = [line.split(":")[1].strip() for line in again.stdout.splitlines() if "done already" in line]
    assert done == ["export", "rd"], again.stdout

    bad = subprocess.run(
        [*cmd, "--run", str(tmp_path / "bad"), "--modes", "linear", "no_such_key=1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    assert "error: unknown config key 'no_such_key'" in bad.stderr
    assert "ae FAILED: src/train_ae.py exited with code 2; not run: clf, codec, eval" in bad.stdout, bad.stdout
