"""The shared training engine, driven through src/train_ae.py as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, TINY, assert_one_line_error, run_script, script_env

from cifarae import checkpoint, engine
from cifarae.config import Config, load_config
from cifarae.models import AutoEncoder


def weights(run_dir, name="last.pt"):
    return checkpoint.load(run_dir / name)["model"]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loss_falls_and_run_directory_is_complete(tmp_path, synth_cache):
    run = tmp_path / "ae"
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", run, *TINY, "epochs=4", "lr=0.01", "wandb=true")
    assert "compression ratio 12.0x" in proc.stdout
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.85 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    for name in ("config.yaml", "last.pt", "best.pt"):
        assert (run / name).is_file()
    ckpt = checkpoint.load(run / "last.pt")
    assert ckpt["config"]["epochs"] == 4 and ckpt["epoch"] == 4  # the resolved config travels in the checkpoint
    # The offline W&B run holds the logged keys and the reconstruction grid.
    wandb_files = list((run / "wandb").glob("offline-run-*/*.wandb"))
    assert wandb_files
    raw = wandb_files[0].read_bytes()
    for key in (b"train/loss", b"train/lr", b"train/img_per_s", b"epoch/val_psnr", b"epoch/train_loss"):
        assert key in raw, key
    assert list((run / "wandb").glob("offline-run-*/files/media/images/val/reconstructions*.png"))


def test_training_goes_on_when_wandb_cannot_be_imported(tmp_path, synth_cache):
    """A bare GPU image without wandb: tracking switches itself off; the job does not fail."""
    blocker = tmp_path / "site" / "wandb"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('wandb is not installed (blocked by the test)')\n")
    env = {**script_env(), "PYTHONPATH": str(blocker.parent)}
    run = tmp_path / "ae"
    cmd = [sys.executable, str(REPO / "src" / "train_ae.py"), "--data", str(synth_cache), "--out", str(run)]
    proc = subprocess.run([*cmd, *TINY, "epochs=2", "wandb=true"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "W&B tracking disabled: wandb cannot be imported" in proc.stderr
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert not (run / "wandb").exists()


def test_sigterm_saves_and_resume_matches_uninterrupted_run(tmp_path, synth_cache):
    args = ["--data", synth_cache, *TINY, "epochs=3", "train_subset=500"]
    run_script("train_ae.py", "--out", tmp_path / "straight", *args)

    interrupted = tmp_path / "interrupted"
    cmd = [sys.executable, str(REPO / "src" / "train_ae.py"), "--out", str(interrupted), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (interrupted / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # lands in epoch 2 (or at the latest in epoch 3)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == engine.REQUEUE_EXIT_CODE, err[-2000:]
    saved = checkpoint.load(interrupted / "last.pt")
    assert saved["epoch"] < 3
    resumed = run_script("train_ae.py", "--out", interrupted, *args)
    assert "resuming" in resumed.stdout
    assert_same_weights(weights(tmp_path / "straight"), weights(interrupted))
    # the interrupted epoch's record covers all of it: its mean loss over every step, its images and time
    straight, resumed = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("straight", "interrupted"))
    assert saved["step_in_epoch"] > 0 and saved["epoch_so_far"]["images"] > 0
    assert [h["train_loss"] for h in resumed] == pytest.approx([h["train_loss"] for h in straight], rel=1e-9)
    images = [h["img_per_s"] * h["epoch_time_s"] for h in resumed]
    assert images == pytest.approx([straight[0]["img_per_s"] * straight[0]["epoch_time_s"]] * 3, rel=1e-6)


def test_training_gives_the_signal_handlers_back_when_it_ends(tmp_path, synth_cache):
    """train_codec runs export and RD after training in the same process: a SIGTERM then must stop it as usual,
    not set a flag that no loop reads any more."""
    import train_ae

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    train_ae.main(["--data", str(synth_cache), "--out", str(tmp_path / "ae"), *TINY, "epochs=1", "train_subset=100"])
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_killed_run_resumes_from_last_epoch_checkpoint(tmp_path, synth_cache):
    args = ["--data", synth_cache, *TINY, "epochs=3", "train_subset=300", "optimizer=sgd", "lr=0.05", "ema_decay=0.9"]
    run_script("train_ae.py", "--out", tmp_path / "straight", *args)
    partial = tmp_path / "partial"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train_ae.py"), "--out", str(partial), *map(str, args)],
        cwd=REPO,
        env=script_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (partial / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL after epoch 1: no chance to save anything more
    proc.wait()
    assert checkpoint.load(partial / "last.pt")["epoch"] < 3
    run_script("train_ae.py", "--out", partial, *args)
    assert_same_weights(weights(tmp_path / "straight"), weights(partial))
    straight = checkpoint.load(tmp_path / "straight" / "last.pt")
    assert_same_weights(straight["ema_model"], checkpoint.load(partial / "last.pt")["ema_model"])


def test_two_process_torchrun_run_completes_in_step(tmp_path, synth_cache):
    run = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", run, *TINY, "epochs=2", launcher=launcher)
    assert "2 process(es)" in proc.stdout
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and history[-1]["train_loss"] < history[0]["train_loss"]
    # Both ranks took the same number of optimizer steps: the global step equals one rank's count.
    ckpt = checkpoint.load(run / "last.pt")
    assert ckpt["global_step"] == 2 * (500 // 50)


def test_bf16_autocast_is_used_on_the_cpu(tmp_path):
    cfg = load_config(None, [*TINY, "precision=bf16"])
    accelerator = engine.make_accelerator(cfg)
    model = AutoEncoder(cfg)
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    prepared = accelerator.prepare(model)
    x_hat, _ = prepared(torch.rand(2, 3, 32, 32))  # the forward the training step runs
    assert seen == [torch.bfloat16]
    assert x_hat.dtype == torch.float32  # Accelerate hands outputs back in fp32 for the loss


def test_nan_loss_stops_with_a_clear_message(tmp_path, synth_cache):
    run = tmp_path / "nan"
    proc = run_script(
        "train_ae.py",
        "--data",
        synth_cache,
        "--out",
        run,
        *TINY,
        "epochs=3",
        "optimizer=sgd",
        "lr=1e12",
        "precision=fp32",
        check=False,
    )
    assert_one_line_error(proc, "loss became", code=3)
    if (run / "last.pt").exists():  # whatever was kept holds finite weights
        assert all(torch.isfinite(t).all() for t in weights(run).values() if t.is_floating_point())


def test_bad_checkpoints_and_configs_give_one_line_errors(tmp_path, synth_cache):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"garbage")
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", run, *TINY, check=False)
    assert_one_line_error(proc, "last.pt is not a cifarae checkpoint")
    good = tmp_path / "good"
    run_script("train_ae.py", "--data", synth_cache, "--out", good, *TINY, "epochs=1")
    truncated = tmp_path / "trunc"
    truncated.mkdir()
    blob = (good / "last.pt").read_bytes()
    (truncated / "best.pt").write_bytes(blob[: len(blob) // 2])
    assert_one_line_error(
        run_script("evaluate.py", "--run", truncated, "--data", synth_cache, check=False), "truncated"
    )
    torch.save({"hello": 1}, truncated / "best.pt")
    assert_one_line_error(
        run_script("evaluate.py", "--run", truncated, "--data", synth_cache, check=False), "not a cifarae checkpoint"
    )
    # Another size: the same checkpoint forced into a wider model.
    with pytest.raises(checkpoint.UserError, match="another architecture or size"):
        checkpoint.load_weights(AutoEncoder(Config(widths=[8, 8, 16, 32])), weights(good), "good/last.pt")
    # Resuming with other settings is refused rather than silently mixed.
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", good, *TINY, "epochs=1", "lr=0.5", check=False)
    assert_one_line_error(proc, "other settings", "lr")
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", tmp_path / "x", "epochz=3", check=False)
    assert_one_line_error(proc, "unknown config key 'epochz'", "epochs")
    proc = run_script("train_ae.py", "--data", synth_cache, "--out", tmp_path / "x", "precision=fp8", check=False)
    assert_one_line_error(proc, "precision")


def test_bench_times_the_engines_own_step(tmp_path, monkeypatch):
    """bench/bench.py's training rows call engine.train_step, at every precision of its sweep."""
    sys.path.insert(0, str(REPO / "bench"))
    from accelerate.state import AcceleratorState

    import bench

    calls = []
    real_step = engine.train_step

    def counted(cfg, *args):
        calls.append(cfg.precision)
        return real_step(cfg, *args)

    monkeypatch.setattr(bench, "train_step", counted)
    cfg = load_config(None, [*TINY, "batch_size=16", "precision=no"])
    images, labels = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8), torch.arange(64) % 10
    for precision in ("no", "bf16", "no"):  # the sweep switches Accelerate's precision in one process
        step = bench.project_step(dataclasses.replace(cfg, precision=precision), images, labels, torch.device("cpu"))
        assert step() == 16
        assert AcceleratorState().mixed_precision == precision
    assert calls == ["no", "bf16", "no"]


@pytest.mark.parametrize("clip_quantiles", [True, False])
def test_a_codec_step_reports_rate_distortion_trains_the_quantiles_and_clips_them_when_asked(clip_quantiles):
    """A codec's step trains its quantiles by their own (aux) loss and reports the rate-distortion loss without it.
    clip_quantiles=false clips the rate-distortion gradient alone; the quantiles keep theirs whole, as in
    CompressAI's examples, where they have an optimizer of their own."""
    from accelerate import Accelerator

    from cifarae.models import build_model
    from cifarae.tasks import AutoencoderTask

    cfg = Config(
        entropy_model="hyperprior",
        widths=[8, 16, 32, 32],
        latent_channels=4,
        hyper_channels=8,
        rd_lambdas=[0.001, 0.01],
        grad_clip=0.5,
        clip_quantiles=clip_quantiles,
    ).check()
    torch.manual_seed(0)
    model, task, x = build_model(cfg), AutoencoderTask(cfg), torch.rand(8, 3, 32, 32)
    model.train()

    def grads():
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(1)  # the loss draws each image's level and the noise: the same draws both times
    rate_distortion, aux = task.loss(model, x, None)[0], model.aux_loss()
    (rate_distortion + aux).backward()
    unclipped = grads()
    model.zero_grad()

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen.update(grads())

    seen: dict[str, torch.Tensor] = {}
    torch.manual_seed(1)
    loss, logs = engine.train_step(cfg, task, model, Spy(model.parameters(), lr=0.0), Accelerator(cpu=True), x, None)
    assert loss.item() == pytest.approx(rate_distortion.item(), rel=1e-4)  # the same draws; float sums may differ
    assert logs["train/aux"] == pytest.approx(aux.item()) and aux.item() > 1.0

    quantiles = [n for n in seen if n.endswith(".quantiles")]
    assert quantiles == ["latent_codec.entropy_bottleneck.quantiles"]
    rest = torch.cat([seen[n].flatten() for n in seen if n not in quantiles])
    everything = torch.cat([g.flatten() for g in seen.values()])
    assert torch.cat([g.flatten() for g in unclipped.values()]).norm() > 1.0  # so the clip acts
    if clip_quantiles:
        assert everything.norm() == pytest.approx(cfg.grad_clip, rel=1e-4)
        assert seen[quantiles[0]].norm() < unclipped[quantiles[0]].norm()
    else:
        assert rest.norm() == pytest.approx(cfg.grad_clip, rel=1e-4)
        assert torch.equal(seen[quantiles[0]], unclipped[quantiles[0]])
