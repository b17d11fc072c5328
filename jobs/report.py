"""Regenerate the tables of README.md, REPORT.md and docs/*.md from the files under outs/, so they cannot drift.

    python jobs/report.py            # rewrites the blocks between <!-- table:NAME --> markers
    python jobs/report.py --check    # exit 1 if README.md / REPORT.md / docs/*.md are out of date

Each table reads one file under outs/; a missing file leaves a note saying which command makes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from functools import partial
from pathlib import Path

import yaml

from cifarae.rd import bd_rate, interpolate

REPO = Path(__file__).resolve().parents[1]
OUTS = REPO / "outs"


SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def md_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def load(path: str):
    f = OUTS / path
    if not f.is_file():
        return None
    return json.loads(f.read_text()) if f.suffix == ".json" else yaml.safe_load(f.read_text())


def ae_metrics(prefix: str = "") -> str | None:
    m = load(f"{prefix}ae/metrics.json")
    if m is None:
        return None
    keys = ["mse", "mae", "psnr_mean", "psnr_dataset", "ssim", "r2", "compression_ratio", "num_images"]
    return md_table(["split", *keys], [[SPLIT_NAMES[s], *(r[k] for k in keys)] for s, r in m.items()])


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


def pm(v: dict | None, digits: int = 1, show_n: bool = False) -> str:
    """A grid summary entry as "mean ± std" in percent, with the number of seeds if asked (the mean alone for one)."""
    if v is None:
        return "-"
    if v["n"] == 1:
        return f"{100 * v['mean']:.{digits}f}"
    return f"{100 * v['mean']:.{digits}f} ± {100 * v['std']:.{digits}f}" + (f" (n={v['n']})" if show_n else "")


def grid(prefix: str = "") -> str | None:
    g = load(f"{prefix}grid/grid.json")
    if g is None:
        return None
    fractions = list(next(iter(g["summary"].values())))
    rows = []
    for mode, s in g["summary"].items():
        rows.append([mode, *(pm(v, digits=2, show_n=True) for v in s.values())])
    return md_table(["mode", *(f"{float(f):.0%} labels" for f in fractions)], rows)


def grid_margin(prefix: str = "") -> str | None:
    g = load(f"{prefix}grid/grid.json")
    if g is None or "finetune" not in g["summary"] or "scratch" not in g["summary"]:
        return None
    rows = []
    for f, v in g["summary"]["finetune"].items():
        s = g["summary"]["scratch"][f]
        rows.append([f"{float(f):.0%}", 100 * v["mean"], 100 * s["mean"], 100 * (v["mean"] - s["mean"])])
    return md_table(["labels", "finetune test acc (%)", "scratch test acc (%)", "finetune − scratch (points)"], rows)


def clf_metrics() -> str | None:
    m = load("clf/metrics.json")
    if m is None:
        return None
    keys = ["accuracy", "top2_accuracy", "macro_f1", "ece", "num_images"]
    return md_table(["split", *keys], [[SPLIT_NAMES[s], *(r[k] for k in keys)] for s, r in m.items()])


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


def bench(name: str = "bench.json") -> str | None:
    b = load(name)
    if b is None:
        return None

    def med(v):
        return v["median"] if isinstance(v, dict) else v if v is not None else "-"

    rows = []
    for r in b["rows"]:
        ratio = f"{r['ratio']:.3g}x" if r.get("ratio") else "-"
        target = f"≥{r['target']:g}x ({'met' if r.get('met') else 'missed'})" if r.get("target") else ""
        rows.append([r["row"], r["unit"], med(r.get("project")), med(r.get("baseline")), ratio, target])
    return md_table(["row", "unit", "project (median of 3)", "baseline (median of 3)", "ratio", "target"], rows)


def history_summary(paths: dict[str, str], metric: str) -> str | None:
    """One row per run: epochs, the final and best validation metric, training throughput."""
    rows = []
    for label, path in paths.items():
        h = load(path)
        if h is None:
            return None
        best = max(r[metric] for r in h)
        rows.append([label, len(h), h[-1][metric], best, sum(r["epoch_time_s"] for r in h), h[-1]["img_per_s"]])
    header = ["run", "epochs", f"final {metric}", f"best {metric}", "train time (s)", "img/s (last epoch)"]
    return md_table(header, rows)


def full_budget() -> str | None:
    return history_summary(
        {
            "scratch, 100% labels, 10 epochs": "full/budget/scratch-e10.json",
            "scratch, 100% labels, 20 epochs (seed 0)": "full/grid/histories/scratch-f1-s0.json",
            "finetune, 100% labels, 10 epochs": "full/budget/finetune-e10.json",
            "finetune, 100% labels, 20 epochs (seed 0)": "full/grid/histories/finetune-f1-s0.json",
        },
        "val_acc",
    )


def recipe() -> str | None:
    variants = {
        "base": "recipe as is",
        "crop_pad-2": "crop padding 4 → 2",
        "weight_decay-0.005": "weight decay 5e-4 → 5e-3",
        "ema_decay-0.99": "EMA of the weights (decay 0.99)",
    }
    return history_summary({label: f"recipe/{name}.json" for name, label in variants.items()}, "val_acc")


CPU_RUNS = {  # outs/ folder -> (what its runs add to the GPU grid's recipe, its backbone as the history names it)
    "cpu_full": ("+ pad 2, BN biases 64x lr, shift TTA (CPU)", "latent 8×8"),
    "cpu_pool4": ("+ the same and pooling in all 3 blocks, latent_size=4 (CPU)", "latent 4×4"),
    "cpu_airbench": ("+ the same, whitening stem, BN scales frozen, airbench's SGD (CPU)", "latent 4×4, airbench net"),
}


def cpu_recipe() -> str | None:
    """Test accuracy at 100% labels: the old recipe (GPU grid) beside the airbench additions (CPU runs)."""
    old, rows = load("full/grid/grid.json"), []
    if old is None:
        return None
    for mode in ("finetune", "scratch"):
        o = old["summary"][mode]["1.0"]
        rows.append([mode, "old: pad 4, flip TTA (GPU)", 20, pm(o, digits=2, show_n=True)])
        for folder, (recipe, _) in CPU_RUNS.items():
            m, h = load(f"{folder}/{mode}/metrics.json"), load(f"{folder}/{mode}/history.json")
            if m is None or h is None:
                return None
            rows.append([mode, recipe, len(h), f"{100 * m['test']['accuracy']:.2f}"])
    return md_table(["mode", "recipe (device)", "epochs", "test accuracy (%)"], rows)


def cpu_recipe_history() -> str | None:
    runs = {}
    for folder, (_, backbone) in CPU_RUNS.items():
        runs[f"AE (full width, {backbone}, 3 epochs)"] = (f"{folder}/ae", "val_psnr")
        runs |= {
            f"{mode}, {backbone}, 100% labels": (f"{folder}/{mode}", "val_acc") for mode in ("finetune", "scratch")
        }
    rows = []
    for label, (name, metric) in runs.items():
        h = load(f"{name}/history.json")
        if h is None:
            return None
        rows.append([label, len(h), metric, h[-1][metric], sum(r["epoch_time_s"] for r in h), h[-1]["img_per_s"]])
    return md_table(["run", "epochs", "metric", "final", "train time (s)", "img/s (last epoch)"], rows)


def whiten() -> str | None:
    runs = {
        "3x3 conv stem (32 channels)": "whiten/airbench.json",
        "whitening stem (24 channels)": "whiten/airbench_whiten.json",
    }
    return history_summary(runs, "val_acc")


def jpeg() -> str | None:
    """The whitening-stem scratch run (outs/whiten) on the archive and on copies re-encoded at lower quality."""
    runs = {"the archive as is (Pillow JPEG q75 copies)": "whiten/airbench_whiten.json"}
    for q in (50, 30):
        psnr = load(f"jpeg/q{q}_psnr.json")
        if psnr is None:
            return None
        runs[f"re-encoded at q{q} ({psnr['psnr_vs_source_db']['test']:.2f} dB vs the archive)"] = f"jpeg/q{q}.json"
    return history_summary(runs, "val_acc")


def airbench_ref() -> str | None:
    """airbench94 itself (experiments/classifier/airbench_reference.py) on the archive: one row per run."""
    runs = [json.loads(f.read_text()) for f in (OUTS / "airbench_ref").glob("e*_s*.json")]
    if not runs:
        return None
    rows = []
    for r in sorted(runs, key=lambda r: (r["epochs"], r["seed"])):
        acc = r["test_accuracy"]
        rows.append(
            [
                r["epochs"],
                r["seed"],
                r["train_images"],
                *(f"{100 * acc[f'tta{k}']:.2f}" for k in (0, 1, 2)),
                r["train_seconds"],
            ]
        )
    header = [
        "epochs",
        "seed",
        "train images",
        "test acc. (%)",
        "+ flip TTA",
        "+ flip & shift TTA",
        "wall time (s, CPU)",
    ]
    return md_table(header, rows)


def full_codec_training() -> str | None:
    lambdas = ("0.004", "0.012", "0.035", "0.1")
    runs = {f"λ = {lam} (GPU, 10 epochs)": f"full/codec/lambda{lam}.json" for lam in lambdas}
    runs["λ = 0.2 (CPU, the λ = 0.035 codec + 12,000 images)"] = "full/codec/lambda0.2-cpu.json"
    return history_summary(runs, "val_psnr")


def codec_families() -> str | None:
    """The later codec families' runs side by side: last epoch, and the best one (the checkpoint kept)."""
    runs = {
        f"wide decoder, λ = {lam} (GPU, H200)": f"full/codec_wide/lambda{lam}.json"
        for lam in ("0.01", "0.03", "0.1", "0.3")
    }
    runs |= {f"skip latent, λ = {lam} (CPU)": f"codec_skip/lambda{lam}.json" for lam in ("0.04", "0.12")}
    runs |= {
        f"skip latent + rounded-latent decoder, λ = {lam} (CPU, from λ = {start})": f"codec_skip_ste/lambda{lam}.json"
        for lam, start in (("0.007", "0.015 above"), ("0.015", "0.04"), ("0.04", "0.04"), ("0.12", "0.12"))
    }
    runs["control: skip latent, decoder still on noise, λ = 0.04 (CPU, from λ = 0.04)"] = (
        "codec_skip_ste/control_noise_lambda0.04.json"
    )
    runs["skip latent + rounded-latent decoder, λ = 0.015, 6 more epochs (CPU, lr 4e-4)"] = (
        "codec_skip_long/lambda0.015.json"
    )
    runs["the same, 5 epochs more again (CPU, lr 3e-4)"] = "codec_skip_long/lambda0.015-more.json"
    runs["the same, 14 epochs more (CPU, lr 3e-4)"] = "codec_skip_long/lambda0.015-more2.json"
    rows = []
    for label, path in runs.items():
        h = load(path)
        if h is None:
            return None
        last, best = h[-1], max(h, key=lambda r: r["val_psnr"])
        rate = last.get("val_bpp_estimate", "not recorded")
        best_rate = best.get("val_bpp_estimate", "not recorded")
        time = sum(r["epoch_time_s"] for r in h)
        rows.append([label, len(h), last["val_psnr"], rate, best["val_psnr"], best_rate, time, last["img_per_s"]])
    header = ["run", "epochs", "last val_psnr", "last val bpp", "best val_psnr", "its bpp", "train time (s)", "img/s"]
    return md_table(header, rows)


def quant_gap() -> str | None:
    """One decoder fed the coder's latents and three stand-ins (experiments/codec/quant_gap.py)."""
    r = load("codec_skip_ste/quant_gap.json")
    if r is None:
        return None
    rows = []
    for run, g in r["runs"].items():
        if "skip_ste" in run:
            how = "rounded-latent decoder, +2 epochs"
        elif "skip_noise" in run:
            how = "decoder on noise, +2 epochs (control)"
        else:
            how = "decoder on noise, 8 epochs"
        rows.append([how, g["rd_lambda"], g["psnr_coded"], g["psnr_rounded"], g["psnr_noisy"], g["psnr_float"]])
    header = ["skip-latent codec (best.pt)", "λ", "coded (a file)", "round(y)", "y + noise", "y (float)"]
    return md_table(header, rows)


def rd_points(prefix: str = "full/", split: str = "test", baselines: bool = True) -> str | None:
    r = load(f"{prefix}rd/rd.json")
    if r is None:
        return None
    rows = []
    for p in r["points"][split]["cae"]:
        rows.append(
            [
                f"ours {point_name(p)}",
                p["bpp"],
                p["bpp_payload"],
                p["psnr"],
                p["ssim"],
                p["encode_img_per_s"],
                p["decode_img_per_s"],
                max(p["encode_peak_rss_mb"], p["decode_peak_rss_mb"]),
            ]
        )
    for codec, key in (("webp", "quality"), ("jpeg", "quality")) if baselines else ():
        for p in r["points"][split][codec]:
            scan = f" (scan data {p['bpp_scan']:.3g})" if "bpp_scan" in p else ""
            rows.append([f"{codec} q{p[key]}", p["bpp"], f"-{scan}", p["psnr"], p["ssim"], "", "", ""])
    header = ["codec", "bpp (whole file)", "bpp (payload)", "PSNR (dB)", "SSIM", "encode img/s", "decode img/s"]
    return md_table([*header, "peak RSS (MB)"], rows)


def point_name(p: dict) -> str:
    """λ=0.015, or λ=0.015 refined at λ=0.009 for an encoder-side refined point; "+ context" when a
    checkerboard context model codes it."""
    name = f"λ={p['rd_lambda']:g}" + (" + context" if p.get("context") else "")
    return f"{name} refined at λ={p['refine_lambda']:.3g}" if p.get("refine") else name


def refine_vs_plain(prefix: str = "codec_refine/", split_names=("test", "val")) -> str | None:
    """The same models and images coded with and without encoder-side refinement, against WebP."""
    refined, plain = load(f"{prefix}rd/rd.json"), load(f"{prefix}plain/rd.json")
    if refined is None or plain is None:
        return None
    rows = []
    for split in split_names:
        curves = refined["points"][split]
        before = {p["model_id"]: p for p in plain["points"][split]["cae"]}
        for p in sorted(curves["cae"], key=lambda p: p["bpp"]):
            b = before[p["model_id"]]
            webp = interpolate(curves["webp"], p["bpp"])
            rows.append(
                [split, point_name(p), b["bpp"], b["psnr"], p["bpp"], p["psnr"], p["encode_img_per_s"], webp,
                 p["psnr"] - webp]
            )  # fmt: skip
    header = ["split", "ours", "bpp plain", "PSNR plain", "bpp refined", "PSNR refined", "encode img/s"]
    return md_table([*header, "WebP PSNR at refined bpp", "gain over WebP (dB)"], rows)


def context_rate(split_names=("test", "val")) -> str | None:
    """The same codecs and images, unrefined, with the factorized prior alone and with the context model."""
    context = load("codec_ctx/plain/rd.json")
    factorized = [load("codec_long3/plain/rd.json"), load("codec_refine/plain/rd.json")]
    if context is None or None in factorized:
        return None
    rows = []
    for split in split_names:
        for p in sorted(context["points"][split]["cae"], key=lambda p: p["rd_lambda"]):
            if not p.get("context"):
                continue
            # the factorized point of the same weights: same λ, same PSNR (the latents do not change)
            f = next(
                q
                for r in factorized
                for q in r["points"][split]["cae"]
                if q["rd_lambda"] == p["rd_lambda"] and abs(q["psnr"] - p["psnr"]) < 1e-9
            )
            saved = 100 * (1 - p["bpp"] / f["bpp"])
            rows.append([split, f"λ={p['rd_lambda']:g}", p["psnr"], f["bpp"], p["bpp"], saved])
    header = ["split", "codec", "PSNR (dB, both)", "bpp factorized", "bpp + context", "rate saved (%)"]
    return md_table(header, rows)


def refine_probe() -> str | None:
    """Refinement variants on one validation subset (experiments/codec/refine_probe.py), each against the shipped
    refinement's line through its two points (λ scale 0.7 and 1) at the same bpp."""
    r = load("codec_refine/probe.json")
    if r is None:
        return None
    (b0, q0), (b1, q1) = sorted(
        (p["bpp"], p["psnr"]) for p in r["points"] if p["variant"] == "ste" and p["run"] == "model"
    )
    rows = []
    for p in r["points"]:
        model = Path(r["run"] if p["run"] == "model" else r["far_run"]).name
        setting = (
            f"k matched at MSE {p['mse_ref']:g}"
            if "mse_ref" in p
            else ("-" if p["scale"] is None else f"λ × {p['scale']:g}")
        )
        line = q0 + (q1 - q0) * (p["bpp"] - b0) / (b1 - b0)
        versus = p["psnr"] - line if p["run"] == "model" and p["variant"] not in ("ste", "none") else "-"
        if versus != "-" and not b0 - 0.06 <= p["bpp"] <= b1 + 0.06:
            versus = f"off the line (+{p['bpp'] - b1:.2f} bpp)"  # a straight line says little that far out
        rows.append([model, p["variant"], setting, p["bpp"], p["psnr"], p["psnr_of_mean_mse"], versus])
    header = ["codec run", "refinement", "setting", "bpp (whole file)", "PSNR (dB)", "pooled PSNR (dB)"]
    return md_table([*header, "vs shipped refinement at that bpp (dB)"], rows)


def rd_floors(prefix: str = "full/") -> str | None:
    r = load(f"{prefix}rd/rd.json")
    if r is None:
        return None
    rows = []
    for split, floors in r["floors"].items():
        for name, f in floors.items():
            if name == "all_pass":
                continue
            other = next(v for k, v in f.items() if k.endswith("_psnr") and not k.startswith("cae"))
            cae = "outside the curve" if f["cae_psnr"] is None else f["cae_psnr"]
            gain = "-" if f["gain_db"] is None else f["gain_db"]
            rows.append([split, name, cae, other, gain, "pass" if f["pass"] else "FAIL"])
    return md_table(["split", "floor", "ours PSNR (dB)", "reference PSNR (dB)", "gain (dB)", "result"], rows)


def against_webp(prefix: str) -> str | None:
    """Each of our points against WebP at the same whole-file bpp (for a curve outside the floors' bpp)."""
    r = load(f"{prefix}rd/rd.json")
    if r is None:
        return None
    rows = []
    for split, curves in r["points"].items():
        for p in curves["cae"]:
            webp = interpolate(curves["webp"], p["bpp"])
            gain = "-" if webp is None else p["psnr"] - webp
            rows.append([split, point_name(p), p["bpp"], p["psnr"], webp or "outside its curve", gain])
    return md_table(["split", "ours", "bpp (whole file)", "ours PSNR (dB)", "WebP PSNR (dB)", "gain (dB)"], rows)


def gpu_steps() -> str | None:
    f = OUTS / "full" / "steps.txt"
    if not f.is_file():
        return None
    rows = []
    for line in f.read_text().splitlines():
        m = re.match(r"(\S+): (?:rc=(\d+) (\d+)s \(ended at \+(\d+)s\)|(skipped.*))", line)
        if m:
            rc, secs, end, skipped = m.group(2), m.group(3), m.group(4), m.group(5)
            outcome = skipped or ("ok" if rc == "0" else "cut by the deadline" if rc == "124" else f"exit {rc}")
            rows.append([m.group(1), secs or "-", end or "-", outcome])
    return md_table(["step", "seconds", "ended at (s)", "outcome"], rows)


def pipeline_jobs() -> str | None:
    """The Slurm accounting of the CPU pipeline run (sacct --parsable2 dump): one row per job or task."""
    f = OUTS / "pipeline" / "jobs.txt"
    if not f.is_file():
        return None
    lines = [line.split("|") for line in f.read_text().splitlines() if line]
    header, rows = lines[0], [r for r in lines[1:] if "." not in r[0]]  # job steps (.batch) left out
    return md_table(header, rows)


# --- The report's own tables (REPORT.md follows the exercise's skeleton; docs/ keeps the research log) ---

# Where each product's figures and numbers come from: one place, so that a new run (a full-size pipeline
# run, codec v2, a new classifier recipe) is a change of these paths and the report's tables follow.
PRODUCT_RUNS = {
    "autoencoder": "full/",  # outs/full/ae: full width, 24 epochs, one H200 (experiments/gpu/run.sh report)
    "classifier_grid": "full/",  # outs/full/grid: the label-efficiency grid, 2 seeds, same GPU job
    "classifier": "cpu_full/",  # outs/cpu_full/{finetune,scratch}: the previous recipe (clf_sgd.yaml), 20 epochs, CPU
}
CODEC = {  # the codec the report describes (v1): its two families and the files behind them
    "low": "full/",  # the λ sweep from the AE (latent 48x8x8, factorized prior), GPU-trained: every test/val image
    "high": "codec_ctx/",  # skip latent + rounded-latent decoder + checkerboard context, refined: 1,000-image subsets
    "high_plain": "codec_ctx/plain/",  # the same models and images without refinement
    "bootstrap": "codec_ctx/floor_bootstrap.json",
    "lineage": {  # the training runs behind the high-rate family's λ = 0.015 codec, in order
        "skip latent, from scratch, λ = 0.04 (decoder on noise)": "codec_skip/lambda0.04.json",
        "rounded-latent decoder, λ = 0.015 (from the run above)": "codec_skip_ste/lambda0.015.json",
        "λ = 0.015 continued (lr 4e-4)": "codec_skip_long/lambda0.015.json",
        "λ = 0.015 continued again (lr 3e-4)": "codec_skip_long/lambda0.015-more.json",
        "λ = 0.015 continued a third time (lr 3e-4)": "codec_skip_long/lambda0.015-more2.json",
    },
}


CODEC_V2 = "codec_v2/"  # the shipped v2 codec (models/codec-v2, full.yaml): history, config and rd/
CODEC_V2_GPU = "codec_v2/base/"  # the model it continued (full_long.yaml, GPU): the same files, and base/
CODEC_V2_CPU = "codec_v2_cpu/"  # the half-width CPU chain's last model (cpu_long.yaml), shipped before it
CODEC_V2_CONTEXT = "codec_v2_context/"  # the model that one continued (cpu_context.yaml): the same files
CODEC_V2_BASE = "codec_v2_base/"  # the model that one fine-tuned (no context, six levels): the same files


def model_note(description: str) -> str:
    """ "" when ``description`` (a codec's describe(), kept in its outs file) names the shipped model; else a note
    naming the earlier model the figures are of (the CPU model, the context fine-tune, the base, or an id), until
    they are measured again."""
    shipped = json.loads((REPO / "models" / "codec-v2" / "model.json").read_text())["model_id"]
    if shipped in description:
        return ""
    model_id = re.search(r"model id (\w+)", description)
    earlier_models = (
        (CODEC_V2_GPU, "the GPU model before its eleventh level"),
        (CODEC_V2_CPU, "the half-width CPU model"),
        (CODEC_V2_CONTEXT, "the context fine-tune"),
        (CODEC_V2_BASE, "the base model"),
    )
    for folder, name in earlier_models:
        earlier = load(f"{folder}rd/rd.json")
        if model_id and earlier is not None and model_id[1] in earlier["model"]:
            return f" (measured on {name}, `outs/{folder}`)"
    return f" (measured on an earlier model{f', {model_id[1]}' if model_id else ''})"


CODEC_V2_FLOORS = {"psnr_at_2bpp": 34.5, "span_bpp": (0.5, 3.0)}  # the issue's (at 1 bpp: AVIF's payload curve)


def codec_v2_points(split: str = "test") -> str | None:
    """The shipped v2 codec at each quality level, and the references' curves, on the RD subset."""
    r = load(f"{CODEC_V2}rd/rd.json")
    if r is None:
        return None
    curves = r["splits"][split]["curves"]
    rows = [[f"CAE v2 q{p['level']} (λ = {p['rd_lambda']:g})", p["bpp"], p["psnr"], p["ssim"],
             f"{p['encode_img_per_s']:.0f}", f"{p['decode_img_per_s']:.0f}"] for p in curves["cae"]]  # fmt: skip
    avif = ", ".join(f"q{p['quality']} {p['bpp']:.2f} bpp {p['psnr']:.1f} dB" for p in curves["avif_payload"])
    header = ["coder", "bpp", "PSNR (dB)", "SSIM", "encode img/s", "decode img/s"]
    n = r["splits"][split]["num_images"]
    return md_table(header, rows) + f"\n\nAVIF payload on the same {n} stratified test images: {avif}."


def codec_v2_comparisons(split: str = "test") -> str | None:
    """Our whole files against each reference: PSNR gaps at equal bpp and BD-rate, with 95% bootstrap intervals."""
    r = load(f"{CODEC_V2}rd/rd.json")
    if r is None:
        return None
    comps = r["splits"][split]["comparisons"]
    keys = ["gap_db@0.5bpp", "gap_db@1bpp", "gap_db@2bpp", "gap_db@3bpp", "bd_rate_pct"]
    names = {"avif_payload": "AVIF payload only", "avif_file": "AVIF whole file", "webp": "WebP",
             "jpeg_scan": "JPEG scan data only"}  # fmt: skip
    rows = [[names[k], *(gap_cell(comps[k][key]) for key in keys)] for k in names]
    header = ["ours (whole files) vs", "ΔPSNR @0.5 bpp", "@1 bpp", "@2 bpp", "@3 bpp", "BD-rate (%)"]
    return md_table(header, rows)


def codec_v2_floors(split: str = "test") -> str | None:
    r = load(f"{CODEC_V2}rd/rd.json")
    if r is None:
        return None
    curves, comps = r["splits"][split]["curves"], r["splits"][split]["comparisons"]
    at1 = comps["avif_payload"]["gap_db@1bpp"]["value"]
    at2 = interpolate(curves["cae"], 2.0)
    avif2 = interpolate(curves["avif_payload"], 2.0)
    floor2 = CODEC_V2_FLOORS["psnr_at_2bpp"]
    (low, high), bpps = CODEC_V2_FLOORS["span_bpp"], [p["bpp"] for p in curves["cae"]]
    rows = [
        [f"levels span {low}–{high} bpp", f"{min(bpps):.2f}–{max(bpps):.2f} bpp",
         "pass" if min(bpps) <= low and max(bpps) >= high else "FAIL"],
        ["1 bpp: PSNR ≥ AVIF payload's", "-" if at1 is None else f"{at1:+.2f} dB",
         "pass" if at1 is not None and at1 >= 0 else "FAIL"],
        [f"2 bpp: PSNR ≥ {floor2} dB", cell(at2), "pass" if at2 is not None and at2 >= floor2 else "FAIL"],
        ["2 bpp: gap to AVIF payload (the aim)", "-" if None in (at2, avif2) else f"{at2 - avif2:+.2f} dB", "-"],
    ]  # fmt: skip
    return md_table(["floor (no refinement)", "measured", "result"], rows)


def gap_cell(v: dict) -> str:
    """A comparison's value with its 95% bootstrap interval."""
    if v["value"] is None:
        return "outside a curve"
    ci = v["ci95"]
    return f"{v['value']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def codec_v2_refinement(split: str = "test") -> str | None:
    """The shipped codec plain and with encoder-side refinement, level by level, and refinement's paired gain."""
    r = load("codec_v2_refine/rd.json")
    if r is None:
        return None
    curves, comps = r["splits"][split]["curves"], r["splits"][split]["comparisons"]
    rows = [[f"q{a['level']}", f"{a['bpp']:.3f}", f"{a['psnr']:.2f}", f"{b['bpp']:.3f}", f"{b['psnr']:.2f}",
             f"{round(b['psnr'] - a['psnr'], 2) + 0.0:+.2f}",
             f"{a['encode_img_per_s']:.0f} → {b['encode_img_per_s']:.1f}"]
            for a, b in zip(curves["cae"], curves["cae_refined"])]  # fmt: skip
    header = ["level", "plain bpp", "plain PSNR (dB)", "refined bpp", "refined PSNR (dB)", "ΔPSNR (dB)", "encode img/s"]
    gain, avif = comps["refined_vs_plain"], comps["refined_vs_avif_payload"]
    n, steps = r["splits"][split]["num_images"], r["refinement"]["steps"]
    return md_table(header, rows) + (
        f"\n\n{steps} refinement steps per image, {n} stratified test images{model_note(r['model'])}. Refined against "
        f"plain: ΔPSNR at 2 bpp "
        f"{gap_cell(gain['gap_db@2bpp'])} dB, BD-rate {gap_cell(gain['bd_rate_pct'])}%. Refined against AVIF's "
        f"payload: ΔPSNR at 2 bpp {gap_cell(avif['gap_db@2bpp'])} dB, BD-rate {gap_cell(avif['bd_rate_pct'])}%."
    )


def level_changes(before: str, after: str, names: tuple[str, str], split: str = "test") -> str | None:
    """Two models' RD evaluations (outs folders) level by level, matched by λ, on the same images, and the
    BD-rate of ``after`` against ``before``."""
    old_r, new_r = load(f"{before}rd/rd.json"), load(f"{after}rd/rd.json")
    if old_r is None or new_r is None:
        return None
    old, new = (r["splits"][split]["curves"]["cae"] for r in (old_r, new_r))
    by_lambda = {p["rd_lambda"]: p for p in old}
    rows = []
    for p in new:
        b = by_lambda.get(p["rd_lambda"])
        rows.append([f"{p['rd_lambda']:g}", *(["-", "-"] if b is None else [f"{b['bpp']:.3f}", f"{b['psnr']:.2f}"]),
                     f"{p['bpp']:.3f}", f"{p['psnr']:.2f}",
                     "new" if b is None else f"{round(100 * (p['bpp'] / b['bpp'] - 1), 1) + 0.0:+.1f}%",
                     "-" if b is None else f"{round(p['psnr'] - b['psnr'], 2) + 0.0:+.2f}"])  # fmt: skip
    header = ["λ", f"{names[0]} bpp", f"{names[0]} PSNR (dB)", f"{names[1]} bpp", f"{names[1]} PSNR (dB)",
              "rate change", "ΔPSNR (dB)"]  # fmt: skip
    return md_table(header, rows) + (
        f"\n\nBD-rate, {names[1]} against {names[0]}: {bd_rate(new, old):+.1f}% "
        f"({new_r['splits'][split]['num_images']} test images, whole files)."
    )


codec_v2_context = partial(level_changes, CODEC_V2_BASE, CODEC_V2_CONTEXT, ("base", "fine-tuned"))
codec_v2_longer = partial(level_changes, CODEC_V2_CONTEXT, CODEC_V2_CPU, ("fine-tuned", "8 epochs more"))
codec_v2_gpu = partial(level_changes, CODEC_V2_CPU, CODEC_V2_GPU, ("CPU, half width", "GPU, full width"))
codec_v2_top = partial(level_changes, CODEC_V2_GPU, CODEC_V2, ("GPU", "shipped"))


PARITY_FLOORS = {10: 90.4, 20: 91.3}  # issue #28: airbench94's own test accuracy on this data, at <= these epochs
OBJECTIVES = "objectives/grid.json"  # experiments/report/objectives.sh: the grid per pretraining objective


def parity_accuracies(folder: str = "clf_parity") -> tuple[dict, dict]:
    """Test accuracy (%) by (epochs, seed): this engine's parity runs (outs/clf_parity, or a folder of runs that
    measured one piece of the recipe) and airbench94's (outs/airbench_ref, its TTA level 2, the accuracy it reports)."""
    ours, refs = {}, {}
    for f in (OUTS / folder).glob("e*_s*.json"):
        if not f.stem.endswith("history"):
            epochs, seed = (int(v) for v in f.stem[1:].split("_s"))
            ours[epochs, seed] = 100 * json.loads(f.read_text())["test"]["accuracy"]
    for f in (OUTS / "airbench_ref").glob("e*_s*.json"):
        r = json.loads(f.read_text())
        refs[round(r["epochs"]), r["seed"]] = 100 * r["test_accuracy"]["tta2"]
    return ours, refs


def mean_at(acc: dict, epochs: int) -> tuple[float | None, int]:
    """(mean over seeds, number of seeds) of the runs at ``epochs``."""
    vals = [v for (e, _), v in acc.items() if e == epochs]
    return (sum(vals) / len(vals) if vals else None), len(vals)


def clf_parity() -> str | None:
    """The classifier recipe (clf_10ep.yaml / airbench_net.yaml) against airbench94, same data, epochs and seeds:
    one row per epoch budget."""
    ours, refs = parity_accuracies()
    if not ours:
        return None
    rows = []
    for epochs in sorted({e for e, _ in ours}):
        seeds = sorted(s for e, s in ours if e == epochs)
        mean, n = mean_at(ours, epochs)
        ref = [refs[epochs, s] for s in seeds if (epochs, s) in refs]
        floor = PARITY_FLOORS[epochs]
        rows.append([
            epochs, " / ".join(str(s) for s in seeds), " / ".join(f"{ours[epochs, s]:.2f}" for s in seeds),
            f"**{mean:.2f}**", " / ".join(f"{v:.2f}" for v in ref) or "-", cell(sum(ref) / len(ref) if ref else None),
            f"{floor} → {'pass' if mean >= floor and n >= 2 else 'FAIL'}",
        ])  # fmt: skip
    return md_table(
        ["epochs", "seeds", "this engine, test acc (%)", "mean", "airbench94, test acc (%)", "mean", "floor (mean)"],
        rows,
    )


def photos() -> str | None:
    """Held-out photos through the shipped codec, as one sentence: sizes, its rate range, BD-rates per reference."""
    r = load("photos/photos.json")
    if r is None:
        return None
    ps = r["photos"]
    low = min(p["curves"]["cae"][0]["bpp"] for p in ps)
    high = max(p["curves"]["cae"][-1]["bpp"] for p in ps)
    sizes = ", ".join(f"{p['photo']} {p['width']}×{p['height']}" for p in ps)
    names = {"avif": "AVIF", "webp": "WebP", "jpeg": "JPEG"}
    rates = "; ".join(
        f"{n} {r['mean_bd_rate_pct'][k]:+.0f}% (per photo {min(p['bd_rate_pct'][k] for p in ps):+.0f} to "
        f"{max(p['bd_rate_pct'][k] for p in ps):+.0f}%)"
        for k, n in names.items()
    )
    return (
        f"Photos: {sizes}. Ours{model_note(r['model'])} spans {low:.2f}–{high:.2f} bpp on them. Mean BD-rate "
        f"against {rates}."
    )


def codec_v2_training() -> str | None:
    """The codec's trainings, epoch by epoch, as one sentence each (validation at each one's middle level): on a
    CPU, the base from scratch (cpu.yaml), the fine-tune that added the context (cpu_context.yaml) and its
    continuation (cpu_long.yaml); on a GPU, the shipped model's first two steps (full_base.yaml, then
    full_long.yaml), and on a CPU its last (full.yaml: an eleventh level)."""
    folders = (CODEC_V2_BASE, CODEC_V2_CONTEXT, CODEC_V2_CPU, f"{CODEC_V2_GPU}base/", CODEC_V2_GPU, CODEC_V2)
    runs = [(load(f"{folder}history.json"), load(f"{folder}config.yaml")) for folder in folders]
    if any(h is None or c is None for h, c in runs):
        return None
    sentences = []
    names = ("CPU, half width: the base, from scratch (`codec/cpu.yaml`)", "The fine-tune (`codec/cpu_context.yaml`)",
             "Its continuation (`codec/cpu_long.yaml`)",
             "One H200 GPU, full width: the shipped model from scratch (`codec/full_base.yaml`)",
             "Its continuation at batch 128 (`codec/full_long.yaml`)",
             "Its eleventh level, on the CPU (`codec/full.yaml`)")  # fmt: skip
    for (h, c), what in zip(runs, names):
        lambdas = c["rd_lambdas"]
        shown = h if len(h) <= 8 else [*h[:3], None, *h[-3:]]  # a long run: its first and last epochs
        psnr = " → ".join("…" if r is None else f"{r['val_psnr']:.2f}" for r in shown)
        bpp = " → ".join("…" if r is None else f"{r['val_bpp_estimate']:.2f}" for r in shown)
        minutes = sum(r["epoch_time_s"] for r in h) / 60
        sentences.append(
            f"{what}: validation PSNR at its middle level (λ = {lambdas[(len(lambdas) - 1) // 2]:g}) {psnr} dB over "
            f"{len(h)} epoch{'s' * (len(h) > 1)}, at an estimated {bpp} bpp ({minutes:.0f} min)."
        )
    return " ".join(sentences)


def cell(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def recipe_hyperparameters() -> str | None:
    """The settings of the runs the report shows: the AE, the GPU grid's fine-tune, the previous classifier recipe
    (its 20-epoch CPU run) and the shipped one (clf.yaml on airbench's layout, its 10-epoch parity run)."""
    ae = load(f"{PRODUCT_RUNS['autoencoder']}ae/config.yaml")
    grid_cfg = load(f"{PRODUCT_RUNS['classifier_grid']}grid/config_finetune.yaml")
    clf = load(f"{PRODUCT_RUNS['classifier']}finetune/config.yaml")
    parity = load("clf_parity/e10_s0-config.yaml")
    if None in (ae, grid_cfg, clf):
        return None
    # latent_channels (12) and label_smoothing (0.2) are the same in every column; the text gives them
    keys = ["arch", "widths", "epochs", "val_size", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
            "warmup_epochs", "lookahead_every", "logit_scale", "crop_pad", "norm_bias_lr_mult",
            "tta_shift"]  # fmt: skip
    header = ["key", "autoencoder (GPU)", "classifier fine-tune, GPU grid", "classifier, previous recipe (CPU)"]
    configs = [ae, grid_cfg, clf]
    if parity is not None:
        header.append("classifier, shipped `clf.yaml` (10-epoch parity run)")
        configs.append(parity)
    return md_table(header, [[k, *(c.get(k, "-") for c in configs)] for k in keys])


def grid_rows(prefix: str, path: str = "grid/grid.json") -> dict | None:
    """(mode, label fraction) -> the grid's rows (one per seed)."""
    g = load(f"{prefix}{path}")
    if g is None:
        return None
    out: dict = {}
    for r in g["rows"]:
        out.setdefault((r["mode"], r["label_fraction"]), []).append(r)
    return out


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def label_efficiency() -> str | None:
    """Test accuracy and calibration per mode and label fraction (GPU grid), fine-tune − scratch."""
    rows = grid_rows(PRODUCT_RUNS["classifier_grid"])
    if rows is None:
        return None
    out = []
    for f in sorted({f for _, f in rows}):
        acc = {m: 100 * mean(r["test_accuracy"] for r in rows[(m, f)]) for m in ("finetune", "scratch", "linear")}
        ece = {m: mean(r["test_ece"] for r in rows[(m, f)]) for m in ("finetune", "scratch")}
        seeds = "/".join(str(len(rows[(m, f)])) for m in ("finetune", "scratch", "linear"))
        out.append([f"{f:.0%}", seeds, acc["finetune"], acc["scratch"], acc["linear"],
                    f"{acc['finetune'] - acc['scratch']:+.2f}", ece["finetune"], ece["scratch"]])  # fmt: skip
    header = ["labels", "seeds (ft/sc/lin)", "fine-tune acc (%)", "scratch acc (%)", "linear probe acc (%)"]
    return md_table([*header, "fine-tune − scratch (points)", "ECE fine-tune", "ECE scratch"], out)


def clf_curves(epochs=(1, 5, 10, 15, 20)) -> str | None:
    """Validation accuracy by epoch at 100% labels, fine-tune against scratch, mean of the grid's seeds (a sentence)."""
    h = {}
    for mode in ("finetune", "scratch"):
        runs = sorted((OUTS / f"{PRODUCT_RUNS['classifier_grid']}grid/histories").glob(f"{mode}-f1-s*.json"))
        if not runs:
            return None
        h[mode] = [json.loads(p.read_text()) for p in runs]
    points = []
    for e in epochs:
        ft, sc = (mean(100 * r[e - 1]["val_acc"] for r in h[m]) for m in ("finetune", "scratch"))
        points.append(f"epoch {e}: {ft:.1f} against {sc:.1f}% ({ft - sc:+.1f})")
    last = {m: mean(r[-1]["train_loss"] for r in h[m]) for m in h}
    return (
        f"Validation accuracy, fine-tune against scratch: {'; '.join(points)}. Final training loss "
        f"{last['finetune']:.3f} against {last['scratch']:.3f}."
    )


def codec_points(split: str = "test") -> str | None:
    """Every point of the codec's two families on one split, against WebP at the same whole-file bpp."""
    low, high, plain = (
        load(f"{CODEC['low']}rd/rd.json"),
        load(f"{CODEC['high']}rd/rd.json"),
        load(f"{CODEC['high_plain']}rd.json"),
    )
    if None in (low, high, plain):
        return None
    rows = []
    families = (("low rate, every image (GPU-trained)", low), ("high rate, unrefined, 1,000 images", plain),
                ("high rate, refined, 1,000 images", high))  # fmt: skip
    for family, r in families:
        curves = r["points"][split]
        for p in sorted(curves["cae"], key=lambda p: p["bpp"]):
            webp = interpolate(curves["webp"], p["bpp"])
            rows.append([family, point_name(p), p["bpp"], p["psnr"], p["ssim"], cell(webp),
                         "-" if webp is None else f"{p['psnr'] - webp:+.2f}", p["encode_img_per_s"],
                         p["decode_img_per_s"]])  # fmt: skip
    header = ["family", "ours", "bpp (whole file)", "PSNR (dB)", "SSIM", "WebP PSNR at that bpp", "gain (dB)"]
    return md_table([*header, "encode img/s", "decode img/s"], rows)


def codec_floors() -> str | None:
    """The codec's floors, each read on the family whose curve spans it; the 2-bpp one with its bootstrap interval."""
    low, high, boot = load(f"{CODEC['low']}rd/rd.json"), load(f"{CODEC['high']}rd/rd.json"), load(CODEC["bootstrap"])
    if None in (low, high, boot):
        return None
    rows = []
    for split in ("test", "val"):
        for name, r, images in (("vs_webp@1bpp", low, "all"), ("vs_jpeg_scan_only@1bpp", low, "all"),
                                ("vs_webp@2bpp", high, "1,000")):  # fmt: skip
            f = r["floors"][split][name]
            ref = next(v for k, v in f.items() if k.endswith("_psnr") and not k.startswith("cae"))
            ci = boot["splits"][split]["ci95_db"] if name.endswith("2bpp") else None
            ci = "-" if ci is None else f"{ci[0]:+.2f} to {ci[1]:+.2f}"
            rows.append([SPLIT_NAMES[split], name, images, f["cae_psnr"], ref, f"{f['gain_db']:+.2f}", ci,
                         "pass" if f["pass"] else "FAIL"])  # fmt: skip
    header = ["split", "floor (ours vs reference at the rate)", "images", "ours PSNR (dB)", "reference PSNR (dB)"]
    return md_table([*header, "gain (dB)", "95% bootstrap interval", "result"], rows)


def codec_lineage() -> str | None:
    rows = []
    for label, path in CODEC["lineage"].items():
        h = load(path)
        if h is None:
            return None
        best = max(h, key=lambda r: r["val_psnr"])
        rows.append([label, len(h), best["val_psnr"], best["val_bpp_estimate"], sum(r["epoch_time_s"] for r in h) / 60])
    ctx = load(f"{CODEC['high']}context_fit_lambda0.015.json")
    if ctx is None:
        return None
    rows.append([f"checkerboard context model fitted to it ({ctx['epochs']} epochs, transforms frozen)", ctx["epochs"],
                 "unchanged", ctx["bpp_after"], ctx["seconds"] / 60])  # fmt: skip
    header = ["run (CPU)", "epochs", "best val PSNR (dB, pooled, coded latents)", "its estimated bpp", "minutes"]
    return md_table(header, rows)


def generalisation_gaps() -> str | None:
    """Each product on the data it trained on (where measured), validation and test: the report run, and the
    full-size GPU runs."""
    ae, run_ae = load(f"{PRODUCT_RUNS['autoencoder']}ae/metrics.json"), load(f"{RUN['autoencoder']}metrics.json")
    run_clf = load(f"{RUN['classifier']}metrics.json")
    grid_r = grid_rows(PRODUCT_RUNS["classifier_grid"])
    low = load(f"{CODEC['low']}rd/rd.json")
    if None in (ae, grid_r, low):
        return None
    splits = ("train", "val", "test")
    rows = [["autoencoder (GPU)", "PSNR, pooled (dB)", *(ae[s]["psnr_dataset"] for s in splits)]]
    if run_ae is not None:
        rows.append(["autoencoder (report run)", "PSNR, pooled (dB)", *(run_ae[s]["psnr_dataset"] for s in splits)])
    for mode in ("finetune", "scratch"):
        r = grid_r[(mode, 1.0)]
        val, test = (100 * mean(x[k] for x in r) for k in ("best_val_accuracy", "test_accuracy"))
        rows.append([f"classifier {mode}, 100% labels (GPU grid)", "accuracy (%), best epoch on val", "-", val, test])
    if run_clf is not None:
        rows.append(["classifier finetune, 100% labels (report run)", "accuracy (%), last epoch",
                     *(100 * run_clf[s]["accuracy"] if s in run_clf else "-" for s in splits)])  # fmt: skip
    rows.append(["codec v1, low rate (GPU)", "PSNR at 1 bpp (dB)", "-",
                 *(low["floors"][s]["vs_webp@1bpp"]["cae_psnr"] for s in ("val", "test"))])  # fmt: skip
    return md_table(["product", "metric", "train", "validation", "test"], rows)


def shift_compact(path: str = "shift/shift.json") -> str | None:
    s = load(path)
    if s is None:
        return None
    rows = [["none (clean)", "-", cell(s["clean"]["psnr"], 1), cell(100 * s["clean"]["accuracy"], 1)]]
    for kind, levels in s["shifts"].items():
        rows.append([kind, " / ".join(f"{r['level']:g}" for r in levels),
                     " / ".join(cell(r["psnr"], 1) for r in levels),
                     " / ".join(cell(100 * r["accuracy"], 1) for r in levels)])  # fmt: skip
    return md_table(["shift", "levels", "AE PSNR against its shifted input (dB)", "classifier accuracy (%)"], rows)


PARITY_PYTORCH_BN = "clf_parity/pytorch_bn"  # the parity runs before airbench's BatchNorm settings and bias decay


def parity_design_rows(before: str) -> list[list[str]]:
    """Design-loop rows of issue #28's recipe, once its parity runs exist."""
    mean, n = mean_at(parity_accuracies()[0], 10)
    if mean is None:
        return []
    first, first_n = mean_at(parity_accuracies(PARITY_PYTORCH_BN)[0], 10)
    rows = [["classifier", "airbench94's recipe and layout (`clf.yaml`, `clf_10ep.yaml`: whitening stem, refit on all "
             "50,000 images, Lookahead, its schedule and flips), scratch, 20 → 10 epochs (CPU)",
             f"test acc {before}% → {first:.2f}% (mean of {first_n} seeds)",
             f"`outs/cpu_full/scratch/metrics.json` → `outs/{PARITY_PYTORCH_BN}/`"]]  # fmt: skip
    rows.append(["classifier", "+ airbench's BatchNorm (momentum 0.4, eps 1e-12) and weight decay on every bias "
                 "(`bn_momentum`, `bn_eps`, `decay_biases`), 10 epochs (CPU)",
                 f"test acc {first:.2f}% → {mean:.2f}% (mean of {n} seeds)",
                 f"`outs/{PARITY_PYTORCH_BN}/` → `outs/clf_parity/`"])  # fmt: skip
    return rows


def design_loop() -> str | None:
    """The iterations that changed the shipped recipe: what changed, measured before -> after, the files."""
    try:
        ae0, ae1 = load("ae/metrics.json")["test"], load("full/ae/metrics.json")["test"]
        neck = {round(48 / r["compression_ratio"]): r for r in load("bottleneck/ablations.json")["rows"]}
        cpu_grid, gpu_grid = load("grid/grid.json")["summary"], load("full/grid/grid.json")["summary"]
        budget = {k: load(f"full/budget/{k}-e10.json")[-1]["val_acc"] for k in ("scratch", "finetune")}
        e20 = {k: load(f"full/grid/histories/{k}-f1-s0.json")[-1]["val_acc"] for k in ("scratch", "finetune")}
        pad = {k: load(f"recipe/{k}.json")[-1]["val_acc"] for k in ("base", "crop_pad-2")}
        airb = {k: load(f"cpu_full/{k}/metrics.json")["test"]["accuracy"] for k in ("scratch", "finetune")}
        low = load("full/rd/rd.json")["floors"]["test"]["vs_webp@1bpp"]
        wide = max(r["val_psnr"] for r in load("full/codec_wide/lambda0.3.json"))
        skip = max(load("codec_skip/lambda0.04.json"), key=lambda r: r["val_psnr"])
        qg = {r["rd_lambda"]: r for k, r in load("codec_skip_ste/quant_gap.json")["runs"].items() if "noise" in k}
        ste = next(r for k, r in load("codec_skip_ste/quant_gap.json")["runs"].items()
                   if "skip_ste" in k and r["rd_lambda"] == 0.04)  # fmt: skip
        gain = {p: load(f"{p}/rd.json")["floors"]["test"]["vs_webp@2bpp"]["gain_db"]
                for p in ("codec_refine/plain", "codec_refine/rd", "codec_long3/rd", "codec_ctx/rd")}  # fmt: skip
        streams = {k: load(f"{CODEC_V2_BASE}rd/{k}.json")["splits"]["test"] for k in ("rd_format2", "rd")}
        # the base, its first fine-tune (nine levels, 2 epochs), the second (ten levels, 4 epochs), its continuation,
        # the GPU one, the shipped one (its eleventh level)
        v2 = [streams["rd"], *(load(f"{CODEC_V2_CONTEXT}rd/{k}.json")["splits"]["test"] for k in ("rd_9levels", "rd")),
              *(load(f"{f}rd/rd.json")["splits"]["test"] for f in (CODEC_V2_CPU, CODEC_V2_GPU, CODEC_V2))]  # fmt: skip
    except (TypeError, KeyError, StopIteration):
        return None
    ctl = qg[0.04]
    bd_avif = [streams[k]["comparisons"]["avif_payload"]["bd_rate_pct"]["value"] for k in ("rd_format2", "rd")]
    low_bpp = [streams[k]["curves"]["cae"][0]["bpp"] for k in ("rd_format2", "rd")]
    v2_bd = [t["comparisons"]["avif_payload"]["bd_rate_pct"]["value"] for t in v2]
    v2_at2 = [interpolate(t["curves"]["cae"], 2.0) for t in v2]
    v2_span = [f"{t['curves']['cae'][0]['bpp']:.2f}–{t['curves']['cae'][-1]['bpp']:.2f}" for t in v2]
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    psnr = {
        k: f"{m['psnr_dataset']:.2f}" for k, m in (("cpu", ae0), ("gpu", ae1), *((c, neck[c]) for c in (3, 12, 24)))
    }
    acc = {(m, "shipped"): f"{100 * v:.2f}" for m, v in airb.items()}
    for d, g in (("cpu", cpu_grid), ("gpu", gpu_grid)):
        acc |= {(m, d): f"{100 * g[m]['1.0']['mean']:.2f}" for m in ("scratch", "finetune")}
    rows = [
        ["autoencoder", "half width, 8 epochs (CPU) → full width `[32, 64, 256, 256]`, 24 epochs (GPU)",
         f"test PSNR {psnr['cpu']} → {psnr['gpu']} dB, SSIM {ae0['ssim']:.3f} → {ae1['ssim']:.3f}",
         "`outs/ae/metrics.json` → `outs/full/ae/metrics.json`"],
        ["autoencoder", "bottleneck kept at 12×8×8 (4×), not 3×8×8 (16×); 6 and 24 channels equal (CPU, 2 epochs)",
         f"test PSNR {psnr[3]} → {psnr[12]} dB (24 ch: {psnr[24]})",
         "`outs/bottleneck/ablations.json`"],
        ["classifier", "ResNet-9 recipe (lr 0.4, logits × 1/8, 4-epoch warm-up), full width, 20 epochs (GPU) vs "
         "half width, lr 0.02, 3 epochs (CPU)",
         f"scratch, 100% labels: {acc['scratch', 'cpu']} → {acc['scratch', 'gpu']}% test",
         "`outs/grid/grid.json` → `outs/full/grid/grid.json`"],
        ["classifier", "budget 10 → 20 epochs (GPU, 100% labels)",
         f"val acc scratch {pct(budget['scratch'])} → {pct(e20['scratch'])}, "
         f"fine-tune {pct(budget['finetune'])} → {pct(e20['finetune'])}",
         "`outs/full/budget/`, `outs/full/grid/histories/`"],
        ["classifier", "crop padding 4 → 2 pixels (CPU, half width, 5 epochs)",
         f"val acc {pct(pad['base'])} → {pct(pad['crop_pad-2'])}", "`outs/recipe/`"],
        ["classifier", "+ BatchNorm biases at 64× lr, 1-pixel shift TTA (airbench's; full width, 20 epochs, CPU)",
         f"test acc scratch {acc['scratch', 'gpu']} → {acc['scratch', 'shipped']}%, "
         f"fine-tune {acc['finetune', 'gpu']} → {acc['finetune', 'shipped']}% (kept: level, and airbench's)",
         "`outs/full/grid/grid.json` → `outs/cpu_full/*/metrics.json`"],
        *parity_design_rows(acc["scratch", "shipped"]),
        ["codec", "entropy-coded bottleneck: latent 48×8×8, factorized prior, λ sweep, 10 epochs from the AE (GPU)",
         f"at 1 bpp: {low['cae_psnr']:.2f} dB vs WebP {low['webp_psnr']:.2f} ({low['gain_db']:+.2f} dB)",
         "`outs/full/rd/rd.json`"],
        ["codec", "16 channels of block 1's 16×16 features coded beside the latent (skip latent), from scratch (CPU)",
         f"best val PSNR {wide:.2f} dB (wide decoder, λ = 0.3, GPU) → {skip['val_psnr']:.2f} dB at "
         f"{skip['val_bpp_estimate']:.2f} bpp",
         "`outs/full/codec_wide/` → `outs/codec_skip/`"],
        ["codec", "decoder trained on the coded (rounded) latents instead of noisy ones, 2 epochs each (CPU, λ = 0.04)",
         f"coded-latent PSNR {ctl['psnr_coded']:.2f} → {ste['psnr_coded']:.2f} dB (control: decoder still on noise)",
         "`outs/codec_skip_ste/quant_gap.json`"],
        ["codec", "encoder-side refinement, 50 Adam steps per image (CPU, same images)",
         f"gain over WebP at 2 bpp {gain['codec_refine/plain']:+.2f} → {gain['codec_refine/rd']:+.2f} dB",
         "`outs/codec_refine/{plain,rd}/rd.json`"],
        ["codec", "λ = 0.015 codec trained 25 more epochs (6 + 5 + 14, CPU)",
         f"gain over WebP at 2 bpp {gain['codec_refine/rd']:+.2f} → {gain['codec_long3/rd']:+.2f} dB",
         "`outs/codec_long3/rd/rd.json`"],
        ["codec", "checkerboard context model on the frozen codecs (6 epochs, ~9 min each, CPU)",
         f"gain over WebP at 2 bpp {gain['codec_long3/rd']:+.2f} → {gain['codec_ctx/rd']:+.2f} dB",
         "`outs/codec_ctx/rd/rd.json`"],
        ["codec v2", "one rANS stream per image instead of one per entropy model (file format 2 → 3), same model",
         f"BD-rate against AVIF's payload {bd_avif[0]:+.1f} → {bd_avif[1]:+.1f}%, lowest level "
         f"{low_bpp[0]:.3f} → {low_bpp[1]:.3f} bpp",
         "`outs/codec_v2_base/rd/rd_format2.json` → `rd.json`"],
        *(["codec v2", what,
           f"BD-rate against AVIF's payload {v2_bd[i]:+.1f} → {v2_bd[i + 1]:+.1f}%, PSNR at 2 bpp "
           f"{cell(v2_at2[i])} → {cell(v2_at2[i + 1])} dB, span {v2_span[i]} → {v2_span[i + 1]} bpp", source]
          for i, (what, source) in enumerate([
              ("+ checkerboard context and three lower levels (λ down to 0.0005), fine-tuned 2 epochs (CPU)",
               "`outs/codec_v2_base/rd/rd.json` → `outs/codec_v2_context/rd/rd_9levels.json`"),
              ("the same fine-tune with a tenth level (λ = 0.00025) and 4 epochs instead of 2 (CPU)",
               "`outs/codec_v2_context/rd/rd_9levels.json` → `rd.json`"),
              ("that fine-tune continued 8 epochs (lr 3e-4, CPU)",
               "`outs/codec_v2_context/rd/rd.json` → `outs/codec_v2_cpu/rd/rd.json`"),
              ("full width (the classifier's backbone; the decoder kept near half width), from scratch on one H200 "
               "GPU: 9 epochs, then 20 at batch 128",
               "`outs/codec_v2_cpu/rd/rd.json` → `outs/codec_v2/base/rd/rd.json`"),
              ("+ an eleventh level (λ = 0.256), one epoch at lr 1e-4 (CPU)",
               "`outs/codec_v2/base/rd/rd.json` → `outs/codec_v2/rd/rd.json`")])),
    ]  # fmt: skip
    return md_table(
        ["#", "product", "what changed", "measured before → after", "source"], [[i + 1, *r] for i, r in enumerate(rows)]
    )


def parity_rows(link: str) -> list[list[str]]:
    """README rows of issue #28: the recipe against airbench94 at 10 epochs, and the pretraining objectives."""
    rows = []
    accuracies = parity_accuracies()
    for epochs in sorted(PARITY_FLOORS):
        (ours, n), (ref, n_ref) = (mean_at(acc, epochs) for acc in accuracies)
        if ours is not None and ref is not None:
            rows.append([f"classifier recipe, {epochs} epochs, CPU, {n} seeds (airbench94: {n_ref} seeds)",
                         f"{ours:.2f} % ({ref:.2f} %)", link])  # fmt: skip
    g = load(OBJECTIVES)
    if g is not None:
        s, objs = g["summary"], ("reconstruct", "masked")
        n = s["scratch"]["0.1"]["n"]
        margin = " / ".join(
            f"{100 * (s[f'finetune ({o})']['0.1']['mean'] - s['scratch']['0.1']['mean']):+.1f}" for o in objs
        )
        probe = " / ".join(f"{100 * s[f'linear ({o})']['1.0']['mean']:.1f}" for o in objs)
        rows += [
            [
                f"fine-tune − scratch at 10% labels, AE by reconstruction / masking (CPU, {n} seeds)",
                f"{margin} points",
                link,
            ],
            ["linear probe at 100% labels, AE by reconstruction / masking (CPU)", f"{probe} %", link],
        ]
    return rows


def readme_results() -> str | None:
    """The README's results at a glance: a few words and a number per row, each linking to its REPORT section."""
    ae, grid_file = (
        load(f"{PRODUCT_RUNS['autoencoder']}ae/metrics.json"),
        load(f"{PRODUCT_RUNS['classifier_grid']}grid/grid.json"),
    )
    rd, ctx, gpu = load(f"{CODEC['low']}rd/rd.json"), load(f"{CODEC['high']}rd/rd.json"), load("gpu/bench.json")
    refs = [json.loads(f.read_text()) for f in sorted((OUTS / "airbench_ref").glob("e20_s*.json"))]
    if None in (ae, grid_file, rd, ctx, gpu) or not refs:
        return None
    acc = {m: {f: 100 * v["mean"] for f, v in s.items()} for m, s in grid_file["summary"].items()}
    ref = sum(100 * r["test_accuracy"]["tta2"] for r in refs) / len(refs)
    at1, at2 = rd["floors"]["test"]["vs_webp@1bpp"], ctx["floors"]["test"]["vs_webp@2bpp"]
    v2 = load(f"{CODEC_V2}rd/rd.json")
    ratio = {r["row"]: r["ratio"] for r in gpu["rows"]}
    section = {  # REPORT.md's headings (GitHub anchors), and the research log for the speed figures
        "ae": "[Evaluation](REPORT.md#evaluation)",
        "clf": "[Questions](REPORT.md#which-are-the-differences-you-found-between-previous-model-and-this-one)",
        "codec": "[Evaluation](REPORT.md#evaluation)",
        "speed": "[pipeline log](docs/pipeline-log.md#10-performance)",
    }
    if v2 is None:  # the v1 codec's numbers until the shipped v2 codec is measured
        codec_rows = [
            ["codec at 1 bpp, test, whole files", f"{at1['cae_psnr']:.2f} dB (WebP {at1['webp_psnr']:.2f})"],
            ["codec at 2 bpp, refined, context model, 1,000 test images",
             f"{at2['cae_psnr']:.2f} dB (WebP {at2['webp_psnr']:.2f})"],
        ]  # fmt: skip
    else:
        t = v2["splits"]["test"]
        ours, avif = t["curves"]["cae"], t["curves"]["avif_payload"]
        bd = t["comparisons"]["avif_payload"]["bd_rate_pct"]["value"]
        n = f"{t['num_images']:,} test images"
        codec_rows = [
            [f"shipped codec v2 (GPU-trained) at 1 / 2 bpp, whole files, {n}",
             f"{cell(interpolate(ours, 1.0))} / {cell(interpolate(ours, 2.0))} dB (AVIF payload "
             f"{cell(interpolate(avif, 1.0))} / {cell(interpolate(avif, 2.0))})"],
            ["its BD-rate against AVIF's payload", "-" if bd is None else f"{bd:+.1f} %"],
        ]  # fmt: skip
        refined = load("codec_v2_refine/rd.json")
        if refined is not None:
            t = refined["splits"]["test"]
            gain = t["comparisons"]["refined_vs_plain"]["bd_rate_pct"]["value"]
            codec_rows.append(
                [f"encoder-side refinement ({refined['refinement']['steps']} steps), BD-rate vs plain, "
                 f"{t['num_images']} test images{model_note(refined['model'])}",
                 "-" if gain is None else f"{gain:+.1f} %"]
            )  # fmt: skip
    codec_rows = [[*row, section["codec"]] for row in codec_rows]
    rows = [
        [
            "AE reconstruction, test, GPU",
            f"{ae['test']['psnr_dataset']:.2f} dB, SSIM {ae['test']['ssim']:.3f}",
            section["ae"],
        ],
        [
            "classifier, 20 epochs, GPU: fine-tune / scratch / linear",
            f"{acc['finetune']['1.0']:.2f} / {acc['scratch']['1.0']:.2f} / {acc['linear']['1.0']:.1f} %",
            section["clf"],
        ],
        [f"airbench94 on the same data, 20 epochs, {len(refs)} seeds", f"{ref:.2f} %", section["clf"]],
        *parity_rows(section["clf"]),
        [
            "fine-tune − scratch at 10% labels",
            f"{acc['finetune']['0.1'] - acc['scratch']['0.1']:+.1f} points",
            section["clf"],
        ],
        *codec_rows,
        [
            "speed vs plain PyTorch, H200: loader / AE step / clf step",
            " / ".join(
                f"{ratio[k]:.1f}×" for k in ("data loading, crop+flip", "AE training step", "classifier training step")
            ),
            section["speed"],
        ],
    ]
    return md_table(["what", "result", "details"], rows)


# --- The report run: one pipeline run of the shipped recipes (experiments/report/run.sh, PROFILE=report) ---
# REPORT.md's evaluation figures come from it, one folder per product.
RUN = {"autoencoder": "autoencoder/", "classifier": "classifier/", "codec": "codec/"}


def run_ae_metrics() -> str | None:
    """The report run's AE on every split, and the same recipe at full size on a GPU (outs/full/ae) for scale."""
    m, full = load(f"{RUN['autoencoder']}metrics.json"), load("full/ae/metrics.json")
    if m is None:
        return None
    keys = ["mse", "mae", "psnr_mean", "psnr_dataset", "ssim", "r2", "num_images"]
    rows = [["report run (CPU)", SPLIT_NAMES[s], *(r[k] for k in keys)] for s, r in m.items()]
    if full is not None:
        rows.append(["full size (GPU)", "test", *(full["test"][k] for k in keys)])
    return md_table(["run", "split", *keys], rows)


def run_ae_history() -> str | None:
    """The report run's AE, epoch by epoch, as one sentence."""
    h = load(f"{RUN['autoencoder']}history.json")
    if h is None:
        return None
    series = {k: " → ".join(f"{r[k]:{f}}" for r in h) for k, f in (("val_psnr", ".2f"), ("train_loss", ".4f"),
                                                                    ("val_loss", ".4f"))}  # fmt: skip
    minutes = sum(r["epoch_time_s"] for r in h) / 60 / len(h)
    return (
        f"Validation PSNR {series['val_psnr']} dB over {len(h)} epochs of {minutes:.1f} min; training loss "
        f"{series['train_loss']}, validation loss {series['val_loss']}."
    )


def run_grid() -> str | None:
    """The report run's classifier grid: test accuracy per mode (rows) and label fraction (columns)."""
    cells = grid_rows(RUN["classifier"], "grid.json")
    if cells is None:
        return None
    fractions = sorted({f for _, f in cells})
    modes = [m for m in ("linear", "finetune", "scratch") if any((m, f) in cells for f in fractions)]
    acc = {k: mean(100 * r["test_accuracy"] for r in rows) for k, rows in cells.items()}  # mean over seeds
    rows = [[m, *(cell(acc.get((m, f))) for f in fractions)] for m in modes]
    return md_table(["mode", *(f"test acc (%), {f:.0%} labels" for f in fractions)], rows)


def run_clf_metrics() -> str | None:
    """The report run's fine-tuned classifier (100% labels) on each split it has, as one sentence."""
    m = load(f"{RUN['classifier']}metrics.json")
    if m is None:
        return None
    return (
        "; ".join(
            f"{SPLIT_NAMES[s]}: accuracy {100 * r['accuracy']:.2f}%, top-2 {100 * r['top2_accuracy']:.2f}%, "
            f"macro F1 {r['macro_f1']:.3f}, ECE {r['ece']:.3f} ({r['num_images']:,} images)"
            for s, r in m.items()
        )
        + "."
    )


def run_codec_summary(split: str = "test") -> str | None:
    """The report run's codec against the references, as one sentence: its range, ΔPSNR at 2 bpp, BD-rates."""
    r = load(f"{RUN['codec']}rd.json")
    if r is None:
        return None
    t = r["splits"][split]
    cae, comps = t["curves"]["cae"], t["comparisons"]
    names = {"avif_payload": "AVIF's payload", "avif_file": "whole AVIF files", "webp": "WebP", "jpeg_scan": "JPEG"}
    rates = ", ".join(f"{n} {gap_cell(comps[k]['bd_rate_pct'])}%" for k, n in names.items())
    return (
        f"{len(cae)} levels from {cae[0]['bpp']:.2f} bpp / {cae[0]['psnr']:.2f} dB to {cae[-1]['bpp']:.2f} bpp / "
        f"{cae[-1]['psnr']:.2f} dB on {t['num_images']} test images; ΔPSNR at 2 bpp against AVIF's payload "
        f"{gap_cell(comps['avif_payload']['gap_db@2bpp'])} dB; BD-rate against {rates}."
    )


def objectives() -> str | None:
    """Test accuracy per label fraction: scratch, then fine-tune and linear probe for each AE objective."""
    g = load(OBJECTIVES)
    if g is None:
        return None
    s = g["summary"]
    objs = sorted(g["objectives"], key=lambda o: (o != "reconstruct", o))  # the plain AE first
    fractions = sorted({float(f) for v in s.values() for f in v}, key=float)
    lines = ["scratch", *(f"{m} ({o})" for m in ("finetune", "linear") for o in objs)]
    rows = []
    for f in fractions:
        at = {name: s.get(name, {}).get(str(f)) for name in lines}
        seeds = max(v["n"] for v in at.values() if v)
        margins = [
            f"{100 * (at[f'finetune ({o})']['mean'] - at['scratch']['mean']):+.1f}"
            if at[f"finetune ({o})"] and at["scratch"] else "-"
            for o in objs
        ]  # fmt: skip
        rows.append([f"{f:.0%}", seeds, *(pm(at[n]) for n in lines), " / ".join(margins)])
    names = {"scratch": "scratch", **{f"{m} ({o})": f"{m.replace('finetune', 'fine-tune')}, {o}" for m in
             ("finetune", "linear") for o in objs}}  # fmt: skip
    header = ["labels", "seeds", *(f"{names[n]} (%)" for n in lines), f"fine-tune − scratch ({' / '.join(objs)})"]
    return md_table(header, rows)


def jpeg_grid() -> str | None:
    """What the JPEG block grid is worth to AVIF and to the codec: misaligned against aligned images (a sentence)."""
    g = load("codec_jpeg_grid/jpeg_grid.json")
    if g is None:
        return None
    m = g["misaligned_vs_aligned"]

    def cost(key):
        return f"{m[key]['bd_rate_pct']:+.0f}% ({m[key]['psnr_change_db@2bpp']:+.1f} dB at 2 bpp)"

    return (
        f"Measured on {g['images'].split(' of ')[0]} (`experiments/codec/jpeg_grid.py`): moving the JPEG grid off "
        f"AV1's by 4 pixels instead of 16 costs AVIF's payload {cost('padded/avif_payload')} when the images are "
        f"padded (a lower bound) and {cost('rolled/avif_payload')} when they are rolled (an upper bound: the roll's "
        f"seam lands inside AV1's blocks too), and the shipped codec{model_note(g['codec'])} {cost('rolled/codec')}."
    )


def context_probe() -> str | None:
    """Would a checkerboard context pay on the codec without one (the base): its rate saving per level (a sentence)."""
    g = load("codec_context_probe/probe.json")
    if g is None:
        return None
    levels, a = g["levels"], g["args"]
    saving = ", ".join(f"q{r['level']} {r['rate_saving_pct']:.1f}%" for r in levels)
    dpsnr = [r["context"]["psnr"] - r["hyperprior"]["psnr"] for r in levels]
    return (
        f"A checkerboard context fitted on the base codec's frozen transforms and hyperprior "
        f"(`experiments/codec/context_probe.py`: {a['epochs']} epochs on {a['train']:,} training images, "
        f"{g['minutes']:.0f} min on one core) saves, on {a['val']:,} validation images (no coder), {saving} "
        f"of the estimated bits (latent and hyper-latent), at PSNR changes of {min(dpsnr):+.2f} to "
        f"{max(dpsnr):+.2f} dB."
    )


def decoder_probe() -> str | None:
    """The shipped codec's decoder on fixed bits: the unrounded latent (the ceiling) and every level, as shipped,
    trained on alone, and widened and trained as long (experiments/codec/decoder_probe.py)."""
    g = load("codec_decoder_probe/probe.json")
    if g is None:
        return None
    variants, a = g["variants"], g["args"]
    lambdas = g["model"]["rd_lambdas"]
    names = list(variants)
    header = ["λ", *(f"{n} (dB)" for n in names)]
    rows = [[f"{lam:g}", *(f"{variants[n]['level_psnr'][i]:.2f}" for n in names)] for i, lam in enumerate(lambdas)]
    rows.append(["unrounded latent", *(f"{variants[n]['unrounded_psnr']:.2f}" for n in names)])
    rows.append(["decoder parameters", *(f"{variants[n]['params']:,}" for n in names)])
    minutes = " and ".join(f"{variants[n]['minutes']:.0f}" for n in names[1:])
    return md_table(header, rows) + (
        f"\n\nPSNR on {a['val']:,} validation images, every level's bits fixed; the decoders trained alone for "
        f"{a['steps']:,} steps of 64 on {a['train']:,} training images at lr {a['lr']:g} ({minutes} min on one core)."
    )


def analysis_blocks(
    folder: str = "codec_heads", how: str = "the shipped model trained on", blocks: int = 1
) -> str | None:
    """One recipe trained as it is and with residual analysis blocks, from the same seed: every level's real bits
    and PSNR, and the BD-rates and PSNR gaps between them (experiments/codec/heads.sh)."""
    g = load(f"{folder}/compare.json")
    runs = {arm: load(f"{folder}/history_{arm}.json") for arm in ("control", "blocks")}
    if g is None or None in runs.values():
        return None
    models = g["models"]
    header = ["level", *(f"{name} (bpp, dB)" for name in models)]
    count = len(next(iter(models.values()))["points"])
    rows = [
        [f"q{i}", *(f"{m['points'][i]['bpp']:.3f}, {m['points'][i]['psnr']:.2f}" for m in models.values())]
        for i in range(count)
    ]
    rows.append(["parameters", *(f"{m['parameters']:,}" for m in models.values())])

    def stat(s: dict, unit: str) -> str:
        lo, hi = s["ci95"]
        return f"{s['value']:+.2f}{unit} [{lo:+.2f}, {hi:+.2f}]"

    lines = []
    for pair, c in g["comparisons"].items():
        gaps = ", ".join(
            f"{stat(c[f'gap_db@{x}bpp'], ' dB')} at {x} bpp" for x in (1, 2) if c[f"gap_db@{x}bpp"]["value"]
        )
        lines.append(f"{pair}: BD-rate {stat(c['bd_rate_pct'], '%')}; {gaps}.")
    share = models["blocks"]["blocks_share"]
    lines.append(
        f"The trained blocks move the latent head's output by {100 * share['latent']:.0f}% and the skip head's by "
        f"{100 * share['skip']:.0f}% (relative norm, 500 of the images)."
    )
    epochs = {arm: len(h) for arm, h in runs.items()}
    minutes = " and ".join(f"{sum(r['epoch_time_s'] for r in h) / 60:.0f}" for h in runs.values())
    return md_table(header, rows) + (
        f"\n\nWhole files on {g['val_images']:,} stratified validation images. control and blocks: {how} for "
        f"{epochs['control']} epochs from the same seed ({minutes} min on one core each), blocks with "
        f"`analysis_blocks={blocks}`. Paired bootstrap intervals (95%):\n\n" + "\n".join(f"- {line}" for line in lines)
    )


def run_jobs() -> str | None:
    """The report run's budget as one sentence: each stage's tasks and their summed minutes (Slurm's sacct)."""
    f = OUTS / RUN["autoencoder"] / "jobs.txt"
    if not f.is_file():
        return None
    lines = [line.split("|") for line in f.read_text().splitlines() if line]
    col = {name: i for i, name in enumerate(lines[0])}
    tasks = [r for r in lines[1:] if "." not in r[col["JobID"]]]  # job steps (.batch, .0) repeat their task
    tasks.sort(key=lambda r: r[col["Start"]])  # the stages in the order they ran
    stages: dict = {}
    for r in tasks:
        h, m, sec = (int(v) for v in r[col["Elapsed"]].split("-")[-1].split(":"))
        st = stages.setdefault(r[col["JobName"]].removeprefix("cifarae-"), [0, 0.0, set()])
        st[0], st[1] = st[0] + 1, st[1] + h * 60 + m + sec / 60
        st[2].add(r[col["State"]])
    start = min(datetime.fromisoformat(r[col["Start"]]) for r in tasks)
    end = max(datetime.fromisoformat(r[col["End"]]) for r in tasks)
    parts = [f"{name} {n} task{'s' * (n > 1)}, {minutes:.0f} min" for name, (n, minutes, _) in stages.items()]
    states = sorted(set().union(*(st[2] for st in stages.values())))
    return (
        f"{'; '.join(parts)} (task minutes summed); {(end - start).total_seconds() / 60:.0f} min wall-clock on the "
        f"2-core node, every job {' / '.join(states)}."
    )


# The v1 codec's experiments, whose outs/ stay as measured (experiments/codec/README.md).
V1_CODEC = "experiments/codec/run.sh at commit cdeb663 (the v1 codec, removed since)"
V1_GPU = "experiments/gpu/run.sh collect at commit cdeb663"

TABLES = {
    "recipe_hyperparameters": (recipe_hyperparameters, "experiments/gpu/run.sh collect; experiments/classifier/run.sh"),
    "label_efficiency": (label_efficiency, "experiments/gpu/run.sh collect"),
    "clf_curves": (clf_curves, "experiments/gpu/run.sh collect"),
    "codec_points": (codec_points, V1_GPU + "; " + V1_CODEC),
    "codec_floors": (codec_floors, V1_GPU + "; " + V1_CODEC),
    "codec_lineage": (codec_lineage, V1_CODEC),
    "generalisation_gaps": (generalisation_gaps, "experiments/gpu/run.sh collect; experiments/classifier/run.sh"),
    "design_loop": (design_loop, "the run.sh of each experiments/ topic"),
    "readme_results": (
        readme_results,
        "experiments/gpu/run.sh collect; experiments/classifier/run.sh; " + V1_CODEC,
    ),
    "ae_metrics": (ae_metrics, "experiments/autoencoder/run.sh"),
    "ae_per_class": (ae_per_class, "experiments/autoencoder/run.sh"),
    "ae_history": (ae_history, "experiments/autoencoder/run.sh"),
    "hyperparameters": (hyperparameters, "experiments/autoencoder/run.sh"),
    "grid": (grid, "experiments/classifier/run.sh"),
    "grid_margin": (grid_margin, "experiments/classifier/run.sh"),
    "clf_metrics": (clf_metrics, "experiments/classifier/run.sh"),
    "ablations": (ablations, "experiments/autoencoder/run.sh"),
    "shift": (shift, "experiments/generalisation/run.sh"),
    "bottleneck": (bottleneck, "experiments/autoencoder/run.sh"),
    "bench": (bench, "make bench"),
    "bench_idle": (lambda: bench("bench_idle.json"), "bench/bench.py --only loader,ae,clf --out outs/bench_idle.json"),
    "bench_convs": (lambda: bench("bench_convs.json"), "experiments/autoencoder/run.sh"),
    "bench_codec": (
        lambda: bench("bench_codec.json"),
        "bench/bench.py --data DATA --only codec --threads 1 --out outs/bench_codec.json",
    ),
    "full_ae_metrics": (lambda: ae_metrics("full/"), "experiments/gpu/run.sh collect"),
    "full_hyperparameters": (lambda: hyperparameters("full/"), "experiments/gpu/run.sh collect"),
    "full_grid": (lambda: grid("full/"), "experiments/gpu/run.sh collect"),
    "full_grid_margin": (lambda: grid_margin("full/"), "experiments/gpu/run.sh collect"),
    "full_budget": (full_budget, "experiments/gpu/run.sh collect"),
    "full_codec_training": (full_codec_training, V1_GPU),
    "recipe": (recipe, "experiments/classifier/run.sh"),
    "cpu_recipe": (cpu_recipe, "experiments/classifier/run.sh"),
    "cpu_recipe_history": (cpu_recipe_history, "experiments/classifier/run.sh"),
    "whiten": (whiten, "experiments/classifier/run.sh"),
    "jpeg": (jpeg, "experiments/classifier/run.sh"),
    "airbench_ref": (airbench_ref, "experiments/classifier/run.sh"),
    "full_steps": (gpu_steps, "experiments/gpu/run.sh collect"),
    "rd_points": (rd_points, V1_GPU),
    "codec_families": (codec_families, V1_GPU + " (and collect-codecs); " + V1_CODEC),
    "ste_rd_points": (lambda: rd_points("codec_skip_ste/", baselines=False), V1_CODEC),
    "ste_vs_webp": (lambda: against_webp("codec_skip_ste/"), V1_CODEC),
    "quant_gap": (quant_gap, V1_CODEC),
    "refine_vs_plain": (refine_vs_plain, V1_CODEC),
    "refine_floors": (lambda: rd_floors("codec_refine/"), V1_CODEC),
    "refine_probe": (refine_probe, V1_CODEC),
    # the longer-trained codec after each continuation, then with context models: outs/codec_{long,long2,long3,ctx}/
    **{
        f"{name}_{kind}": (partial(table, f"codec_{name}/"), V1_CODEC)
        for name in ("long", "long2", "long3", "ctx")
        for kind, table in (("refine_vs_plain", refine_vs_plain), ("floors", rd_floors))
    },
    "ctx_rate": (context_rate, V1_CODEC),
    "rd_floors": (rd_floors, V1_GPU),
    "gpu_bench": (lambda: bench("gpu/bench.json"), "bench/gpu_check.sh on a GPU"),
    "gpu_sweep": (lambda: bench("gpu/sweep.json"), "bench/gpu_check.sh on a GPU"),
    "pipeline_ae_metrics": (lambda: ae_metrics("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_grid": (lambda: grid("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_grid_margin": (lambda: grid_margin("pipeline/"), "experiments/pipeline/run.sh"),
    "pipeline_rd_points": (lambda: rd_points("pipeline/"), "experiments/pipeline/run.sh at commit cdeb663"),
    "pipeline_rd_floors": (lambda: rd_floors("pipeline/"), "experiments/pipeline/run.sh at commit cdeb663"),
    "pipeline_jobs": (pipeline_jobs, "experiments/pipeline/run.sh"),
    "codec_v2_points": (codec_v2_points, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_comparisons": (codec_v2_comparisons, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_floors": (codec_v2_floors, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_training": (codec_v2_training, "experiments/codec/v2.sh DATA; experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_refinement": (codec_v2_refinement, "experiments/codec/refine_v2.sh DATA"),
    "codec_v2_context": (codec_v2_context, "experiments/codec/v2.sh DATA"),
    "codec_v2_longer": (codec_v2_longer, "experiments/codec/v2.sh DATA"),
    "codec_v2_gpu": (codec_v2_gpu, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_top": (codec_v2_top, "experiments/gpu/codec.sh collect DATA RUN"),
    "clf_parity": (clf_parity, "experiments/classifier/parity.sh DATA"),
    "photos": (photos, "experiments/generalisation/photos.sh"),
    "run_ae_metrics": (run_ae_metrics, "experiments/report/run.sh DATA"),
    "run_ae_history": (run_ae_history, "experiments/report/run.sh DATA"),
    "run_grid": (run_grid, "experiments/report/run.sh DATA"),
    "run_clf_metrics": (run_clf_metrics, "experiments/report/run.sh DATA"),
    "run_codec_summary": (run_codec_summary, "experiments/report/run.sh DATA"),
    "run_shift": (partial(shift_compact, f"{RUN['autoencoder']}shift.json"), "experiments/report/run.sh DATA"),
    "run_jobs": (run_jobs, "experiments/report/run.sh DATA"),
    "objectives": (objectives, "experiments/report/objectives.sh DATA"),
    "jpeg_grid": (jpeg_grid, "experiments/codec/jpeg_grid.py --data DATA"),
    "decoder_probe": (decoder_probe, "experiments/codec/decoder_probe.py --data DATA"),
    "analysis_blocks": (analysis_blocks, "experiments/codec/heads.sh finetune DATA"),
    "analysis_blocks_scratch": (
        lambda: analysis_blocks("codec_heads_scratch", "`heads_scratch.yaml` trained from scratch", blocks=2),
        "experiments/codec/heads.sh scratch DATA",
    ),
    "context_probe": (context_probe, "experiments/codec/context_probe.py --data DATA --model RUNS/codec_v2_base/model"),
}


def render(text: str) -> str:
    def fill(match):
        name = match.group(1)
        fn, command = TABLES[name]
        body = fn() or f"_(not produced yet: {command})_"
        return f"<!-- table:{name} -->\n{body}\n<!-- /table:{name} -->"

    return re.sub(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", fill, text, flags=re.S)


# every file with generated tables: the README, the report, and the research log under docs/
DOCUMENTS = [REPO / "README.md", REPO / "REPORT.md", *sorted((REPO / "docs").glob("*.md"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, default=DOCUMENTS)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for path in args.files:
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)}; run python jobs/report.py")


if __name__ == "__main__":
    main()
