"""README.md's table: the results at a glance, each row linking to its REPORT.md section."""

from __future__ import annotations

import json

from cifarae.rd import interpolate

from .shared import (
    CODEC,
    CODEC_V2_SUBPOSITIONS,
    OBJECTIVES,
    OUTS,
    PARITY_FLOORS,
    PRODUCT_RUNS,
    V1_CODEC,
    cell,
    load,
    md_table,
    mean_at,
    model_note,
    parity_accuracies,
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
    v2 = load(f"{CODEC_V2_SUBPOSITIONS}rd/rd.json")
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
            [f"shipped codec v2 at 1 / 2 bpp, whole files, {n}",
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


TABLES = {
    "readme_results": (
        readme_results,
        "experiments/gpu/run.sh collect; experiments/classifier/run.sh; experiments/gpu/codec.sh collect DATA RUN "
        "(codec v2); " + V1_CODEC,
    ),
}
