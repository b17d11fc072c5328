"""What the documents' tables share: reading outs/, markdown tables, the paths of the runs they show, and the
tables shown in more than one document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]  # jobs/doc_tables/shared.py -> the repository
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


CODEC_V2_SUBPOSITIONS = "codec_v2_subpositions/"  # the shipped v2 codec (models/codec-v2, full.yaml): the same files
CODEC_V2_SUBPOSITIONS_3EP = "codec_v2_subpositions_3ep/"  # full_context.yaml at 3 epochs (4a318be8491e)
CODEC_V2_SUBPOSITIONS_6EP = "codec_v2_subpositions_6ep/"  # full_context.yaml (fd696459458a), shipped before
# full_levels.yaml (then full.yaml) with the 1 bpp levels drawn 1.5 times as often (6e92633d9e53), shipped before;
# the recipe's other arms are codec_v2_floors_unweighted/ (beside this one) and codec_v2_floors_2x/ (beside the next)
CODEC_V2_FLOORS_1P5X = "codec_v2_floors_1p5x/"
# full_levels.yaml as it is (572d1ae57e83: the 1 bpp level drawn 3 times as often), shipped before: full.yaml's base
CODEC_V2_FLOORS_3X = "codec_v2_floors_3x/"


CODEC_V2 = "codec_v2/"  # its base, shipped before it (full_base.yaml, one step from scratch): history, config and rd/


CODEC_V2_GPU_TOP = "codec_v2_gpu/"  # the model shipped before it (gpu_top.yaml, a GPU chain's last step): the same


CODEC_V2_GPU = "codec_v2_gpu/base/"  # the model that step continued (gpu_long.yaml, GPU): the same files, and base/


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
        (CODEC_V2_GPU_TOP, "the GPU-trained model shipped before"),
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


def gap_cell(v: dict, unit: str = "") -> str:
    """A comparison's value (and ``unit``) with its 95% bootstrap interval."""
    if v["value"] is None:
        return "outside a curve"
    ci = v["ci95"]
    return f"{v['value']:+.2f}{unit}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


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


def cell(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


# The v1 codec's experiments, whose outs/ stay as measured (experiments/codec/README.md).
V1_CODEC = "experiments/codec/run.sh at commit cdeb663 (the v1 codec, removed since)"
