"""Side-by-side performance benchmark: the project's fast paths against a plain PyTorch baseline.

    python bench/bench.py [--data PATH] [--config jobs/configs/cpu_ae.yaml] [--reps 3] [--only ROWS] [key=value ...]

Every row times the project and a baseline doing the same work in the same process,
interleaved rep by rep (ABBA order) so that background load hits both alike, and reports the
median over ``--reps`` repetitions, the spread (min-max) and the ratio of the medians.

  loader   DeviceLoader (batched crop+flip on the device) vs torchvision DataLoader + PIL transforms
  ae, clf  training step: bf16 autocast + channels_last + DeviceLoader vs fp32 NCHW fed by the DataLoader
  eval     the AE task's validate() vs a plain fp32 evaluation loop
  codec    the codec's encode/decode images/s beside Pillow's AVIF (AV1) and JPEG, in one run
  startup  src/train_ae.py as a subprocess: time to the first training step, peak resident memory
  ddp      torchrun --nproc_per_node 2 (gloo on CPU) vs 1 process at the same global batch
  sweep    (GPU profile, not in the default set) precision / channels_last / torch.compile / batch size
  convs    (not in the default set) the AE's convolutions alone, forward + backward: bf16 channels_last
           vs fp32 NCHW. Convolutions are most of a CPU step, so this ratio bounds the training rows.

The training-step rows run an equivalent of the engine's step (same model, optimizer, task
loss and autocast); ``startup`` and ``ddp`` run the real entry script and engine. Without
--data the bench makes a random uint8 CIFAR-sized cache, so it runs anywhere. Prints one table
and writes it, with every sample, to outs/bench.json. Figures, never pass/fail tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from PIL import Image

from cifarae import data as data_lib
from cifarae.codec import HyperpriorCodec, load_codec
from cifarae.codec.shipped import DEFAULT_MODEL, MANIFEST, default_model, models_dir
from cifarae.config import Config, load_config
from cifarae.data import MEAN, STD, DeviceLoader
from cifarae.engine import make_accelerator, make_optimizer, train_step
from cifarae.losses import reconstruction_loss
from cifarae.models import AutoEncoder, Classifier
from cifarae.rd import PILLOW_SETTINGS
from cifarae.tasks import AutoencoderTask, ClassifierTask, quantize_8bit

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ROWS = ("loader", "ae", "clf", "eval", "codec", "startup", "ddp")
ALL_ROWS = (*DEFAULT_ROWS, "sweep", "convs")
# The classifier recipe of src/train_clf.py (kept in step by hand: only the optimizer matters here).
CLF_RECIPE = {"task": "clf", "mode": "scratch", "optimizer": "sgd", "lr": 0.2, "schedule": "onecycle"}
TQDM_STEP = re.compile(r"\|\s*([1-9]\d*)/\d+ \[")  # a tqdm bar that has counted at least one step


# ---------------------------------------------------------------------------- timing helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def run_for(step, device: torch.device, min_steps: int, min_time: float) -> tuple[int, float]:
    """Call ``step()`` (returns work units) at least min_steps times and min_time seconds."""
    sync(device)
    t0, units, n = time.perf_counter(), 0, 0
    while n < min_steps or time.perf_counter() - t0 < min_time:
        units += step()
        n += 1
    sync(device)
    return units, time.perf_counter() - t0


def side_by_side(fns: dict, reps: int, device: torch.device, min_steps: dict, min_time: float) -> dict:
    """Rates (units/s) of each callable, interleaved rep by rep in ABBA order."""
    rates = {name: [] for name in fns}
    for rep in range(reps):
        order = list(fns) if rep % 2 == 0 else list(fns)[::-1]
        for name in order:
            units, dt = run_for(fns[name], device, min_steps[name], min_time)
            rates[name].append(units / dt)
    return {name: summary(r) for name, r in rates.items()}


def endless(make_iter):
    """Batches forever: a fresh epoch whenever one ends."""
    epoch = 0
    while True:
        yield from make_iter(epoch)
        epoch += 1


def autocast(cfg: Config, device: torch.device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


# ---------------------------------------------------------------------------- the baseline
class PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does: HWC uint8 array -> PIL image -> transforms."""

    def __init__(self, images_u8: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images_u8.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def baseline_loader(images, labels, batch_size: int, train: bool, device: torch.device, workers: int = 2):
    from torchvision import transforms as T

    ops = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    tf = T.Compose([*ops, T.ToTensor(), T.Normalize(MEAN, STD)])
    return torch.utils.data.DataLoader(
        PILDataset(images, labels, tf),
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )


def plain_model(cfg: Config, device: torch.device) -> torch.nn.Module:
    """The same network in fp32 NCHW; the DataLoader already normalises, so the model does not."""
    torch.manual_seed(cfg.seed)
    model = AutoEncoder(cfg) if cfg.task == "ae" else Classifier(cfg)
    model.backbone.normalize = torch.nn.Identity()
    return model.to(device).train()


def project_model(cfg: Config, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    model = AutoEncoder(cfg) if cfg.task == "ae" else Classifier(cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device).train()


# ---------------------------------------------------------------------------- training steps
def project_step(cfg: Config, images, labels, device: torch.device):
    """The engine's own step (engine.train_step) under Accelerate, fed by the DeviceLoader."""
    accelerator = bench_accelerator(cfg)
    model = project_model(cfg, device)
    optimizer = make_optimizer(model, cfg)
    task = AutoencoderTask(cfg) if cfg.task == "ae" else ClassifierTask(cfg)
    forward_model = torch.compile(model) if cfg.compile else model
    forward_model, optimizer = accelerator.prepare(forward_model, optimizer)
    loader = DeviceLoader(
        images, labels, cfg.batch_size, train=True, device=device, augment=cfg.augment, crop_pad=cfg.crop_pad
    )

    def epoch(e):
        loader.set_epoch(e)
        return iter(loader)

    batches = endless(epoch)

    def step() -> int:
        x, y = next(batches)
        loss, _ = train_step(cfg, task, forward_model, optimizer, accelerator, x, y)
        loss.item()  # the engine reads the loss every step (NaN guard, progress bar)
        return len(x)

    return step


def bench_accelerator(cfg: Config) -> Accelerator:
    """The engine's Accelerator for ``cfg``. Accelerate keeps one process-wide state, fixed at its first
    precision; the sweep times several precisions in one process, so it starts that state afresh."""
    precision = "no" if cfg.precision in ("fp32", "no") else cfg.precision
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state(reset_partial_state=True)
    return make_accelerator(dataclasses.replace(cfg, wandb=False))


def baseline_step(cfg: Config, images, labels, device: torch.device, workers: int):
    """A plain loop: fp32, NCHW, DataLoader + PIL transforms."""
    model = plain_model(cfg, device)
    optimizer = make_optimizer(model, cfg)
    loader = baseline_loader(images, labels, cfg.batch_size, True, device, workers)
    batches = endless(lambda e: iter(loader))
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)

    def step() -> int:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cfg.task == "ae":
            x_hat, _ = model(x)
            loss = reconstruction_loss(x_hat, x * std + mean, cfg.loss)
        else:
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        return len(x)

    return step


# ---------------------------------------------------------------------------- rows
@dataclasses.dataclass
class Ctx:
    args: argparse.Namespace
    cfg: Config
    data: data_lib.Dataset
    data_path: Path
    device: torch.device
    tmp: Path


def ratio_row(name, unit, res, target=None, note="") -> dict:
    p, b = res["project"]["median"], res["baseline"]["median"]
    ratio = p / b if b else math.inf
    row = {"row": name, "unit": unit, "project": res["project"], "baseline": res["baseline"], "ratio": ratio}
    if target:
        row["target"], row["met"] = target, ratio >= target
    if note:
        row["note"] = note
    return row


def row_loader(ctx: Ctx) -> list[dict]:
    cfg, dev, a = ctx.cfg, ctx.device, ctx.args
    imgs, labels = ctx.data.images["train"], ctx.data.labels["train"]
    project = DeviceLoader(imgs, labels, cfg.batch_size, train=True, device=dev, augment=("crop", "flip"))
    baseline = baseline_loader(imgs, labels, cfg.batch_size, True, dev, a.workers)
    next(iter(baseline))  # start the (persistent) workers outside the timing

    def project_epoch(e):
        project.set_epoch(e)
        return iter(project)

    p_batches = endless(project_epoch)

    def p_step():
        x, _ = next(p_batches)
        return 1

    state = {}

    def b_step():
        # A fresh iterator per rep (see b_fresh) so prefetched batches never count as free.
        x, y = next(state["it"])
        x.to(dev, non_blocking=True)
        return 1

    def b_rep():
        state["it"] = iter(baseline)
        units, dt = run_for(b_step, dev, a.loader_batches, 0)
        return units, dt

    rates = {"project": [], "baseline": []}
    for rep in range(a.reps):
        for name in ("project", "baseline") if rep % 2 == 0 else ("baseline", "project"):
            units, dt = run_for(p_step, dev, 5 * a.loader_batches, 0.5) if name == "project" else b_rep()
            rates[name].append(units / dt)
    res = {k: summary(v) for k, v in rates.items()}
    note = f"batch {cfg.batch_size}; baseline: {a.workers} workers, RandomCrop(pad 4)+Flip+ToTensor+Normalize"
    return [ratio_row("data loading, crop+flip", "batches/s", res, 10.0, note)]


def row_train(ctx: Ctx, task: str) -> list[dict]:
    a, dev = ctx.args, ctx.device
    cfg = ctx.cfg if task == "ae" else dataclasses.replace(ctx.cfg, **CLF_RECIPE)
    imgs, labels = ctx.data.images["train"], ctx.data.labels["train"]
    fns = {
        "project": project_step(cfg, imgs, labels, dev),
        "baseline": baseline_step(dataclasses.replace(cfg, compile=False), imgs, labels, dev, a.workers),
    }
    warm = {k: run_for(f, dev, a.warmup, 0) for k, f in fns.items()}
    res = side_by_side(fns, a.reps, dev, {"project": a.steps, "baseline": a.steps}, a.min_time)
    mode = f"{cfg.precision}{' +channels_last' if cfg.channels_last else ''}{' +compile' if cfg.compile else ''}"
    note = f"batch {cfg.batch_size}; project {mode}; warm-up {warm['project'][1]:.1f}s / {warm['baseline'][1]:.1f}s"
    name = "AE training step" if task == "ae" else "classifier training step"
    return [ratio_row(name, "images/s", res, 3.0, note)]


class EvalShim:
    """What task.validate() needs from an Accelerator, for one process."""

    num_processes = 1

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device

    def autocast(self):
        return autocast(self.cfg, self.device)


def row_eval(ctx: Ctx) -> list[dict]:
    a, cfg, dev = ctx.args, ctx.cfg, ctx.device
    n = min(a.eval_images, len(ctx.data.labels["val"]))
    imgs, labels = ctx.data.images["val"][:n], ctx.data.labels["val"][:n]
    task = AutoencoderTask(cfg)
    model = project_model(cfg, dev)
    loader = DeviceLoader(imgs, labels, cfg.eval_batch_size, train=False, device=dev)
    shim = EvalShim(cfg, dev)
    plain = plain_model(cfg, dev).eval()
    b_loader = baseline_loader(imgs, labels, cfg.eval_batch_size, False, dev, a.workers)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

    def p_pass():
        task.validate(model, loader, shim)
        return n

    @torch.no_grad()
    def b_pass():
        sq, count = 0.0, 0
        for x, _ in b_loader:
            x = x.to(dev, non_blocking=True)
            x_hat, _ = plain(x)
            sq += (quantize_8bit(x_hat) - (x * std + mean)).double().pow(2).sum().item()
            count += len(x)
        return count

    fns = {"project": p_pass, "baseline": b_pass}
    for f in fns.values():
        f()  # warm-up (and worker start)
    res = side_by_side(fns, a.reps, dev, {"project": 1, "baseline": 1}, 0)
    bs = min(n, cfg.eval_batch_size)
    note = f"AE, {n} val images, batch {bs}; project: {cfg.precision}, AutoencoderTask.validate"
    return [ratio_row("AE evaluation", "images/s", res, None, note)]


def make_codec(ctx: Ctx):
    """(encode, decode, description): --codec-model, else the shipped v2 codec (models/codec-v2) at its middle
    quality, else a random-init hyperprior codec of the bench's config (the same code paths)."""
    if ctx.args.codec_model:
        codec, what = load_codec(ctx.args.codec_model), f"codec {ctx.args.codec_model}"
    elif (models_dir() / DEFAULT_MODEL / MANIFEST).is_file():
        codec, what = default_model(), f"shipped {DEFAULT_MODEL}"
    else:
        cfg = dataclasses.replace(ctx.cfg, entropy_model="hyperprior")
        torch.manual_seed(cfg.seed)
        model = AutoEncoder(cfg).eval()
        model.latent_codec.export()
        codec, what = HyperpriorCodec(model, cfg, source="random-init"), "random-init hyperprior codec"
    level = codec.levels // 2
    return (lambda x: codec.compress(x, level)), codec.decompress, f"{what}, quality {level}"


def pillow_coder(images_u8: torch.Tensor, fmt: str, quality: int):
    """(encode, decode) timing functions for Pillow's ``fmt`` at ``quality``, with rd.py's settings."""
    pil = [Image.fromarray(im) for im in images_u8.permute(0, 2, 3, 1).numpy()]

    def encode():
        out = []
        for im in pil:
            buf = io.BytesIO()
            im.save(buf, fmt, quality=quality, **PILLOW_SETTINGS[fmt])
            out.append(buf.getvalue())
        return out

    blobs = encode()

    def decode():
        for b in blobs:
            Image.open(io.BytesIO(b)).convert("RGB").load()
        return len(blobs)

    return (lambda: len(encode())), decode, sum(map(len, blobs)) / len(blobs)


def row_codec(ctx: Ctx) -> list[dict]:
    """The codec's encode and decode speed beside Pillow's JPEG (q90, a yardstick) and AVIF (AV1, q50), in one run."""
    a, dev = ctx.args, ctx.device
    n = min(a.codec_images, len(ctx.data.labels["val"]))
    imgs_u8 = ctx.data.images["val"][:n]
    encode, decode, what = make_codec(ctx)
    files = encode(imgs_u8)
    fns = {"enc": lambda: len(encode(imgs_u8)), "dec": lambda: len([decode(f) for f in files])}
    sizes = {}
    for fmt, quality in (("JPEG", 90), ("AVIF", 50)):
        fns[f"{fmt}_enc"], fns[f"{fmt}_dec"], sizes[fmt] = pillow_coder(imgs_u8, fmt, quality)
    res = side_by_side(fns, a.reps, dev, dict.fromkeys(fns, 1), 0)
    size = sum(map(len, files)) / n
    rows = []
    for fmt, quality in (("JPEG", 90), ("AVIF", 50)):
        note = (
            f"{what}, {n} val images, {size:.0f} bytes/image; CPU float64 by design "
            f"(decode one image at a time); baseline: Pillow {fmt} q{quality} ({sizes[fmt]:.0f} bytes/image, "
            f"settings {PILLOW_SETTINGS[fmt] or 'default'}): speed only, not the same rate"
        )
        for step, label in (("enc", "encode"), ("dec", "decode")):
            both = {"project": res[step], "baseline": res[f"{fmt}_{step}"]}
            rows.append(ratio_row(f"codec {label} vs {fmt}", "images/s", both, None, note))
    return rows


# ---------------------------------------------------------------------------- subprocess runs
def train_cmd(ctx: Ctx, out: Path, extra: list[str]) -> list[str]:
    """Arguments of src/train_ae.py for the bench's config and overrides, plus ``extra``."""
    cmd = ["src/train_ae.py", "--data", str(ctx.data_path), "--out", str(out), "--config", ctx.args.config]
    return cmd + list(ctx.args.overrides) + extra


def watch(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run cmd; time to its first finished training step (from tqdm) and peak RSS of its process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    marks, chunks = {}, []

    def reader():
        text = ""
        for raw in iter(lambda: proc.stdout.read1(4096), b""):
            chunk = raw.decode(errors="replace")
            chunks.append(chunk)
            text = (text + chunk)[-4096:]
            now = time.perf_counter() - t0
            if "ready" not in marks and re.search(r"(autoencoder|classifier)[^\n]*process", text):
                marks["ready"] = now  # data loaded, model built, about to train
            if "first_step" not in marks and TQDM_STEP.search(text):
                marks["first_step"] = now

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    ps = psutil.Process(proc.pid)
    peak_main = peak_tree = 0
    while proc.poll() is None:
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            break
        try:
            tree = [ps, *ps.children(recursive=True)]
            rss = []
            for p in tree:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    rss.append(0)
            peak_tree = max(peak_tree, sum(rss))
            python_rss = [r for p, r in zip(tree, rss) if p.pid == ps.pid or "python" in _name(p)]
            peak_main = max(peak_main, max(python_rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.02)
    proc.wait()
    th.join(timeout=5)
    return {
        "rc": proc.returncode,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mib": peak_main / 2**20,
        "peak_tree_rss_mib": peak_tree / 2**20,
        **{f"{k}_s": v for k, v in marks.items()},
        "log_tail": "".join(chunks)[-1500:],
    }


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


def sub_env(threads: int | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env["PYTHONUNBUFFERED"] = "1"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def row_startup(ctx: Ctx) -> list[dict]:
    a = ctx.args
    n_train = ctx.cfg.batch_size  # one training step, then validation and the checkpoint, as in a real epoch
    n_val = min(ctx.cfg.eval_batch_size, len(ctx.data.labels["val"]) - 1)  # one full evaluation batch
    extra = [f"train_subset={n_train}", f"val_subset={n_val}", "epochs=1"]
    runs = []
    for rep in range(a.startup_reps):
        out = ctx.tmp / f"startup{rep}"
        cmd = [sys.executable, *train_cmd(ctx, out, extra)]
        r = watch(cmd, sub_env(), a.sub_timeout)
        if r["rc"] != 0 or "first_step_s" not in r:
            return [{"row": "start-up", "unit": "s", "project": None, "note": f"run failed: {r['log_tail'][-300:]}"}]
        runs.append(r)
    note = (
        f"src/train_ae.py subprocess ({len(runs)} runs, W&B {sub_env()['WANDB_MODE']}, 1 step of {n_train} images, "
        f"validation on {n_val}); "
        "peak RSS = the training process (tree incl. W&B: "
        f"{statistics.median(r['peak_tree_rss_mib'] for r in runs):.0f} MiB)"
    )
    rows = [
        ("start-up: process start -> model ready", "s", "ready_s"),
        ("start-up: process start -> 1st step done", "s", "first_step_s"),
        ("peak resident memory, training run", "MiB", "peak_rss_mib"),
    ]
    out = []
    for i, (name, unit, key) in enumerate(rows):
        vals = [r[key] for r in runs if key in r]
        out.append({"row": name, "unit": unit, "project": summary(vals), "baseline": None})
        if i == 0:
            out[-1]["note"] = note
    return out


def row_ddp(ctx: Ctx) -> tuple[list[dict], dict]:
    a, cfg = ctx.args, ctx.cfg
    if ctx.device.type == "cuda" and torch.cuda.device_count() < 2:
        msg = "skipped: one GPU (the CPU figure is from make bench on a CPU machine)"
        return [{"row": "DDP 2 processes vs 1", "unit": "images/s", "project": None, "note": msg}], {}
    n_train = a.ddp_steps * cfg.batch_size
    extra = [f"train_subset={n_train}", "val_subset=256", f"epochs={a.ddp_epochs}", "wandb=false"]
    results = {1: [], 2: []}
    for i, procs in enumerate((1, 2, 2, 1)):  # ABBA: load that drifts during the runs hits both alike
        out = ctx.tmp / f"ddp{procs}-{i}"
        launcher = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run"]
        launcher += [] if procs == 1 else ["--standalone", "--nproc_per_node", str(procs)]
        cmd = launcher + train_cmd(ctx, out, extra)
        r = watch(cmd, sub_env(threads=1), a.sub_timeout)
        hist_path = out / "history.json"
        if r["rc"] != 0 or not hist_path.is_file():
            note = f"{procs}-process run failed: {r['log_tail'][-400:]}"
            return [{"row": "DDP 2 processes vs 1", "unit": "images/s", "project": None, "note": note}], {}
        r["history"] = json.loads(hist_path.read_text())
        results[procs].append(r)
    thr = {p: summary([h["img_per_s"] for r in runs for h in r["history"]]) for p, runs in results.items()}
    eff = thr[2]["median"] / (2 * thr[1]["median"])
    h1, h2 = results[1][0]["history"][-1], results[2][0]["history"][-1]
    loss_diff = {k: abs(h2[k] - h1[k]) / abs(h1[k]) for k in ("train_loss", "val_loss")}
    agree = all(v < a.loss_tolerance for v in loss_diff.values())
    implausible = " (above 100%: the load changed under the runs; rerun on a quiet machine)" if eff > 1 else ""
    note = (
        f"project column = 2 processes, baseline column = 1; gloo, 1 thread per process, global batch "
        f"{cfg.batch_size} (2 x {cfg.batch_size // 2}), runs in 1-2-2-1 order, each {a.ddp_steps} steps x "
        f"{a.ddp_epochs} epochs, median over all epochs; efficiency = 2-proc / (2 x 1-proc)"
        f"{implausible}. Final losses 1 vs 2 procs: train {h1['train_loss']:.4f} vs "
        f"{h2['train_loss']:.4f}, val {h1['val_loss']:.4f} vs {h2['val_loss']:.4f} -> "
        f"{'agree' if agree else 'DIFFER'} (max rel. diff {max(loss_diff.values()):.1%}, tolerance "
        f"{a.loss_tolerance:.0%}: each global step sees the same images, but BatchNorm normalises 128-image halves, "
        "each rank draws its own crops/flips, and the engine logs rank 0's local train loss (half of each batch), "
        "so the curves agree statistically, not bit for bit). "
        "Without W&B, the 1-process runs finished their first step "
        f"{statistics.median(r.get('first_step_s', math.nan) for r in results[1]):.1f}s after start"
    )
    row = {
        "row": "DDP 2 procs vs 1 (CPU, gloo)",
        "unit": "images/s",
        "project": thr[2],
        "baseline": thr[1],
        "ratio": thr[2]["median"] / thr[1]["median"],
        "efficiency": eff,
        "losses_agree": agree,
        "loss_rel_diff": loss_diff,
        "note": note,
    }
    detail = {f"{p}proc": [{k: v for k, v in r.items() if k != "log_tail"} for r in rs] for p, rs in results.items()}
    return [row], detail


# ---------------------------------------------------------------------------- GPU profile sweep
def row_sweep(ctx: Ctx) -> list[dict]:
    """Project training step under precision / channels_last / compile / batch-size variants (one process)."""
    a, dev = ctx.args, ctx.device
    imgs, labels = ctx.data.images["train"], ctx.data.labels["train"]
    base_cfg = ctx.cfg if a.sweep_task == "ae" else dataclasses.replace(ctx.cfg, **CLF_RECIPE)
    bs = base_cfg.batch_size
    variants = [
        ("bf16 + channels_last (default)", {}),
        ("fp32 NCHW", {"precision": "no", "channels_last": False}),
        ("bf16 NCHW", {"channels_last": False}),
        ("fp32 + channels_last", {"precision": "no"}),
        *([("bf16 + channels_last + compile", {"compile": True})] if dev.type == "cuda" or a.sweep_compile else []),
        *[(f"bf16 + channels_last, batch {b}", {"batch_size": b}) for b in a.sweep_batches if b != bs],
    ]
    rows = []
    for name, change in variants:
        cfg = dataclasses.replace(base_cfg, **change)
        if cfg.precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        try:
            torch._dynamo.reset()
            step = project_step(cfg, imgs, labels, dev)
            _, warm = run_for(step, dev, a.warmup, 0)
            res = side_by_side({"project": step}, a.reps, dev, {"project": a.steps}, a.min_time)
        except Exception as err:  # a variant that does not run here is a finding, not a crash
            note = f"failed: {type(err).__name__}: {str(err)[:200]}"
            rows.append({"row": f"sweep {a.sweep_task}: {name}", "unit": "images/s", "project": None, "note": note})
            continue
        mem = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        note = f"batch {cfg.batch_size}; warm-up steps (incl. any compile) {warm:.1f}s"
        note += f"; peak GPU memory {mem:.0f} MiB" if mem else ""
        row = f"sweep {a.sweep_task}: {name}"
        rows.append({"row": row, "unit": "images/s", "project": res["project"], "note": note})
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
    return rows


def row_convs(ctx: Ctx) -> list[dict]:
    """Every Conv2d of the AE at its real input shape, forward + backward, in both precisions/layouts."""
    a, cfg, dev = ctx.args, ctx.cfg, ctx.device
    model = project_model(dataclasses.replace(cfg, task="ae", channels_last=False), dev)
    shapes = []
    hooks = [
        m.register_forward_hook(lambda m, inp, out: shapes.append((m, inp[0].shape)))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.rand(cfg.batch_size, 3, 32, 32, device=dev))
    for h in hooks:
        h.remove()

    def layers(fast: bool):
        fmt = torch.channels_last if fast else torch.contiguous_format
        out = []
        for conv, shape in shapes:
            c = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
            c = c.to(dev, memory_format=fmt)
            x = torch.randn(shape, device=dev).contiguous(memory_format=fmt).requires_grad_(shape[1] != 3)
            out.append((c, x))
        return out

    def step_fn(fast: bool):
        convs = layers(fast)

        def step() -> int:
            for c, x in convs:
                with torch.autocast(dev.type, torch.bfloat16, enabled=fast):
                    y = c(x)
                y.float().sum().backward()
            return cfg.batch_size

        return step

    fns = {"project": step_fn(True), "baseline": step_fn(False)}
    for f in fns.values():
        run_for(f, dev, a.warmup, 0)
    res = side_by_side(fns, a.reps, dev, {"project": a.steps, "baseline": a.steps}, a.min_time)
    note = f"batch {cfg.batch_size}; the AE's {len(shapes)} convolutions, forward + backward"
    note += "; project bf16 +channels_last"
    return [ratio_row("convolutions alone (AE)", "images/s", res, None, note)]


# ---------------------------------------------------------------------------- scaling notes
def scaling_notes(ctx: Ctx, rows: list[dict]) -> list[str]:
    """What limits data-parallel scaling on GPUs, from this model's sizes and the measured rates."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ctx.cfg
    model = AutoEncoder(cfg)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as fc:
        model(torch.rand(8, 3, 32, 32))[0].float().mean().backward()
    train_flops_img = fc.get_total_flops() / 8  # forward + backward, per image
    grad_bytes = params * 4  # DDP all-reduces fp32 gradients, even under bf16 autocast
    ring8 = 2 * grad_bytes * 7 / 8  # bytes each rank sends (and receives) per all-reduce, ring over 8 ranks
    bs = cfg.batch_size
    by = {r["row"]: r for r in rows}
    lines = [
        f"model: {params / 1e6:.2f}M parameters; training costs {train_flops_img / 1e6:.0f} MFLOP per image "
        f"({train_flops_img * bs / 1e9:.1f} GFLOP per {bs}-image step)",
        f"communication per step: all-reduce of {grad_bytes / 1e6:.1f} MB of fp32 gradients; a ring over N ranks "
        f"moves 2(N-1)/N x that per rank ({ring8 / 1e6:.1f} MB at N=8): ~{ring8 / 25e9 * 1e3:.2f} ms at 25 GB/s "
        f"(PCIe), ~{ring8 / 400e9 * 1e3:.3f} ms at 400 GB/s (NVLink); "
        f"{train_flops_img * bs / grad_bytes:.0f} FLOP of compute per byte communicated",
        f"batch size: a global batch of {bs} over 8 GPUs is {bs // 8} images per GPU, "
        f"{train_flops_img * bs / 8 / 1e9:.2f} GFLOP per step (~{train_flops_img * bs / 8 / 400e12 * 1e6:.0f} us "
        "at 400 TFLOP/s): kernel launches and the all-reduce, not arithmetic, set the step time; "
        "scale the batch (and lr) with the GPU count, or use fewer GPUs",
    ]
    ld = by.get("data loading, crop+flip")
    if ld:
        p_img, b_img = ld["project"]["median"] * bs, ld["baseline"]["median"] * bs
        lines.append(
            f"data path: the PIL DataLoader delivers {b_img:,.0f} images/s with {ctx.args.workers} workers here, "
            f"the DeviceLoader {p_img:,.0f} images/s; a GPU that trains at tens of thousands of images/s "
            "would wait on the PIL loader, while the DeviceLoader keeps the uint8 data set on the GPU "
            "(150 MiB) and augments a whole batch per kernel, with no host->device copies"
        )
    dd = by.get("DDP 2 procs vs 1 (CPU, gloo)")
    if dd and dd.get("project"):
        lines.append(
            f"measured here: 2 CPU processes reach {dd['efficiency']:.0%} scaling efficiency "
            f"({dd['project']['median']:.0f} vs {dd['baseline']['median']:.0f} images/s); on a shared 2-core box "
            "the two ranks also compete with each other and with other jobs for the cores"
        )
    return lines


# ---------------------------------------------------------------------------- data
def synthetic_cache(tmp: Path, seed: int = 0) -> Path:
    """A random uint8 CIFAR-sized cache (50k train + 10k test) in the project's cache format."""
    gen = torch.Generator().manual_seed(seed)
    obj = {
        "format": data_lib.CACHE_FORMAT,
        "source": "synthetic",
        "fingerprint": "synthetic",
        "classes": list(data_lib.CLASSES),
        "train_images": torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=gen),
        "train_labels": torch.arange(50_000) % 10,
        "test_images": torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, generator=gen),
        "test_labels": torch.arange(10_000) % 10,
    }
    path = tmp / "synthetic-cifar10.pt"
    torch.save(obj, path)
    return path


# ---------------------------------------------------------------------------- output
def fmt(stat) -> str:
    if not stat:
        return "-"
    m = stat["median"]
    digits = 0 if m >= 100 else 1 if m >= 10 else 2
    lo, hi = stat["min"], stat["max"]
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def render(rows: list[dict], header: str) -> str:
    cols = ("row", "unit", "project", "baseline", "ratio", "target")
    table = [cols]
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r.get("ratio", 0) >= 1 else f"{r['ratio']:.2g}x" if "ratio" in r else ""
        if "efficiency" in r:
            ratio += f", eff {r['efficiency']:.0%}"
        target = ""
        if "target" in r:
            target = f">={r['target']:g}x {'met' if r['met'] else 'MISSED'}"
        table.append((r["row"], r["unit"], fmt(r.get("project")), fmt(r.get("baseline")), ratio, target))
    widths = [max(len(str(t[i])) for t in table) for i in range(len(cols))]
    lines = [header, ""]
    for i, t in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(t, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r['row']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + ["", "notes:", *notes])


def machine(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def busy_elsewhere(seconds: float = 1.0) -> dict:
    """CPU used by processes outside this one, sampled before the bench (did other jobs run?)."""
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.pid != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(seconds)
    usage = []
    for p in procs:
        try:
            usage.append((p.cpu_percent(None), p.info["name"]))
        except psutil.Error:
            pass
    usage.sort(reverse=True)
    total = sum(u for u, _ in usage)
    return {"other_cpu_percent": total, "top": [f"{n} {u:.0f}%" for u, n in usage[:3] if u >= 5]}


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 source or prepared .pt cache (default: random synthetic data)")
    p.add_argument("--config", default=str(ROOT / "jobs/configs/cpu_ae.yaml"), help="model/training config YAML")
    p.add_argument("--out", default=str(ROOT / "outs/bench.json"), help="where to write the JSON")
    p.add_argument("--only", default=",".join(DEFAULT_ROWS), help=f"comma list of rows: {', '.join(ALL_ROWS)}")
    p.add_argument("--reps", type=int, default=3, help="repetitions per measurement (medians reported)")
    p.add_argument("--steps", type=int, default=2, help="timed training steps per rep")
    p.add_argument("--min-time", type=float, default=0.0, help="also run each rep for at least this many seconds")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps before timing")
    p.add_argument("--loader-batches", type=int, default=20, help="baseline DataLoader batches per rep")
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    p.add_argument("--threads", default="auto", help="torch threads of the bench process: N or auto (pick_threads)")
    p.add_argument("--eval-images", type=int, default=500, help="validation images per eval rep")
    p.add_argument("--codec-images", type=int, default=128, help="images per codec rep")
    p.add_argument("--codec-model", help="codec model, run or checkpoint for the codec row (default: models/codec-v2)")
    p.add_argument("--startup-reps", type=int, default=3)
    p.add_argument("--ddp-steps", type=int, default=3, help="global steps per epoch of the DDP runs")
    p.add_argument("--ddp-epochs", type=int, default=2, help="epochs of each DDP run (median over epochs)")
    p.add_argument("--loss-tolerance", type=float, default=0.10, help="relative loss difference counted as agreeing")
    p.add_argument("--sweep-batches", default="128,256,512,1024,2048", help="batch sizes of the sweep row")
    p.add_argument("--sweep-task", choices=("ae", "clf"), default="ae", help="model of the sweep row")
    p.add_argument("--sweep-compile", action="store_true", help="include torch.compile in the sweep on a CPU")
    p.add_argument("--sub-timeout", type=float, default=300, help="seconds before a subprocess run is killed")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. batch_size=512")
    args = p.parse_args(argv)
    args.only = [r.strip() for r in args.only.split(",") if r.strip()]
    unknown = set(args.only) - set(ALL_ROWS)
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ALL_ROWS)}")
    args.sweep_batches = [int(b) for b in args.sweep_batches.split(",")]
    args.config = str(Path(args.config).resolve())  # subprocesses run from the repository root
    if args.threads != "auto" and not args.threads.isdigit():
        p.error("--threads takes a number or auto")
    if args.reps < 1 or args.steps < 1:
        p.error("--reps and --steps must be at least 1")
    return args


def repo_relative(path: str) -> str:
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def pick_threads(requested: str, others: dict) -> tuple[int, str]:
    """Intra-op threads of the bench process. 'auto': torch's default on an idle machine, 1 on a busy one.

    On a busy machine a multi-threaded process loses whole time slices at every OpenMP barrier
    (here small tensor ops ran 30x slower with 2 threads than with 1 while other jobs held the
    cores), which would measure the scheduler rather than the code.
    """
    if requested != "auto":
        return int(requested), "as asked"
    if others["other_cpu_percent"] > 50:
        return 1, f"auto: 1, since other processes used {others['other_cpu_percent']:.0f}% CPU"
    return torch.get_num_threads(), "auto: torch's default (machine idle)"


def header_text(args, cfg: Config, info: dict, others: dict, load_before, elapsed: float) -> str:
    return (
        f"cifarae bench: {info.get('gpu', info['cpu'])}, {info['cores']} cores, torch {info['torch']}, "
        f"{info['torch_threads']} thread(s) ({info['threads_why']}); "
        f"data {'synthetic (random)' if not args.data else args.data}; widths {cfg.widths}, "
        f"latent {cfg.latent_channels}x{cfg.latent_size}x{cfg.latent_size}, batch {cfg.batch_size}\n"
        f"medians of {args.reps} interleaved reps (min-max in brackets); ratio = project / baseline; "
        f"other processes used {others['other_cpu_percent']:.0f}% CPU at start (load avg {load_before[0]:.1f}); "
        f"took {elapsed:.0f}s"
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    cfg = load_config(args.config, args.overrides, task="ae")
    cfg = dataclasses.replace(cfg, task="ae", wandb=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    others = busy_elsewhere()
    load_before = os.getloadavg()
    threads, why = pick_threads(args.threads, others)
    torch.set_num_threads(threads)
    info = {**machine(device), "threads_why": why}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, ddp_detail, notes = [], {}, []

    def result(done: bool) -> dict:
        elapsed = time.perf_counter() - t_start
        table = render(rows, header_text(args, cfg, info, others, load_before, elapsed))
        if notes:
            table += "\n\nscaling on GPUs:\n" + "\n".join(f"  - {n}" for n in notes)
        res = {
            "complete": done,
            "machine": info,
            "config": cfg.to_dict(),
            "data": str(args.data or "synthetic"),
            # paths inside the checkout are recorded relative to it, so records do not name this machine
            "args": {**vars(args), "config": repo_relative(args.config), "out": repo_relative(args.out)},
            "background": {**others, "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
            "elapsed_s": elapsed,
            "rows": rows,
            "ddp_runs": ddp_detail,
            "scaling_notes": notes,
            "table": table,
        }
        out.write_text(json.dumps(res, indent=1, default=str))  # after every row: a killed run keeps its rows
        return res

    with tempfile.TemporaryDirectory(prefix="cifarae-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data_path = Path(args.data) if args.data else synthetic_cache(tmp)
        dataset = data_lib.load(data_path, cfg.val_size, cfg.split_seed)
        ctx = Ctx(args, cfg, dataset, data_path.resolve(), device, tmp)
        for name in args.only:
            t0 = time.perf_counter()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            if name == "loader":
                rows += row_loader(ctx)
            elif name in ("ae", "clf"):
                rows += row_train(ctx, name)
            elif name == "eval":
                rows += row_eval(ctx)
            elif name == "codec":
                rows += row_codec(ctx)
            elif name == "startup":
                rows += row_startup(ctx)
            elif name == "ddp":
                new, ddp_detail = row_ddp(ctx)
                rows += new
            elif name == "sweep":
                rows += row_sweep(ctx)
            elif name == "convs":
                rows += row_convs(ctx)
            print(f"[bench] {name} done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
            result(done=False)
        if {"loader", "ddp"} & set(args.only):
            notes += scaling_notes(ctx, rows)
    res = result(done=True)
    print(res["table"])
    print(f"\nwrote {out}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
