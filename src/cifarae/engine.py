"""The one training loop, shared by the autoencoder and the classifier.

A ``Task`` supplies what differs (the loss, the validation metrics, what to log as images);
this module does the rest on HF Accelerate: DDP, mixed precision, gradient accumulation,
EMA, schedules, progress, checkpoints with exact resume, signals and the NaN guard.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from . import checkpoint, tracking
from .config import Config, save_config
from .data import Dataset, DeviceLoader
from .errors import REQUEUE_EXIT_CODE, TrainingDiverged, UserError
from .files import atomic_path, write_atomic


class Task(Protocol):
    name: str
    monitor: str  # validation metric that picks `best`
    monitor_mode: str  # "min" or "max"

    def loss(self, model, x, y) -> tuple[torch.Tensor, dict]: ...

    def validate(self, model, loader: DeviceLoader, accelerator: Accelerator) -> dict: ...

    def media(self, model, images: torch.Tensor) -> dict: ...


def make_accelerator(cfg: Config, run_dir: Path | None = None) -> Accelerator:
    """Accelerator on the GPU(s) when CUDA exists, else on the CPU (gloo DDP under torchrun)."""
    precision = "no" if cfg.precision == "fp32" else cfg.precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise UserError("precision=fp16 needs a GPU; use precision=bf16 or precision=fp32 on the CPU")
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with="wandb" if cfg.wandb else None,
        project_dir=str(run_dir) if run_dir else None,
    )
    set_seed(cfg.seed)
    return accelerator


def make_loaders(cfg: Config, data: Dataset, accelerator: Accelerator, train_idx: torch.Tensor | None = None):
    world, rank = accelerator.num_processes, accelerator.process_index
    micro_batch = cfg.batch_size // (world * cfg.grad_accum)
    if micro_batch < 1:
        raise UserError(
            f"batch_size={cfg.batch_size} is smaller than processes x grad_accum ({world}x{cfg.grad_accum})"
        )
    train_images, train_labels = data.images["train"], data.labels["train"]
    if train_idx is not None:
        train_images, train_labels = train_images[train_idx], train_labels[train_idx]
    if len(train_labels) < cfg.batch_size:
        raise UserError(f"only {len(train_labels)} training images for batch_size={cfg.batch_size}; lower batch_size")
    common = {"device": accelerator.device, "rank": rank, "world_size": world}
    train = DeviceLoader(
        train_images,
        train_labels,
        micro_batch,
        train=True,
        augment=cfg.augment,
        crop_pad=cfg.crop_pad,
        seed=cfg.seed,
        **common,
    )
    val = DeviceLoader(data.images["val"], data.labels["val"], cfg.eval_batch_size, train=False, **common)
    return train, val


def make_optimizer(model, cfg: Config) -> torch.optim.Optimizer:
    groups = model.param_groups(cfg)  # the model knows which of its parameters need other settings
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Linear warm-up, then cosine decay to 0 or ('onecycle') linear decay to 0; 'airbench' is
    airbench94's triangle: 0.2 of the peak at the start, the peak at 23% of the steps, 0.07 at the end."""
    if kind == "airbench":
        peak = int(0.23 * total)
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return 1.0 - 0.93 * (step - peak) / max(1, total - peak)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else max(0.0, 1 - progress)


def group_lr_lambda(group: dict, total: int, warmup: int, kind: str, steps_per_epoch: int):
    """The schedule of one parameter group; a group with ``train_epochs`` stops (lr 0) after them."""
    stop = group.get("train_epochs")
    stop_step = math.inf if stop is None else stop * steps_per_epoch
    return lambda s: lr_factor(s, total, warmup, kind) if s < stop_step else 0.0


class Lookahead:
    """airbench94's Lookahead, on every floating-point entry of the state dict (BatchNorm statistics too).

    Every ``every`` steps the slow copy moves towards the model by ``1 - decay`` and the model restarts
    from it; ``decay`` = 0.95^every x (step / total)^3 grows from 0 (no averaging early on) to 0.77.
    After the last step the model is the slow copy.
    """

    def __init__(self, model: torch.nn.Module, every: int, total_steps: int):
        self.every, self.total = every, total_steps
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def step(self, model: torch.nn.Module, global_step: int) -> None:
        """Call after each optimizer step, with the number of steps done."""
        if global_step >= self.total:
            decay = 1.0  # the end: the model becomes the slow copy
        elif global_step % self.every == 0:
            decay = 0.95**self.every * (global_step / self.total) ** 3
        else:
            return
        state = model.state_dict()
        for key, slow in self.slow.items():
            slow.lerp_(state[key].to(slow.dtype), 1 - decay)
            state[key].copy_(slow)


class StopRequest:
    """Turns SIGTERM/SIGUSR1 (Slurm pre-emption, time limit) into a flag the loop checks, while training.

    ``restore`` puts the previous handlers back when training ends, so that what runs next in the process (a
    codec's export and RD evaluation) stops on a signal as usual; one that came after the last step is
    raised again then.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.requested, self.signum = False, None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum, frame):
        self.requested, self.signum = True, signum

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.signum is not None:
            signal.raise_signal(self.signum)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def clipped_parameters(cfg: Config, model) -> list[torch.nn.Parameter]:
    """The parameters grad_clip bounds: all, or all but the quantiles (named as CompressAI's examples split them)."""
    return [p for name, p in model.named_parameters() if cfg.clip_quantiles or not name.endswith(".quantiles")]


def train_step(cfg: Config, task: Task, forward_model, optimizer, accelerator: Accelerator, x, y):
    """One micro-step on a batch: loss, backward, clipping and (on the step's last micro-batch) the update.

    Returns (loss, logs): the task's loss, without a codec's aux loss (in logs as train/aux). bench/bench.py
    times this same function.
    """
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with accelerator.accumulate(forward_model):
        loss, logs = task.loss(forward_model, x, y)
        # A codec's aux loss (CompressAI's) fits its coder's quantiles alone: trained with the rest, reported apart
        model = accelerator.unwrap_model(forward_model)
        aux = model.aux_loss() if hasattr(model, "aux_loss") else None
        if aux is not None:
            logs["train/aux"] = aux.item()
        accelerator.backward(loss if aux is None else loss + aux)
        if accelerator.sync_gradients and cfg.grad_clip:
            accelerator.clip_grad_norm_(clipped_parameters(cfg, forward_model), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss, logs


def train(
    cfg: Config,
    task: Task,
    model: torch.nn.Module,
    data: Dataset,
    run_dir: Path,
    accelerator: Accelerator,
    train_idx: torch.Tensor | None = None,
    extra_state: dict | None = None,
) -> list[dict]:
    """Train ``model`` on ``task`` into ``run_dir``; resume from ``run_dir/last.pt`` if present."""
    run_dir = Path(run_dir)
    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    stop = StopRequest()

    train_loader, val_loader = make_loaders(cfg, data, accelerator, train_idx)
    steps_per_epoch = len(train_loader) // cfg.grad_accum
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(accelerator.device)
    optimizer = make_optimizer(model, cfg)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    lambdas = [group_lr_lambda(g, total_steps, warmup, cfg.schedule, steps_per_epoch) for g in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    lookahead = Lookahead(model, cfg.lookahead_every, total_steps) if cfg.lookahead_every else None
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay
        else None
    )
    forward_model = torch.compile(model) if cfg.compile else model
    forward_model, optimizer = accelerator.prepare(forward_model, optimizer)

    # ---- resume
    start_epoch, start_step, global_step, history = 0, 0, 0, []
    interrupted = {}  # the interrupted epoch's seconds, images and loss so far, so its record covers all of it
    best = math.inf if task.monitor_mode == "min" else -math.inf
    last_path = run_dir / "last.pt"
    if last_path.is_file():
        ckpt = checkpoint.load(last_path)
        saved = checkpoint.checkpoint_config(ckpt).to_dict()
        if saved != cfg.to_dict():
            changed = sorted(k for k in saved if saved[k] != getattr(cfg, k))
            raise UserError(f"{last_path} was trained with other settings ({', '.join(changed)}); use a new --out")
        checkpoint.load_weights(model, ckpt["model"], str(last_path))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if accelerator.scaler is not None and ckpt.get("scaler"):
            accelerator.scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.module.load_state_dict(ckpt["ema_model"])
            ema.n_averaged.copy_(ckpt["ema_n"])
        if lookahead is not None:
            lookahead.slow = {k: v.to(accelerator.device) for k, v in ckpt["lookahead"].items()}
        _set_rng_state(ckpt["rng"])
        start_epoch, start_step, global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        history, best = ckpt["history"], ckpt["best"]
        interrupted = ckpt.get("epoch_so_far") or {}
        accelerator.print(f"resuming {run_dir} at epoch {start_epoch + 1}, step {start_step}")

    tracking_on = tracking.init_tracking(accelerator, cfg, run_dir, task.name) if main else False

    def state(epoch: int, step_in_epoch: int, so_far: dict | None) -> dict:
        unwrapped = accelerator.unwrap_model(forward_model)
        unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
        return checkpoint.new(
            cfg,
            data.classes,
            unwrapped.state_dict(),
            ema_model=ema.module.state_dict() if ema is not None else None,
            ema_n=ema.n_averaged if ema is not None else None,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            scaler=accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
            rng=_rng_state(),
            epoch=epoch,
            step_in_epoch=step_in_epoch,
            global_step=global_step,
            history=history,
            best=best,
            epoch_so_far=so_far,
            **({"lookahead": lookahead.slow} if lookahead is not None else {}),
            **(extra_state or {}),
        )

    def save(name: str, epoch: int, step_in_epoch: int, so_far: dict | None = None) -> None:
        accelerator.wait_for_everyone()
        if main:
            checkpoint.save_atomic(state(epoch, step_in_epoch, so_far), run_dir / name)

    def over_ranks(loss_sum: float, loss_count: int) -> tuple[float, int]:
        """The epoch's loss sum and step count so far, summed over every rank."""
        if accelerator.num_processes == 1:
            return loss_sum, loss_count
        totals = torch.tensor([loss_sum, loss_count], device=accelerator.device, dtype=torch.float64)
        total_sum, total_count = accelerator.reduce(totals, "sum").tolist()
        return total_sum, int(total_count)

    def sync_flags(*flags: bool) -> list[bool]:
        """Agree across ranks, so one rank's signal or NaN stops every rank at the same step."""
        t = torch.tensor([float(f) for f in flags], device=accelerator.device)
        if accelerator.num_processes > 1:
            t = accelerator.reduce(t, reduction="sum")
        return [bool(v > 0) for v in t.tolist()]

    for epoch in range(start_epoch, cfg.epochs):
        forward_model.train()
        train_loader.set_epoch(epoch, start_step * cfg.grad_accum)
        bar = tqdm(
            total=steps_per_epoch,
            initial=start_step,
            desc=f"{task.name} epoch {epoch + 1}/{cfg.epochs}",
            disable=not main,
            dynamic_ncols=True,
            leave=False,
        )
        so_far = interrupted if epoch == start_epoch else {}
        t0, seen = time.perf_counter() - so_far.get("seconds", 0.0), so_far.get("images", 0)
        # every rank's loss before the interruption, summed: the main rank carries it
        loss_sum, loss_count = (so_far.get("loss_sum", 0.0), so_far.get("loss_count", 0)) if main else (0.0, 0)
        step_in_epoch = start_step
        for x, y in train_loader:
            loss, logs = train_step(cfg, task, forward_model, optimizer, accelerator, x, y)
            seen += len(x) * accelerator.num_processes
            loss_value = loss.detach().float().item()
            if not accelerator.sync_gradients:
                continue
            nonfinite, stop_now = sync_flags(not math.isfinite(loss_value + logs.get("train/aux", 0.0)), stop.requested)
            if nonfinite:
                bar.close()
                raise TrainingDiverged(
                    f"loss became {loss_value} at epoch {epoch + 1} step {step_in_epoch}; "
                    f"the last good checkpoint is kept in {run_dir}; lower lr or use precision=fp32"
                )
            scheduler.step()
            global_step += 1
            if lookahead is not None:
                lookahead.step(accelerator.unwrap_model(forward_model), global_step)
            if ema is not None:
                ema.update_parameters(accelerator.unwrap_model(forward_model))
            step_in_epoch += 1
            loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
            rate = seen / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{rate:.0f}")
            if tracking_on and global_step % cfg.log_every == 0:
                lr = optimizer.param_groups[0]["lr"]
                accelerator.log(
                    {"train/loss": loss_value, "train/lr": lr, "train/img_per_s": rate, **logs}, step=global_step
                )
            if stop_now:
                bar.close()
                total_sum, total_count = over_ranks(loss_sum, loss_count)
                so_far = {
                    "seconds": time.perf_counter() - t0,
                    "images": seen,
                    "loss_sum": total_sum,
                    "loss_count": total_count,
                }
                save("last.pt", epoch, step_in_epoch, so_far)
                accelerator.wait_for_everyone()  # no rank exits before the main one has written last.pt
                accelerator.print(f"stop signal: saved {run_dir / 'last.pt'}; exiting {REQUEUE_EXIT_CODE} to requeue")
                accelerator.end_training()
                raise SystemExit(REQUEUE_EXIT_CODE)
        bar.close()
        start_step = 0
        epoch_time = time.perf_counter() - t0

        loss_sum, loss_count = over_ranks(loss_sum, loss_count)  # the epoch's mean loss over every rank's images
        eval_model = ema.module if ema is not None else accelerator.unwrap_model(forward_model)
        # Without a validation split (val_size=0: the final fit on every training image) nothing is
        # selected: each epoch's model is the best so far, and the last one is the result.
        val = task.validate(eval_model, val_loader, accelerator) if len(data.labels["val"]) else {}
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(1, loss_count),
            **{f"val_{k}": v for k, v in val.items()},
            "lr": optimizer.param_groups[0]["lr"],
            "img_per_s": seen / epoch_time,
            "epoch_time_s": epoch_time,
        }
        history.append(record)
        metric = record.get(f"val_{task.monitor}")
        improved = metric is None or (metric < best if task.monitor_mode == "min" else metric > best)
        if improved and metric is not None:
            best = metric
        save("last.pt", epoch + 1, 0)
        if improved and main:
            # `best` is the `last` just written, copied atomically (same bytes, no second serialisation).
            with atomic_path(run_dir / "best.pt") as tmp:
                shutil.copyfile(run_dir / "last.pt", tmp)
        if main:
            write_atomic(run_dir / "history.json", json.dumps(history, indent=1))
            parts = [f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"]
            accelerator.print(f"[{task.name}] epoch {epoch + 1}/{cfg.epochs} " + " ".join(parts))
        if tracking_on:
            accelerator.log({f"epoch/{k}": v for k, v in record.items()}, step=global_step)
            if cfg.image_every and (epoch + 1) % cfg.image_every == 0 and len(data.labels["val"]):
                for key, image in task.media(eval_model, data.images["val"][:16]).items():
                    tracking.log_images(accelerator, key, image, step=global_step)
    # Every rank waits for the main one's last writes, then all leave the process group together: a rank that
    # leaves first can abort in gloo's teardown ("terminate called without an active exception", SIGABRT).
    accelerator.wait_for_everyone()
    accelerator.end_training()
    stop.restore()
    return history
