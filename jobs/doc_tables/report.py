"""REPORT.md's tables: the exercise's skeleton filled in from the report run and the full-size runs."""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial

from cifarae.config import config_from_dict
from cifarae.rd import interpolate

from .shared import (
    CODEC,
    CODEC_V2,
    CODEC_V2_BASE,
    CODEC_V2_CONTEXT,
    CODEC_V2_CPU,
    CODEC_V2_FLOORS_1P5X,
    CODEC_V2_FLOORS_3X,
    CODEC_V2_GPU,
    CODEC_V2_GPU_TOP,
    CODEC_V2_SUBPOSITIONS,
    CODEC_V2_SUBPOSITIONS_3EP,
    CODEC_V2_SUBPOSITIONS_6EP,
    OBJECTIVES,
    OUTS,
    PARITY_FLOORS,
    PRODUCT_RUNS,
    SPLIT_NAMES,
    cell,
    gap_cell,
    load,
    md_table,
    mean_at,
    model_note,
    parity_accuracies,
    pm,
)


def codec_v2_points(split: str = "test") -> str | None:
    """The shipped v2 codec at each quality level, and the references' curves, on the RD subset."""
    r = load(f"{CODEC_V2_SUBPOSITIONS}rd/rd.json")
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
    r = load(f"{CODEC_V2_SUBPOSITIONS}rd/rd.json")
    if r is None:
        return None
    comps = r["splits"][split]["comparisons"]
    keys = ["gap_db@0.5bpp", "gap_db@1bpp", "gap_db@2bpp", "gap_db@3bpp", "bd_rate_pct"]
    names = {"avif_payload": "AVIF payload only", "avif_file": "AVIF whole file", "webp": "WebP",
             "jpeg_scan": "JPEG scan data only"}  # fmt: skip
    rows = [[names[k], *(gap_cell(comps[k][key]) for key in keys)] for k in names]
    header = ["ours (whole files) vs", "ΔPSNR @0.5 bpp", "@1 bpp", "@2 bpp", "@3 bpp", "BD-rate (%)"]
    return md_table(header, rows)


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
    continuation (cpu_long.yaml); on a GPU, the first two steps of the model shipped before (gpu.yaml, then
    gpu_long.yaml), and on a CPU its last (gpu_top.yaml: an eleventh level); the model shipped after it, from scratch
    (full_base.yaml), that model with the sub-position context (full_context.yaml), that one with its levels placed at
    the floors (full_levels.yaml), and the shipped model, that one with its decoder trained on alone (full.yaml)."""
    folders = (
        CODEC_V2_BASE,
        CODEC_V2_CONTEXT,
        CODEC_V2_CPU,
        f"{CODEC_V2_GPU}base/",
        CODEC_V2_GPU,
        CODEC_V2_GPU_TOP,
        CODEC_V2,
        CODEC_V2_SUBPOSITIONS_6EP,
        CODEC_V2_FLOORS_3X,
        CODEC_V2_SUBPOSITIONS,
    )
    runs = [(load(f"{folder}history.json"), load(f"{folder}config.yaml")) for folder in folders]
    if any(h is None or c is None for h, c in runs):
        return None
    sentences = []
    names = ("CPU, half width: the base, from scratch (`codec/cpu.yaml`)", "The fine-tune (`codec/cpu_context.yaml`)",
             "Its continuation (`codec/cpu_long.yaml`)",
             "One H200 GPU, full width: the model shipped before, from scratch (`codec/gpu.yaml`)",
             "Its continuation at batch 128 (`codec/gpu_long.yaml`)",
             "Its eleventh level, on the CPU (`codec/gpu_top.yaml`)",
             "Full width with two residual blocks before each latent head, eleven levels, from scratch in one step on "
             "the CPU (`codec/full_base.yaml`, shipped before)",
             "That one fine-tuned with the sub-position context (`codec/full_context.yaml`, shipped before)",
             "That one with its levels placed at the floors (`codec/full_levels.yaml`, shipped before)",
             "The shipped model: that one with its decoder trained on alone (`codec/full.yaml`)")  # fmt: skip
    for (h, c), what in zip(runs, names):
        cfg = config_from_dict(c)
        shown = h if len(h) <= 8 else [*h[:3], None, *h[-3:]]  # a long run: its first and last epochs
        psnr = " → ".join("…" if r is None else f"{r['val_psnr']:.2f}" for r in shown)
        bpp = " → ".join("…" if r is None else f"{r['val_bpp_estimate']:.2f}" for r in shown)
        minutes = sum(r["epoch_time_s"] for r in h) / 60
        sentences.append(
            f"{what}: validation PSNR at its middle level (λ = {cfg.level_lambdas[cfg.middle_level]:g}) {psnr} dB over "
            f"{len(h)} epoch{'s' * (len(h) > 1)}, at an estimated {bpp} bpp ({minutes:.0f} min)."
        )
    return " ".join(sentences)


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
        # the GPU one, its eleventh level (shipped before), the shipped one (full.yaml, from scratch) in file format 3
        v2 = [streams["rd"], *(load(f"{CODEC_V2_CONTEXT}rd/{k}.json")["splits"]["test"] for k in ("rd_9levels", "rd")),
              *(load(f"{f}rd/rd.json")["splits"]["test"] for f in (CODEC_V2_CPU, CODEC_V2_GPU, CODEC_V2_GPU_TOP)),
              load(f"{CODEC_V2}rd/rd_format3.json")["splits"]["test"]]  # fmt: skip
        # the shipped one in formats 4 and 5
        fmt4, fmt5 = (load(f"{CODEC_V2}rd/{k}.json")["splits"]["test"] for k in ("rd_format4", "rd"))
        # the sub-position fine-tune at 3 epochs, then 6, then its levels placed at the floors, then the 1 bpp level
        # drawn 3 times as often, then its decoder trained on alone (shipped)
        fine_tunes = (CODEC_V2_SUBPOSITIONS_3EP, CODEC_V2_SUBPOSITIONS_6EP, CODEC_V2_FLOORS_1P5X, CODEC_V2_FLOORS_3X,
                      CODEC_V2_SUBPOSITIONS)  # fmt: skip
        ep3, ep6, floors, floors3x, shipped = (load(f"{f}rd/rd.json")["splits"]["test"] for f in fine_tunes)
    except (TypeError, KeyError, StopIteration):
        return None
    ctl = qg[0.04]
    bd_avif = [streams[k]["comparisons"]["avif_payload"]["bd_rate_pct"]["value"] for k in ("rd_format2", "rd")]
    low_bpp = [streams[k]["curves"]["cae"][0]["bpp"] for k in ("rd_format2", "rd")]
    v2_bd = [t["comparisons"]["avif_payload"]["bd_rate_pct"]["value"] for t in v2]
    # the last rows below each move one step along these
    steps = (v2[-1], fmt4, fmt5, ep3, ep6, floors, floors3x, shipped)

    def step_change(i: int) -> str:
        """Step i -> i + 1 against AVIF's payload: BD-rate and PSNR at the floors' rates."""
        (a, b), at = steps[i : i + 2], lambda t, bpp: cell(interpolate(t["curves"]["cae"], bpp))
        bd = [t["comparisons"]["avif_payload"]["bd_rate_pct"]["value"] for t in (a, b)]
        return (f"BD-rate against AVIF's payload {bd[0]:+.1f} → {bd[1]:+.1f}%, PSNR at 1 bpp {at(a, 1.0)} → "
                f"{at(b, 1.0)} dB, at 2 bpp {at(a, 2.0)} → {at(b, 2.0)} dB")  # fmt: skip

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
               "`outs/codec_v2_cpu/rd/rd.json` → `outs/codec_v2_gpu/base/rd/rd.json`"),
              ("+ an eleventh level (λ = 0.256), one epoch at lr 1e-4 (CPU)",
               "`outs/codec_v2_gpu/base/rd/rd.json` → `outs/codec_v2_gpu/rd/rd.json`"),
              ("one step from scratch: eleven levels from the start, two residual blocks before each latent head, "
               "gradient clipping without the entropy bottleneck's quantiles, 44 epochs at batch 128 (CPU)",
               "`outs/codec_v2_gpu/rd/rd.json` → `outs/codec_v2/rd/rd_format3.json`")])),
        ["codec v2", "file format 3 → 4: an 8-byte header instead of 17 (one byte for magic and version, a 2-byte "
         "model tag, CRC-16), same model and files otherwise",
         step_change(0),
         "`outs/codec_v2/rd/rd_format3.json` → `rd_format4.json`"],
        ["codec v2", "file format 4 → 5: a 6-byte header (no size for a 32×32 image) and each rANS stream without "
         "its state's zero top bytes, same model and decoded images",
         step_change(1),
         "`outs/codec_v2/rd/rd_format4.json` → `rd.json`"],
        ["codec v2", "+ the sub-position context (each 2×2 block's skip-latent values coded in four steps, each "
         "conditioned on those before it), fine-tuned 3 epochs (CPU)",
         step_change(2),
         "`outs/codec_v2/rd/rd.json` → `outs/codec_v2_subpositions_3ep/rd/rd.json`"],
        ["codec v2", "the same fine-tune for 6 epochs instead of 3 (CPU)",
         step_change(3),
         "`outs/codec_v2_subpositions_3ep/rd/rd.json` → `outs/codec_v2_subpositions_6ep/rd/rd.json`"],
        ["codec v2", "its eleven levels placed at the floors (one on each, others beside), the three about 1 bpp "
         "drawn 1.5 times as often and the top one half as often, 2 epochs (CPU)",
         step_change(4),
         "`outs/codec_v2_subpositions_6ep/rd/rd.json` → `outs/codec_v2_floors_1p5x/rd/rd.json`"],
        ["codec v2", "the same, with the level at 1 bpp drawn 3 times as often and its two neighbours 1.5 times",
         step_change(5),
         "`outs/codec_v2_floors_1p5x/rd/rd.json` → `outs/codec_v2_floors_3x/rd/rd.json`"],
        ["codec v2", "the same, with its decoder trained on alone for 4 epochs (the same bits)",
         step_change(6),
         "`outs/codec_v2_floors_3x/rd/rd.json` → `outs/codec_v2_subpositions/rd/rd.json`"],
    ]  # fmt: skip
    return md_table(
        ["#", "product", "what changed", "measured before → after", "source"], [[i + 1, *r] for i, r in enumerate(rows)]
    )


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


TABLES = {
    "recipe_hyperparameters": (recipe_hyperparameters, "experiments/gpu/run.sh collect; experiments/classifier/run.sh"),
    "label_efficiency": (label_efficiency, "experiments/gpu/run.sh collect"),
    "clf_curves": (clf_curves, "experiments/gpu/run.sh collect"),
    "generalisation_gaps": (generalisation_gaps, "experiments/gpu/run.sh collect; experiments/classifier/run.sh"),
    "design_loop": (design_loop, "the run.sh of each experiments/ topic"),
    "codec_v2_points": (codec_v2_points, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_comparisons": (codec_v2_comparisons, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_training": (codec_v2_training, "experiments/codec/v2.sh DATA; experiments/gpu/codec.sh collect DATA RUN"),
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
}
