"""docs/codec-log.md's tables."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import yaml

from cifarae.config import config_from_dict
from cifarae.rd import bd_rate, interpolate

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
    REPO,
    SPLIT_NAMES,
    V1_CODEC,
    bench,
    cell,
    gap_cell,
    history_summary,
    load,
    md_table,
    model_note,
    point_name,
    rd_floors,
    rd_points,
)


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


CODEC_V2_FLOORS = {"psnr_at_2bpp": 34.5, "span_bpp": (0.5, 3.0)}  # the issue's (at 1 bpp: AVIF's payload curve)


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
    """Two RD evaluations (rd.json files under outs/) level by level, matched by λ, on the same images, and the
    BD-rate of ``after`` against ``before``."""
    old_r, new_r = load(before), load(after)
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


def rd_of(folder: str) -> str:
    return f"{folder}rd/rd.json"


# The one-step model's files in format 3 (17-byte header), as the models before it were measured, and in format 4
# (8-byte header, every rANS state byte kept); rd.json is format 5.
CODEC_V2_FORMAT3 = f"{CODEC_V2}rd/rd_format3.json"
CODEC_V2_FORMAT4 = f"{CODEC_V2}rd/rd_format4.json"

codec_v2_context = partial(level_changes, rd_of(CODEC_V2_BASE), rd_of(CODEC_V2_CONTEXT), ("base", "fine-tuned"))


codec_v2_longer = partial(level_changes, rd_of(CODEC_V2_CONTEXT), rd_of(CODEC_V2_CPU), ("fine-tuned", "8 epochs more"))


codec_v2_gpu = partial(level_changes, rd_of(CODEC_V2_CPU), rd_of(CODEC_V2_GPU), ("CPU, half width", "GPU, full width"))


codec_v2_top = partial(level_changes, rd_of(CODEC_V2_GPU), rd_of(CODEC_V2_GPU_TOP), ("GPU", "eleventh level"))


def gaps_at(comparison: dict, bpps: tuple[int, ...]) -> str:
    """A paired comparison's PSNR gaps at ``bpps``, with their intervals, leaving out those outside a curve."""
    return ", ".join(
        f"{gap_cell(comparison[f'gap_db@{x}bpp'], ' dB')} at {x} bpp"
        for x in bpps
        if comparison[f"gap_db@{x}bpp"]["value"] is not None
    )


def codec_v2_scratch() -> str | None:
    """full_base.yaml's model (one step, then shipped) against the GPU chain's, shipped before it: level by level on
    the test images of both RD evaluations, each one's gaps to AVIF's payload (also over the PSNR range both share
    with it), and the paired bootstrap between the two on validation images (compare.json)."""
    table = level_changes(rd_of(CODEC_V2_GPU_TOP), CODEC_V2_FORMAT3, ("GPU chain", "one step"))
    tests = {name: load(f) for name, f in (("GPU chain", rd_of(CODEC_V2_GPU_TOP)), ("one step", CODEC_V2_FORMAT3))}
    g, history = load(f"{CODEC_V2}compare.json"), load(f"{CODEC_V2}history.json")
    if table is None or g is None or history is None:
        return None

    curves = {name: r["splits"]["test"]["curves"] for name, r in tests.items()}
    avif = curves["one step"]["avif_payload"]
    shared = (max(min(p["psnr"] for p in c["cae"]) for c in curves.values()),
              min(max(p["psnr"] for p in c["cae"]) for c in curves.values()))  # fmt: skip
    lines = []
    for name, r in tests.items():
        c = r["splits"]["test"]["comparisons"]
        lines.append(
            f"{name} against AVIF's payload: {gap_cell(c['avif_payload']['gap_db@1bpp'], ' dB')} at 1 bpp, "
            f"{gap_cell(c['avif_payload']['gap_db@2bpp'], ' dB')} at 2 bpp, BD-rate "
            f"{gap_cell(c['avif_payload']['bd_rate_pct'], '%')} over its own overlap with AVIF's curve, "
            f"{bd_rate(curves[name]['cae'], avif, within=shared):+.1f}% over the PSNRs both models reach "
            f"({shared[0]:.2f}–{shared[1]:.2f} dB, where it overlaps AVIF's)."
        )
    c = g["comparisons"]["one_step vs gpu_chain"]
    lines.append(
        f"one step against the GPU chain on {g['val_images']:,} stratified validation images, paired: BD-rate "
        f"{gap_cell(c['bd_rate_pct'], '%')}; {gaps_at(c, (1, 2, 3))}."
    )
    hours = sum(h["epoch_time_s"] for h in history) / 3600
    return (
        table + f" One step: {len(history)} epochs from scratch on 2 CPU threads ({hours:.1f} h of epochs). Intervals "
        "(95%, paired bootstrap over images):\n\n" + "\n".join(f"- {line}" for line in lines)
    )


FULL_SUBPOSITIONS = "codec_full_subpositions/"  # full_base.yaml with context=subpositions on CPUs, across sessions


def middle_lambda(config: dict) -> float:
    """A codec run's λ at its middle level, the level validation codes."""
    cfg = config_from_dict(config)
    return cfg.level_lambdas[cfg.middle_level]


def rd_loss(record: dict, lam: float) -> float:
    """tasks.py's validation RD loss of a history record, from its estimated bpp and MSE (older histories lack it)."""
    return record["val_bpp_estimate"] + 255**2 * lam * record["val_mse"]


def full_run_progress() -> str | None:
    """full_base.yaml with context=subpositions, epoch by epoch against its own run (the model then shipped; the same
    seed, data and schedule): validation at the middle level, the RD loss the runs keep their best epoch by."""
    shipped, running = load(f"{CODEC_V2}history.json"), load(f"{FULL_SUBPOSITIONS}history.json")
    config = load(f"{FULL_SUBPOSITIONS}config.yaml")
    if shipped is None or running is None or config is None:
        return None
    lam = middle_lambda(config)
    rows, changes = [], []
    for new in running:
        old = shipped[new["epoch"] - 1]
        change = 100 * (rd_loss(new, lam) / rd_loss(old, lam) - 1)
        changes.append(change)
        rows.append(
            [new["epoch"], f"{rd_loss(old, lam):.3f}", f"{rd_loss(new, lam):.3f}", f"{change:+.1f}%"]
            + [f"{old['val_psnr']:.2f}", f"{new['val_psnr']:.2f}"]
            + [f"{old['val_bpp_estimate']:.3f}", f"{new['val_bpp_estimate']:.3f}"]
        )
    header = ["epoch", "shipped: RD loss", "subpositions: RD loss", "change"]
    header += ["shipped: PSNR (dB)", "subpositions: PSNR (dB)", "shipped: bpp (est.)", "subpositions: bpp (est.)"]
    hours = sum(r["epoch_time_s"] for r in running) / 3600
    return md_table(header, rows) + (
        f"\n\nValidation on {config['val_size']:,} images at the middle level (λ = {lam}): estimated bits, no coder. "
        f"The run's first {len(running)} of {config['epochs']} epochs ({hours:.1f} h on 2 CPU threads); the shipped "
        f"model's run of the same recipe ({len(shipped)} epochs) beside it. RD loss change, mean over these epochs: "
        f"{sum(changes) / len(changes):+.1f}%."
    )


def finetune_change(
    base: str, before: str, after: str, names: tuple[str, str], cpu: str = "2 CPU threads"
) -> str | None:
    """A fine-tune of ``base``'s model (``after``) against ``before`` on the same test images, and the fine-tune's
    validation RD loss epoch by epoch from the base's best; ``cpu`` says what it trained on."""
    table = rd_change(rd_of(before), rd_of(after), names)
    base_history, fine = load(f"{base}history.json"), load(f"{after}history.json")
    base_config, config = load(f"{base}config.yaml"), load(f"{after}config.yaml")
    if None in (table, base_history, fine, base_config, config):
        return None
    lam, base_lam = middle_lambda(config), middle_lambda(base_config)
    start = min(base_history, key=lambda r: rd_loss(r, base_lam))  # the epoch the base exported
    minutes = sum(r["epoch_time_s"] for r in fine) / 60
    schedule = f"{len(fine)} epochs at lr {config['lr']:g} on a {config['schedule']} schedule"
    schedule += f", {minutes:.0f} min on {cpu}"
    if lam == base_lam:  # the same level validated before and after: one chain from the base's epoch
        losses = " → ".join(f"{rd_loss(r, lam):.3f}" for r in [start, *fine])
        schedule = f"the base's epoch {start['epoch']}, then {schedule}"
    else:  # the middle level moved: the base's loss is another level's, so it is given apart
        losses = " → ".join(f"{rd_loss(r, lam):.3f}" for r in fine)
        schedule += f"; the base's middle level was λ = {base_lam}, at {rd_loss(start, base_lam):.3f}"
    return table + (
        f"\n\nThe fine-tune's validation RD loss at the middle level (λ = {lam}, {config['val_size']:,} images, "
        f"estimated bits): {losses} ({schedule})."
    )


def floor_arms(runs: dict[str, str]) -> str | None:
    """Whole-file RD evaluations of several models on the same test images, one row each: their span and weights, and
    their gaps to AVIF's payload at the floors' rates and BD-rates (95% paired bootstrap)."""
    loaded = {name: (load(rd_of(folder)), load(f"{folder}config.yaml")) for name, folder in runs.items()}
    if any(r is None or c is None for r, c in loaded.values()):
        return None
    rows = []
    for name, (r, config) in loaded.items():
        t = r["splits"]["test"]
        cae, avif, webp = t["curves"]["cae"], t["comparisons"]["avif_payload"], t["comparisons"]["webp"]
        weights = config.get("rd_level_weights") or [1] * len(config["rd_lambdas"])
        rows.append([name, f"{cae[0]['bpp']:.2f}–{cae[-1]['bpp']:.2f}", ", ".join(f"{w:g}" for w in weights),
                     cell(interpolate(cae, 1.0)), gap_cell(avif["gap_db@1bpp"]), cell(interpolate(cae, 2.0)),
                     gap_cell(avif["gap_db@2bpp"]), gap_cell(avif["bd_rate_pct"], "%"),
                     gap_cell(webp["bd_rate_pct"], "%")])  # fmt: skip
    header = ["model", "span (bpp)", "level weights", "1 bpp (dB)", "vs AVIF payload", "2 bpp (dB)",
              "vs AVIF payload", "BD-rate vs AVIF payload", "BD-rate vs WebP"]  # fmt: skip
    n = {r["splits"]["test"]["num_images"] for r, _ in loaded.values()}
    return md_table(header, rows) + (
        f"\n\nWhole files on the same {'/'.join(f'{k:,}' for k in sorted(n))} stratified test images; gaps and "
        "BD-rates against the references on the same images, with 95% paired bootstrap intervals."
    )


def speed_table(runs: dict[str, str]) -> str | None:
    """make bench's codec rows of several runs (one thread), one row each: encode and decode speed beside Pillow's
    AVIF timed in the same run."""
    loaded = {name: load(path) for name, path in runs.items()}
    if None in loaded.values():
        return None
    rows = []
    for name, r in loaded.items():
        row = {x["row"]: x for x in r["rows"]}
        enc, dec = row["codec encode vs AVIF"], row["codec decode vs AVIF"]
        rows.append([name, f"{enc['project']['median']:.1f}", f"{dec['project']['median']:.1f}",
                     f"{enc['baseline']['median']:.1f}", f"{enc['ratio']:.2f}x"])  # fmt: skip
    header = ["model", "encode (img/s)", "decode (img/s)", "AVIF encode, same run (img/s)", "encode vs AVIF"]
    n = "/".join(sorted({str(r["args"]["codec_images"]) for r in loaded.values()}))  # one number unless they differ
    return md_table(header, rows) + f"\n\nMedians of 3 on {n} validation images at the middle level, one thread."


def rd_change(before: str, after: str, names: tuple[str, str]) -> str | None:
    """Two RD evaluations of the same test images (two file formats, or two models), level by level, and the gaps to
    AVIF's payload and WebP before and after."""
    table = level_changes(before, after, names)
    runs = [load(f) for f in (before, after)]
    if table is None:
        return None
    old, new = (r["splits"]["test"]["comparisons"] for r in runs)
    lines = [
        f"against {name}: " + "; ".join(
            f"{what} {gap_cell(old[key][stat], unit)} → {gap_cell(new[key][stat], unit)}"
            for what, stat, unit in (("at 1 bpp", "gap_db@1bpp", " dB"), ("at 2 bpp", "gap_db@2bpp", " dB"),
                                     ("BD-rate", "bd_rate_pct", "%"))
            if old[key][stat]["value"] is not None
        )
        for name, key in (("AVIF's payload", "avif_payload"), ("WebP", "webp"))
    ]  # fmt: skip
    return (
        table
        + f" Gaps (95%, paired bootstrap over images), {names[0]} → {names[1]}:\n\n"
        + "\n".join(f"- {line}" for line in lines)
    )


def codec_levels() -> str | None:
    """The shipped model against itself trained on at the three levels around 1 bpp only (experiments/codec/levels.sh),
    on the same validation images, and v1's single-rate codecs at 1 bpp (outs/full/rd, every test image)."""
    g, history = load("codec_levels/compare.json"), load("codec_levels/history.json")
    v1 = load(f"{CODEC['low']}rd/rd.json")
    if g is None or history is None or v1 is None:
        return None
    lambdas = yaml.safe_load((REPO / "experiments/codec/levels.yaml").read_text())["train"]["rd_lambdas"]
    shipped_lambdas = load(f"{CODEC_V2}config.yaml")["rd_lambdas"]  # the model shipped then, 486cffa0b41a
    shipped, three = g["models"]["shipped"]["points"], g["models"]["three_levels"]["points"]
    first = shipped_lambdas.index(lambdas[0])
    rows = [
        [f"{lam:g}", f"q{first + i}", f"{shipped[first + i]['bpp']:.3f}, {shipped[first + i]['psnr']:.2f}",
         f"{p['bpp']:.3f}, {p['psnr']:.2f}"]
        for i, (lam, p) in enumerate(zip(lambdas, three))
    ]  # fmt: skip
    c = g["comparisons"]["three_levels vs shipped"]
    minutes = sum(h["epoch_time_s"] for h in history) / 60
    cae = v1["points"]["test"]["cae"]
    payload = [{"bpp": p["bpp_payload"], "psnr": p["psnr"]} for p in cae]
    ours = interpolate(shipped, 1.0)
    return md_table(["λ", "shipped level", "shipped (bpp, dB)", "three levels (bpp, dB)"], rows) + (
        f"\n\nWhole files (format 4) on {g['val_images']:,} stratified validation images; three levels: the shipped "
        f"model trained on for {len(history)} epochs at these levels only ({minutes:.0f} min on one core). Paired "
        f"bootstrap (95%), three levels against shipped: BD-rate {gap_cell(c['bd_rate_pct'], '%')}; "
        f"{gaps_at(c, (1,))}.\n\nv1's single-rate codecs (`outs/full/rd/`, every test image, a 16-byte header): "
        f"{interpolate(cae, 1.0):.2f} dB at 1 bpp of whole file, {interpolate(payload, 0.9375):.2f} dB at 0.9375 bpp "
        f"of payload, what a 1 bpp file of format 4 carries; the shipped model on the validation images above: "
        f"{cell(ours)} dB at 1 bpp."
    )


# The level probes (experiments/codec/levels.sh MODE): MODE -> (recipe, outs folder, arm name in compare.json).
LEVEL_PROBES = {
    "three": ("levels.yaml", "codec_levels", "three_levels"),
    "six": ("levels_six.yaml", "codec_levels_six", "six_levels"),
    "three-2bpp": ("levels_2bpp.yaml", "codec_levels_2bpp", "three_levels_2bpp"),
    "floors": ("levels_floors.yaml", "codec_levels_floors", "floor_levels"),
    "weighted": ("levels_weighted.yaml", "codec_levels_weighted", "weighted_levels"),
}


def codec_level_probes() -> str | None:
    """Every level probe against the shipped model on the same validation images: its levels, span, the paired gaps
    at the floors' rates (where its curve reaches them) and the BD-rate over the rates both curves share."""
    rows = []
    for mode, (recipe, folder, arm) in LEVEL_PROBES.items():
        g, history = load(f"{folder}/compare.json"), load(f"{folder}/history.json")
        if g is None or history is None:
            return None
        train = yaml.safe_load((REPO / "experiments/codec" / recipe).read_text())["train"]
        levels = ", ".join(f"{lam:g}" for lam in train["rd_lambdas"])
        if train.get("rd_level_weights"):
            weights = train["rd_level_weights"]
            levels += f" (drawn in proportion to {weights[0]:g} … {weights[-1]:g})"
        points, c = g["models"][arm]["points"], g["comparisons"][f"{arm} vs shipped"]
        rows.append([
            f"`{mode}`", levels, f"{points[0]['bpp']:.2f}–{points[-1]['bpp']:.2f}",
            *(gap_cell(c[f"gap_db@{x:g}bpp"], " dB") for x in (0.5, 1, 2, 3)), gap_cell(c["bd_rate_pct"], "%"),
            f"{sum(h['epoch_time_s'] for h in history) / 60:.0f}",
        ])  # fmt: skip
    header = ["`levels.sh`", "λ of its levels", "span (bpp)", *(f"gap at {x} bpp" for x in (0.5, 1, 2, 3)), "BD-rate"]
    return md_table([*header, "training (min)"], rows) + (
        f"\n\nEach: the shipped model trained on for 2 epochs at its levels only (one core; best.pt, the epoch of "
        "lowest validation RD loss, was the last in every probe), against the shipped "
        f"model (eleven levels, λ 0.00025–0.256) on {g['val_images']:,} stratified validation images, whole files of "
        "format 4; gaps at equal bpp and BD-rates (over the rates both curves span) with paired bootstrap intervals "
        "(95%); 'outside a curve': the probe's levels do not reach that rate."
    )


def state_bytes() -> str | None:
    """How many of the shipped files' rANS state bytes are zero, level by level, and what leaving them out would gain
    (experiments/codec/state_bytes.py)."""
    r = load("codec_state_bytes/state_bytes.json")
    if r is None:
        return None
    rows = [
        [f"q{lv['level']}", *(lv["zero_bytes"][str(k)] for k in range(4)), f"{lv['mean_bytes']:.2f}",
         f"{lv['bpp']:.4f}"]
        for lv in r["levels"]
    ]  # fmt: skip
    header = ["level", "files with 0", "1", "2", "3 zero high bytes", "mean bytes saved", "bpp saved"]
    return md_table(header, rows) + (
        f"\n\nModel {r['model_id']}, the first {r['val_images']:,} stratified validation images; mean over levels "
        f"{r['mean_bytes']:.2f} bytes. The shipped curve on the same images moved left by each level's saving: "
        f"{r['gain_db@1bpp']:+.2f} dB at 1 bpp, {r['gain_db@2bpp']:+.2f} dB at 2."
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


def decoder_side() -> str | None:
    """What the decoder side adds on the fixed bits of full_levels.yaml's model, level by level: its decoder trained on
    alone, and with latent residual prediction (experiments/codec/decoder_probe.py and lrp_probe.py)."""
    dec, lrp = load("codec_decoder_side/decoder/probe.json"), load("codec_decoder_side/lrp/probe.json")
    rd = load(rd_of(CODEC_V2_FLOORS_3X))
    if None in (dec, lrp, rd):
        return None
    as_trained = dec["variants"]["shipped, as shipped"]
    shipped, trained = as_trained["level_psnr"], dec["variants"]["shipped, trained on"]
    with_lrp = lrp["variants"]["shipped decoder with residual prediction, trained on"]
    test_bpp = {p["level"]: p["bpp"] for p in rd["splits"]["test"]["curves"]["cae"]}
    header = ["level", "λ", "bpp (test)", "as trained (dB)", "decoder trained on", "with residual prediction"]
    rows = [
        [f"q{i}", f"{lam:g}", f"{test_bpp[i]:.2f}", f"{s:.2f}", f"{t - s:+.2f}", f"{r - s:+.2f}"]
        for i, (lam, s, t, r) in enumerate(
            zip(dec["model"]["rd_lambdas"], shipped, trained["level_psnr"], with_lrp["level_psnr"], strict=True)
        )
    ]
    a = dec["args"]
    return md_table(header, rows) + (
        f"\n\nPSNR on {a['val']:,} validation images and its change, every level's bits fixed (model 572d1ae57e83, "
        f"full_levels.yaml's); bpp: the same level's whole files on the 2,000 test images. Each decoder trained alone "
        f"for {a['steps']:,} steps of 64 on {a['train']:,} training images at lr {a['lr']:g}, from the same seed, one "
        f"core each side by side ({trained['minutes']:.0f} and {with_lrp['minutes']:.0f} min); the residual predictor "
        f"at lr {lrp['args']['lrp_lr']:g}. Unrounded latent: {as_trained['unrounded_psnr']:.2f} "
        f"dB as trained, {trained['unrounded_psnr']:.2f} with the decoder trained on."
    )


def channel_context_probe() -> str | None:
    """Would a channel context (the skip latent coded after the main latent, conditioned on it) pay on the shipped
    codec: its rate saving per level (a sentence; experiments/codec/channel_context_probe.py)."""
    g = load("codec_channel_context_probe/probe.json")
    if g is None:
        return None
    levels, a = g["levels"], g["args"]
    saving = ", ".join(f"q{r['level']} {r['rate_saving_pct']:.2f}%" for r in levels)
    dpsnr = [r["psnr_change_db"] for r in levels]
    return (
        f"A channel context fitted on the shipped codec's frozen transforms, hyperprior and checkerboard "
        f"(`experiments/codec/channel_context_probe.py`: {a['epochs']} epochs on {a['train']:,} training images, "
        f"{g['minutes']:.0f} min on one core) saves, on {a['val']:,} validation images (no coder), {saving} of the "
        f"estimated bits (latent and hyper-latent), at PSNR changes of {min(dpsnr):+.3f} to {max(dpsnr):+.3f} dB."
    )


def group_context_probe() -> str | None:
    """Would a context among the skip latent's own values pay on the shipped codec: each level's rate saving with
    the folded skip channels coded in four groups by sub-position and by channel
    (experiments/codec/group_context_probe.py)."""
    folders = {"position": "position", "channel": "channel", "position, small": "small/position"}
    runs = {name: load(f"codec_group_context_probe/{folder}/probe.json") for name, folder in folders.items()}
    if None in runs.values():
        return None
    header = ["level", "shipped (bpp)", "shipped (dB)"]
    header += [f"{name}: {what}" for name in runs for what in ("bits saved", "PSNR change (dB)")]
    rows = []
    for i, base in enumerate(runs["position"]["levels"]):
        row = [f"q{i}", f"{base['shipped']['bpp']:.3f}", f"{base['shipped']['psnr']:.2f}"]
        for g in runs.values():
            level = g["levels"][i]
            row += [f"{level['rate_saving_pct']:.2f}%", f"{level['psnr_change_db']:+.3f}"]
        rows.append(row)
    a = {"kernel": 5, "features": 64} | runs["position"]["args"]  # made before the probe had those options
    small = runs["position, small"]["args"]
    minutes = ", ".join(f"{g['minutes']:.0f}" for g in runs.values())
    shipped = [r["shipped"] for r in runs["position"]["levels"]]
    summary = []
    for name, g in runs.items():
        curve = [r[f"{g['args']['split']}_context"] for r in g["levels"]]
        gains = ", ".join(f"{interpolate(curve, b) - interpolate(shipped, b):+.2f} dB at {b:g} bpp" for b in (1, 2))
        summary.append(f"{name}: BD-rate {bd_rate(curve, shipped):+.1f}%, {gains}")
    return md_table(header, rows) + (
        f"\n\nEstimated bits (latent and hyper-latent, no coder) and PSNR on {a['val']:,} stratified validation "
        f"images; each group context fitted for {a['epochs']} epochs on {a['train']:,} training images on the "
        f"frozen shipped model ({minutes} min, one core each). "
        f"Each step's context: a {a['kernel']}×{a['kernel']} convolution to {a['features']} features and a "
        f"pointwise network {a['hidden']} wide; small: {small['kernel']}×{small['kernel']}, {small['features']} "
        f"features, {small['hidden']} wide (the library's `context=subpositions`). Against the shipped model's "
        f"curve of the same estimates: {'; '.join(summary)}."
    )


def latent_split() -> str | None:
    """Where each codec's bits go, main latent, skip latent or hyper-latent, and what its decoder makes of the main
    latent (experiments/codec/latent_split.py)."""
    g = load("codec_latent_split/split.json")
    if g is None:
        return None
    shown = (0, 4, 7, 10)
    header = [
        "model", "unrounded latent (dB)",
        "main latent's share of the latent's bits, " + " / ".join(f"q{i}" for i in shown),
        "its values off their means, q7", "skip latent, q7 (bpp)", "hyper-latent, q7 (bpp)", "q7 (dB)",
        "q7, main latents replaced by their mean (dB)",
    ]  # fmt: skip
    rows, moved = [], []
    for name, m in g["models"].items():
        lv = m["levels"]
        shares = " / ".join(f"{100 * lv[i]['main_bpp'] / (lv[i]['main_bpp'] + lv[i]['skip_bpp']):.1f}%" for i in shown)
        q7 = lv[7]
        rows.append([
            name, f"{m['unrounded_psnr']:.2f}", shares, f"{100 * q7['main_nonzero']:.2f}%", f"{q7['skip_bpp']:.3f}",
            f"{q7['hyper_bpp']:.3f}", f"{q7['psnr']:.2f}", f"{q7['psnr_main_as_mean']:.2f}",
        ])  # fmt: skip
        moved += [abs(r["psnr"] - r["psnr_main_as_mean"]) for r in lv]
    return md_table(header, rows) + (
        f"\n\nEstimated bits (no coder, no header) and PSNR on {g['args']['val']:,} stratified validation images, "
        "the eval-mode rounding the files use. The main latent: the backbone's output through the latent head (64 "
        "channels, 8×8; 16×16 in latent16); the skip latent: block 1's features through the skip head (16×16). "
        "'Off their means': the share of the main latent's values coded as a symbol other than zero. Replacing every "
        f"image's decoded main latent by its mean over the images moves no model's PSNR at any level by more than "
        f"{max(moved):.3f} dB."
    )


def spoken_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def analysis_change(
    folder: str = "codec_heads",
    how: str = "the shipped model trained on",
    arm: str = "blocks",
    change: str = "analysis_blocks=1",
    cores: str = "on one core each",
    also: dict[str, str] | None = None,
) -> str | None:
    """One recipe trained as it is and with one change (``change``, the run named ``arm``), from the same seed: every
    level's real bits and PSNR, and the BD-rates and PSNR gaps between them (experiments/codec/heads.sh). ``also``:
    other runs of the recipe in the comparison, each with its change, that the note names and times."""
    also = also or {}
    g = load(f"{folder}/compare.json")
    changes = {**also, arm: change}
    runs = {name: load(f"{folder}/history_{name}.json") for name in ("control", *changes)}
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

    lines = [
        f"{pair}: BD-rate {gap_cell(c['bd_rate_pct'], '%')}; {gaps_at(c, (1, 2))}."
        for pair, c in g["comparisons"].items()
    ]
    share = models[arm]["blocks_share"]
    if share:
        lines.append(
            f"The trained blocks move the latent head's output by {100 * share['latent']:.0f}% and the skip head's "
            f"by {100 * share['skip']:.0f}% (relative norm, 500 of the images)."
        )
    if "stem_share" in models[arm]:
        lines.append(
            f"The stem's part of the skip head's output is {100 * models[arm]['stem_share']:.0f}% of the rest's "
            "(relative norm, 500 of the images)."
        )
    epochs = len(runs["control"])
    minutes = spoken_list([f"{sum(r['epoch_time_s'] for r in h) / 60:.0f}" for h in runs.values()])
    return md_table(header, rows) + (
        f"\n\nWhole files on {g['val_images']:,} stratified validation images. {spoken_list(list(runs))}: {how} for "
        f"{epochs} epochs from the same seed ({minutes} min {cores}), "
        f"{spoken_list([f'{name} with `{c}`' for name, c in changes.items()])}. Paired bootstrap "
        "intervals (95%):\n\n" + "\n".join(f"- {line}" for line in lines)
    )


V1_GPU = "experiments/gpu/run.sh collect at commit cdeb663"
# the recipe every arm of heads.sh skip64, latent16, blocks4 and blocks8 starts from
FULL_DESIGN_FROM_SCRATCH = (
    "`heads_scratch.yaml` with `analysis_blocks=2 clip_quantiles=false` (`codec/full.yaml`'s design) trained "
    "from scratch"
)


# every heads.sh arm from skip64 on (each run RUNS/codec_ARM_ARM, against RUNS/codec_skip64_control)
ANALYSIS_ARMS = ("blocks4", "blocks8", "width50", "width100", "skip64", "latent16")


TABLES = {
    "codec_points": (codec_points, V1_GPU + "; " + V1_CODEC),
    "codec_floors": (codec_floors, V1_GPU + "; " + V1_CODEC),
    "codec_lineage": (codec_lineage, V1_CODEC),
    "bench_codec": (
        lambda: bench("bench_codec.json"),
        "bench/bench.py --data DATA --only codec --threads 1 --out outs/bench_codec.json",
    ),
    "full_codec_training": (full_codec_training, V1_GPU),
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
    "codec_v2_floors": (codec_v2_floors, "experiments/gpu/codec.sh collect DATA RUN"),
    "codec_v2_refinement": (codec_v2_refinement, "experiments/codec/refine_v2.sh DATA"),
    "codec_v2_context": (codec_v2_context, "experiments/codec/v2.sh DATA"),
    "codec_v2_longer": (codec_v2_longer, "experiments/codec/v2.sh DATA"),
    "codec_v2_gpu": (codec_v2_gpu, "experiments/gpu/codec.sh collect DATA RUN at commit ab842f6"),
    "codec_v2_top": (codec_v2_top, "experiments/gpu/codec.sh collect DATA RUN at commit ab842f6"),
    "codec_v2_scratch": (
        codec_v2_scratch,
        "experiments/gpu/codec.sh collect DATA RUN at commit cacd75c (rd_format3.json); "
        "experiments/codec/heads_compare.py --data DATA --models gpu_chain=OLD one_step=models/codec-v2 "
        "--out outs/codec_v2 (OLD: models/codec-v2 at commit ab842f6)",
    ),
    "codec_levels": (codec_levels, "experiments/codec/levels.sh three DATA"),
    "codec_level_probes": (codec_level_probes, "experiments/codec/levels.sh MODE DATA, MODE as in the table"),
    "state_bytes": (state_bytes, "python experiments/codec/state_bytes.py --data DATA"),
    "codec_v2_format": (
        partial(rd_change, CODEC_V2_FORMAT3, CODEC_V2_FORMAT4, ("format 3", "format 4")),
        "experiments/gpu/codec.sh collect DATA RUN at commits cacd75c (rd_format3.json) and b5ed400 (rd_format4.json)",
    ),
    "codec_v2_format5": (
        partial(rd_change, CODEC_V2_FORMAT4, rd_of(CODEC_V2), ("format 4", "format 5")),
        "experiments/gpu/codec.sh collect DATA RUN at commits b5ed400 (rd_format4.json) and da78422 (rd.json)",
    ),
    "decoder_probe": (decoder_probe, "experiments/codec/decoder_probe.py --data DATA"),
    "decoder_side": (
        decoder_side,
        "experiments/codec/decoder_probe.py --data DATA --model OLD --widths --steps 3000 --out "
        "outs/codec_decoder_side/decoder and, beside it, experiments/codec/lrp_probe.py --data DATA --model OLD "
        "(OLD: models/codec-v2 at commit 1cb62f4)",
    ),
    "analysis_blocks": (analysis_change, "experiments/codec/heads.sh finetune DATA"),
    "analysis_blocks_scratch": (
        lambda: analysis_change(
            "codec_heads_scratch", "`heads_scratch.yaml` trained from scratch", change="analysis_blocks=2"
        ),
        "experiments/codec/heads.sh scratch DATA",
    ),
    "analysis_stem": (
        lambda: analysis_change(
            "codec_stem",
            "`heads_scratch.yaml` trained from scratch",
            arm="stem",
            change="skip_from_stem=true",
            cores="respectively: the control on one core, stem on two threads",
        ),
        "experiments/codec/heads.sh stem DATA",
    ),
    "analysis_both": (
        lambda: analysis_change(
            "codec_stem_blocks",
            "`heads_scratch.yaml` trained from scratch",
            arm="both",
            change="analysis_blocks=2 skip_from_stem=true",
            cores="respectively: the control on one core, both on one core; part of its epoch 3 ran on two threads, "
            "and only that part's time is counted",
        ),
        "experiments/codec/heads.sh both DATA",
    ),
    "clip_quantiles": (
        lambda: analysis_change(
            "codec_clip",
            "`heads_scratch.yaml` trained from scratch",
            arm="clip",
            change="clip_quantiles=false",
            cores="respectively: the control on one core, clip on one core until part-way through epoch 4, then on "
            "two threads; epoch 4's time counts only the part after that restart",
        ),
        "experiments/codec/heads.sh clip DATA",
    ),
    "finetune_clip": (
        lambda: analysis_change(
            "codec_finetune_clip", arm="clip", change="clip_quantiles=false", cores="on one core each"
        ),
        "experiments/codec/heads.sh finetune_clip DATA",
    ),
    "codec_next_probe": (
        lambda: analysis_change(
            "codec_next_probe",
            "`heads_scratch.yaml` trained from scratch",
            arm="next",
            change="analysis_blocks=2 clip_quantiles=false",
        ),
        "experiments/codec/heads.sh next DATA",
    ),
    "analysis_skip64": (
        lambda: analysis_change(
            "codec_skip64",
            FULL_DESIGN_FROM_SCRATCH,
            arm="skip64",
            change="skip_channels=64",
        ),
        "experiments/codec/heads.sh skip64 DATA",
    ),
    "analysis_latent16": (
        lambda: analysis_change(
            "codec_latent16",
            FULL_DESIGN_FROM_SCRATCH,
            arm="latent16",
            change="latent_size=16",
            cores="respectively: the control on one core, latent16 alone on two threads",
        ),
        "OMP_NUM_THREADS=2 experiments/codec/heads.sh latent16 DATA",
    ),
    "full_subpositions_progress": (
        full_run_progress,
        "OMP_NUM_THREADS=2 python src/train_codec.py --data DATA --out runs/codec_full_subpositions --recipe "
        "jobs/configs/codec/full_base.yaml --no-wandb --steps train export context=subpositions, then its history.json "
        "and config.yaml copied to outs/codec_full_subpositions/",
    ),
    "codec_speed_change": (  # the base and the sub-position model, each with the coder of its time
        partial(
            speed_table,
            {
                "checkerboard (486cffa0b41a)": f"{CODEC_V2}bench_codec.json",
                "sub-positions": f"{CODEC_V2_SUBPOSITIONS_3EP}bench_codec.json",
            },
        ),
        "at commit 4812c86: bench/bench.py --data DATA --only codec --threads 1 --out "
        "outs/codec_v2_subpositions_3ep/bench_codec.json, and with --codec-model OLD (models/codec-v2 at commit "
        "da78422) --out outs/codec_v2/bench_codec.json",
    ),
    "subpositions_six_epochs": (
        partial(
            finetune_change, CODEC_V2, CODEC_V2_SUBPOSITIONS_3EP, CODEC_V2_SUBPOSITIONS_6EP, ("3 epochs", "6 epochs")
        ),
        "mkdir -p RUN/base/model; git archive da78422 models/codec-v2 | tar -x --strip-components=2 -C "
        "RUN/base/model; experiments/gpu/codec.sh collect DATA RUN at commit 902f722 (jobs/configs/codec/full.yaml, "
        "now full_context.yaml, 6 epochs), then outs/codec_v2_subpositions/ moved to outs/codec_v2_subpositions_6ep/",
    ),
    "floor_levels": (
        partial(
            finetune_change,
            CODEC_V2_SUBPOSITIONS_6EP,
            CODEC_V2_SUBPOSITIONS_6EP,
            CODEC_V2_FLOORS_1P5X,
            ("6 epochs", "levels at the floors"),
        ),
        "mkdir -p RUN/base/model; git archive 902f722 models/codec-v2 | tar -x --strip-components=2 -C "
        "RUN/base/model; experiments/gpu/codec.sh collect DATA RUN at commit 9c53500 (jobs/configs/codec/full.yaml "
        "with the 1 bpp levels drawn 1.5 times as often), then outs/codec_v2_subpositions/ moved to "
        "outs/codec_v2_floors_1p5x/",
    ),
    "floor_weights_levels": (
        partial(
            finetune_change,
            CODEC_V2_SUBPOSITIONS_6EP,
            CODEC_V2_FLOORS_1P5X,
            CODEC_V2_FLOORS_3X,
            ("1.5 times", "the middle 3 times"),
            "1 CPU thread, beside the other arm",
        ),
        "the CPU commands in jobs/configs/codec/full_levels.yaml's header, then experiments/gpu/codec.sh collect DATA "
        "RUN at commit 1cb62f4 (then full.yaml); outs/codec_v2_subpositions/ then copied to outs/codec_v2_floors_3x/",
    ),
    "decoder_step_levels": (
        partial(
            finetune_change,
            CODEC_V2_FLOORS_3X,
            CODEC_V2_FLOORS_3X,
            CODEC_V2_SUBPOSITIONS,
            ("levels step", "decoder trained on"),
            "1 CPU thread beside a probe, then 2 alone",
        ),
        "the CPU commands in jobs/configs/codec/full.yaml's header, then experiments/gpu/codec.sh collect DATA RUN",
    ),
    "floor_weights": (
        partial(
            floor_arms,
            {
                "6e92633d9e53 (1 bpp levels 1.5 times as often, shipped before)": CODEC_V2_FLOORS_1P5X,
                "the three 1 bpp levels twice as often": "codec_v2_floors_2x/",
                "the middle one 3 times, its neighbours 1.5 times (shipped until 1cb62f4)": CODEC_V2_FLOORS_3X,
            },
        ),
        "the CPU commands in jobs/configs/codec/full_levels.yaml's header (shipped arm, then "
        "experiments/gpu/codec.sh collect DATA RUN at commit 1cb62f4), and beside it the same with "
        "'rd_level_weights=[1,1,2,2,2,1,1,1,1,1,0.5]' after --no-wandb in RUN2, whose history.json, config.yaml and "
        "rd/rd.json are copied to outs/codec_v2_floors_2x/",
    ),
    "floor_arms": (
        partial(
            floor_arms,
            {
                "fd696459458a (6 epochs, shipped before)": CODEC_V2_SUBPOSITIONS_6EP,
                "levels at the floors, the top drawn half as often": "codec_v2_floors_unweighted/",
                "the same, and the 1 bpp levels 1.5 times as often (shipped until 9c53500)": CODEC_V2_FLOORS_1P5X,
            },
        ),
        "experiments/gpu/codec.sh collect DATA RUN at commit 9c53500 (jobs/configs/codec/full.yaml, RUN/base/model as "
        "in its header; outs/codec_v2_subpositions/ then moved to outs/codec_v2_floors_1p5x/); "
        "python src/train_codec.py --data DATA --out RUN2 --recipe jobs/configs/codec/full.yaml --no-wandb "
        "'rd_level_weights=[1,1,1,1,1,1,1,1,1,1,0.5]' with the same RUN2/base/model, then its history.json, "
        "config.yaml and rd/rd.json copied to outs/codec_v2_floors_unweighted/",
    ),
    "coder_speedup": (
        partial(
            speed_table,
            {
                "4a318be8491e, coder at 4812c86": f"{CODEC_V2_SUBPOSITIONS_3EP}bench_codec.json",
                "fd696459458a, coder now": f"{CODEC_V2_SUBPOSITIONS_6EP}bench_codec.json",
            },
        ),
        "at commit 902f722: bench/bench.py --data DATA --only codec --threads 1 --out "
        "outs/codec_v2_subpositions_6ep/bench_codec.json (and the row above's)",
    ),
    "subpositions_finetune": (
        partial(finetune_change, CODEC_V2, CODEC_V2, CODEC_V2_SUBPOSITIONS_3EP, ("checkerboard", "sub-positions")),
        "mkdir -p RUN/base/model; git archive da78422 models/codec-v2 | tar -x --strip-components=2 -C "
        "RUN/base/model; experiments/gpu/codec.sh collect DATA RUN (jobs/configs/codec/full.yaml at 3 epochs, commit "
        "4812c86), then outs/codec_v2_subpositions/ moved to outs/codec_v2_subpositions_3ep/",
    ),
    "analysis_subpositions": (
        lambda: analysis_change(
            "codec_subpositions",
            FULL_DESIGN_FROM_SCRATCH,
            arm="subpositions",
            change="context=subpositions",
            cores="respectively: the control on one core, subpositions on two threads, its first half beside a probe",
        ),
        "OMP_NUM_THREADS=2 experiments/codec/heads.sh subpositions DATA",
    ),
    "analysis_depth": (
        lambda: analysis_change(
            "codec_blocks8",
            FULL_DESIGN_FROM_SCRATCH,
            arm="blocks8",
            change="analysis_blocks=8",
            cores="on one core each, blocks4 and blocks8 side by side",
            also={"blocks4": "analysis_blocks=4"},
        ),
        "experiments/codec/heads.sh blocks4 DATA and, beside it, experiments/codec/heads.sh blocks8 DATA",
    ),
    "analysis_width": (
        lambda: analysis_change(
            "codec_width100",
            FULL_DESIGN_FROM_SCRATCH,
            arm="width100",
            change="analysis_width=1",
            cores="on one core each, width50 and width100 side by side",
            also={"width50": "analysis_width=0.5"},
        ),
        "experiments/codec/heads.sh width50 DATA and, beside it, experiments/codec/heads.sh width100 DATA",
    ),
    "context_probe": (context_probe, "experiments/codec/context_probe.py --data DATA --model RUNS/codec_v2_base/model"),
    "channel_context_probe": (channel_context_probe, "experiments/codec/channel_context_probe.py --data DATA"),
    "group_context_probe": (
        group_context_probe,
        "experiments/codec/group_context_probe.py --data DATA --split position and, beside it, "
        "experiments/codec/group_context_probe.py --data DATA --split channel; then "
        "experiments/codec/group_context_probe.py --data DATA --split position --kernel 3 --features 32 "
        "--hidden 96 --out outs/codec_group_context_probe/small",
    ),
    "latent_split": (
        latent_split,
        "experiments/codec/latent_split.py --data DATA --models shipped=models/codec-v2 "
        "control=RUNS/codec_skip64_control/model "
        + " ".join(f"{arm}=RUNS/codec_{arm}_{arm}/model" for arm in ANALYSIS_ARMS),
    ),
}
