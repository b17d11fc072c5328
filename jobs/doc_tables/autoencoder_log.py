"""docs/autoencoder-log.md's tables."""

from __future__ import annotations

from .shared import SPLIT_NAMES, ae_metrics, load, md_table


def ae_per_class() -> str | None:
    m = load("ae/metrics.json")
    if m is None:
        return None
    classes = list(m["test"]["psnr_per_class"])
    return md_table(
        ["split", *classes], [[SPLIT_NAMES[s], *(r["psnr_per_class"][c] for c in classes)] for s, r in m.items()]
    )


def hyperparameters(prefix: str = "") -> str | None:
    ae, clf = load(f"{prefix}ae/config.yaml"), load(f"{prefix}grid/config_finetune.yaml")
    if ae is None:
        return None
    keys = [
        "widths",
        "latent_size",
        "latent_channels",
        "upsample",
        "loss",
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "momentum",
        "schedule",
        "warmup_epochs",
        "label_smoothing",
        "logit_scale",
        "tta",
        "augment",
        "precision",
        "channels_last",
        "ema_decay",
        "val_size",
        "seed",
    ]
    return md_table(
        ["key", "autoencoder", "classifier (finetune, 100%)"], [[k, ae.get(k), (clf or {}).get(k, "")] for k in keys]
    )


def ae_history() -> str | None:
    h = load("ae/history.json")
    if h is None:
        return None
    keys = ["epoch", "train_loss", "val_loss", "val_psnr", "lr", "img_per_s", "epoch_time_s"]
    return md_table(keys, [[r[k] for k in keys] for r in h])


def ablations() -> str | None:
    a = load("ablations/ablations.json")
    if a is None:
        return None
    base = next(r for r in a["rows"] if r["variant"] == "base")["val_psnr"]
    return md_table(
        ["#", "what changed (vs base)", "val PSNR (dB)", "Δ vs base (dB)", "train img/s"],
        [[i + 1, r["change"], r["val_psnr"], r["val_psnr"] - base, r["img_per_s"]] for i, r in enumerate(a["rows"])],
    )


def bottleneck() -> str | None:
    a = load("bottleneck/ablations.json")
    if a is None:
        return None
    rows = sorted(a["rows"], key=lambda r: r["compression_ratio"])
    keys = ["compression_ratio", "psnr_dataset", "psnr_mean", "ssim", "val_psnr", "img_per_s"]
    header = ["latent", "compression ratio", "test PSNR pooled (dB)", "test PSNR mean (dB)", "test SSIM"]
    return md_table(
        [*header, "best val PSNR (dB)", "train img/s"],
        # 3,072 input values / (C x 8 x 8) latent values: C = 48 / ratio
        [[f"{round(48 / r['compression_ratio'])}x8x8", *(r[k] for k in keys)] for r in rows],
    )


def shift() -> str | None:
    s = load("shift/shift.json")
    if s is None:
        return None
    rows = [["clean", "-", s["clean"]["psnr"], 100 * s["clean"]["accuracy"]]]
    for kind, levels in s["shifts"].items():
        rows += [[kind, r["level"], r["psnr"], 100 * r["accuracy"]] for r in levels]
    return md_table(["shift", "level", "AE reconstruction PSNR (dB)", "classifier accuracy (%)"], rows)


TABLES = {
    "ae_metrics": (ae_metrics, "experiments/autoencoder/run.sh"),
    "ae_per_class": (ae_per_class, "experiments/autoencoder/run.sh"),
    "ae_history": (ae_history, "experiments/autoencoder/run.sh"),
    "hyperparameters": (hyperparameters, "experiments/autoencoder/run.sh"),
    "ablations": (ablations, "experiments/autoencoder/run.sh"),
    "shift": (shift, "experiments/generalisation/run.sh"),
    "bottleneck": (bottleneck, "experiments/autoencoder/run.sh"),
    "full_ae_metrics": (lambda: ae_metrics("full/"), "experiments/gpu/run.sh collect"),
    "full_hyperparameters": (lambda: hyperparameters("full/"), "experiments/gpu/run.sh collect"),
}
