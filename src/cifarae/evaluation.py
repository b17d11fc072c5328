"""Evaluate a trained autoencoder or classifier on every split: metrics, files, plots, W&B.

Runs in fp32 by default (bf16 autocast on request: faster, still deterministic), and gathers
per-sample outputs across ranks before reducing, so DDP gives the single-process numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from . import checkpoint, metrics, plots, tracking
from .config import Config
from .data import Dataset, DeviceLoader
from .errors import UserError
from .models import build_model
from .tasks import predict_logits, quantize_8bit

SPLITS = ("train", "val", "test")
SAMPLE_COUNT = 8  # images shown in the *_data_points_plot grids
AE_TABLE_KEYS = ["mse", "mae", "psnr_mean", "psnr_dataset", "ssim", "compression_ratio"]
CLF_TABLE_KEYS = ["accuracy", "top2_accuracy", "macro_f1", "ece"]


def parse_splits(text: str) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise UserError(f"unknown split(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(SPLITS)}")
    return splits


def load_model(ckpt: dict) -> tuple[torch.nn.Module, Config]:
    cfg = checkpoint.checkpoint_config(ckpt)
    model = build_model(cfg)
    checkpoint.load_weights(model, checkpoint.inference_state(ckpt), ckpt["path"])
    return model.eval(), cfg


@torch.no_grad()
def collect(model, cfg: Config, images, labels, accelerator: Accelerator, batch_size: int, bf16: bool = False) -> dict:
    """Per-sample outputs of this split from every rank, in sample-index order (on every rank)."""
    loader = DeviceLoader(
        images,
        labels,
        batch_size,
        train=False,
        device=accelerator.device,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )
    parts = []
    hist = torch.zeros(256, 256, dtype=torch.long)
    for idx, (x, _) in zip(loader.batch_indices(), loader):
        with torch.autocast(accelerator.device.type, torch.bfloat16, enabled=bf16):
            output = model(x)[0] if cfg.task == "ae" else predict_logits(model, x, cfg)
        if cfg.task == "ae":
            x_hat = quantize_8bit(output)
            part = metrics.per_image_reconstruction(x_hat, x)
            hist += metrics.pixel_histogram(x_hat, x).cpu()
        else:
            part = {"logits": output.float()}
        parts.append({"index": idx, **{k: v.cpu() for k, v in part.items()}})
    parts = gather_object(parts) if accelerator.num_processes > 1 else parts
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    order = torch.argsort(out.pop("index"))
    out = {k: v[order] for k, v in out.items()}
    if cfg.task == "ae":
        hists = gather_object([hist]) if accelerator.num_processes > 1 else [hist]
        out["histogram"] = torch.stack(hists).sum(0)
    return out


def sample_indices(n: int) -> torch.Tensor:
    """Fixed, spread-out sample indices so every evaluation shows the same images."""
    return torch.linspace(0, n - 1, SAMPLE_COUNT).round().long()


def evaluate(
    ckpt: dict,
    dataset: Dataset,
    splits: list[str],
    out_dir: Path,
    accelerator: Accelerator,
    batch_size: int = 500,
    history: list[dict] | None = None,
    log_wandb: bool = True,
    bf16: bool = False,
) -> dict:
    """Compute every metric on ``splits``, write metrics.json/.csv and the plots into ``out_dir``.

    The caller ends the run (``accelerator.end_training()`` on every rank), which also closes W&B.
    """
    model, cfg = load_model(ckpt)
    if ckpt["classes"] != dataset.classes:
        raise UserError(f"{ckpt['path']} was trained on classes {ckpt['classes']}, the data has {dataset.classes}")
    model = model.to(accelerator.device)
    main = accelerator.is_main_process
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    results, figures = {}, {}
    for split in splits:
        images, labels = dataset.images[split], dataset.labels[split]
        if not len(labels):  # val_size=0: a run fitted on every training image has no validation split
            accelerator.print(f"{split}: no images (val_size={cfg.val_size}), skipped")
            continue
        outputs = collect(model, cfg, images, labels, accelerator, batch_size, bf16)
        if not main:
            continue
        name = plots.SPLIT_NAMES[split]
        shown = sample_indices(len(labels))
        x = images[shown].float().div(255)
        if cfg.task == "ae":
            per_image = {k: outputs[k] for k in ("mse", "mae", "psnr", "ssim")}
            result = metrics.summarize_reconstruction(per_image, labels, dataset.classes)
            result["compression_ratio"] = model.compression_ratio
            result["r2"] = metrics.r_squared(outputs["histogram"])
            with torch.no_grad():
                x_hat = quantize_8bit(model(x.to(accelerator.device))[0]).cpu()
                worst = torch.tensor(result["worst_indices"])
                worst_hat = quantize_8bit(model(images[worst].float().div(255).to(accelerator.device))[0]).cpu()
            figures[f"{name}_data_points_plot"] = plots.image_grid(
                [("original", x), ("reconstruction", x_hat)],
                out_dir / f"{name}_data_points_plot.png",
                titles=[f"#{int(i)}" for i in shown],
            )
            figures[f"{name}_worst_plot"] = plots.image_grid(
                [("original", images[worst].float().div(255)), ("reconstruction", worst_hat)],
                out_dir / f"{name}_worst_plot.png",
                titles=[f"{p:.1f} dB" for p in result["worst_psnr"]],
            )
            figures[f"{name}_regression_plot"] = plots.regression_plot(
                outputs["histogram"], result["r2"], split, out_dir / f"{name}_regression_plot.png"
            )
        else:
            result = metrics.summarize_classification(outputs["logits"], labels, dataset.classes)
            pred = outputs["logits"][shown].argmax(1)
            titles = [f"{dataset.classes[t][:5]}>{dataset.classes[p][:5]}" for t, p in zip(labels[shown], pred)]
            figures[f"{name}_data_points_plot"] = plots.image_grid(
                [("true>predicted", x)], out_dir / f"{name}_data_points_plot.png", titles=titles
            )
            figures[f"{name}_confusion_matrix"] = plots.confusion_matrix_plot(
                result["confusion_matrix"],
                dataset.classes,
                out_dir / ("confusion_matrix.png" if split == "test" else f"{name}_confusion_matrix.png"),
                title=f"confusion matrix ({name})",
            )
        results[split] = result

    if not main:
        return {}
    table_keys = AE_TABLE_KEYS if cfg.task == "ae" else CLF_TABLE_KEYS
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=1))
    rows = [metrics.flat_row(s, r) for s, r in results.items()]
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figures["metrics"] = plots.metrics_table(results, table_keys, out_dir / "metrics.png")
    if cfg.task == "ae":
        figures["per_class"] = plots.per_class_bars(
            {plots.SPLIT_NAMES[s]: r["psnr_per_class"] for s, r in results.items()},
            out_dir / "per_class.png",
            "reconstruction PSNR per class",
            "PSNR (dB)",
        )
    else:
        last = results[splits[-1]]
        figures["per_class"] = plots.per_class_bars(
            {k: last[f"{k}_per_class"] for k in ("precision", "recall", "f1")},
            out_dir / "per_class.png",
            f"per-class scores ({plots.SPLIT_NAMES[splits[-1]]})",
            "score",
        )
    if history:
        figures["loss_plot"] = plots.loss_plot(history, out_dir / "loss_plot.png")

    # --no-wandb decides here, not the training run's own `wandb` setting. The evaluation is a W&B
    # run of its own (id kept in out_dir), in the evaluated run's group.
    run_dir = Path(ckpt["path"]).parent
    names = {"name": f"{run_dir.name}-eval", "group": tracking.default_group(run_dir)}
    if log_wandb and tracking.init_tracking(
        accelerator, dataclasses.replace(cfg, wandb=True), out_dir, "eval", **names
    ):
        for split, row in zip(results, rows):
            tracking.log_table(accelerator, f"eval/{split}_metrics", [row])
        for key, path in figures.items():
            tracking.log_images(accelerator, f"eval/{key}", str(path), step=None)
    return results
