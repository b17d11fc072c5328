"""Rate-distortion evaluation of a codec against Pillow's AVIF, WebP and JPEG.

    python src/rd_eval.py --data PATH --model models/codec-v2 --out outs/codec_v2/rd --splits test --limit 2000
        [--refine-steps 30]   # also the same model with encoder-side refinement, and its paired gain

MODEL (a shipped model folder, a codec run directory or a checkpoint) codes every image at each of its
quality levels to a real .cae file (written under OUT/files/), the files are read back and decoded with
the same function as `codec.py decompress`, and bpp is 8 * file bytes / pixels, header included.
Against AVIF (Pillow, speed 0, 4:4:4: whole files and its mdat payload alone), WebP and JPEG's scan
data it reports the PSNR gaps at 0.5/1/2/3 bpp and BD-rates, each with a paired bootstrap interval over
the images. Writes OUT/rd.json, OUT/rd_<split>.png and a W&B table; Pillow's curves are kept in
OUT/baselines/, so a rerun (or another model on the same images) does not code them again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
from pathlib import Path

import torch

from cifarae import data as data_lib
from cifarae import rd, tracking
from cifarae.codec import Refinement, load_codec
from cifarae.codec import format as cae_format
from cifarae.codec.hyperprior_codec import HyperpriorCodec
from cifarae.errors import cli_main


def log_wandb(args, result: dict, rows: list[dict], plots: list[Path]) -> None:
    if args.no_wandb:
        return
    config = {"model": args.model, "splits": args.splits, "limit": args.limit, "refine_steps": args.refine_steps}
    run = tracking.start_run(args.wandb_project, args.out, "rd_eval", config)
    if run is None:
        return
    import wandb

    columns = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("split", "codec", "quality"), k))
    run.log({"rd/points": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
    for path in plots:
        run.log({f"rd/{path.stem}": wandb.Image(str(path))})
    for split, found in result["splits"].items():  # the headline numbers, for the runs table
        for key, value in found["comparisons"]["avif_payload"].items():
            run.summary[f"vs_avif_payload/{split}/{key}"] = value["value"]
    run.finish()
    print(f"W&B ({tracking.wandb_mode()}): logged table rd/points under {args.out}/wandb")


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (dir, .tar.gz or prepared cache .pt)")
    p.add_argument("--model", required=True, help="shipped model folder, codec run directory or checkpoint")
    p.add_argument("--out", type=Path, required=True, help="output directory (rd.json, plots, files/)")
    p.add_argument("--splits", nargs="+", default=["test", "val"], choices=("test", "val"))
    p.add_argument("--limit", type=int, default=0, help=">0: a stratified subset of this many images per split")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--threads", type=int, default=0, help=">0: torch.set_num_threads")
    p.add_argument("--no-files", action="store_true", help="count bytes in memory instead of writing the files")
    p.add_argument("--no-wandb", action="store_true")
    p.add_argument("--wandb-project", default="cifarae")
    p.add_argument("--refine-steps", type=int, default=0, help="also encode with this many refinement steps (0: off)")
    p.add_argument("--refine-lr", type=float, default=Refinement.lr)
    p.add_argument("--refine-lambda-scale", type=float, default=1.0, help="refine at each level's lambda times this")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    refine = Refinement(args.refine_steps, args.refine_lr, args.refine_lambda_scale)
    evaluate(args, load_codec(args.model), load_codec(args.model, refine=refine) if refine.steps else None)


def evaluate(args, codec: HyperpriorCodec, refined: HyperpriorCodec | None = None) -> None:
    """Every quality level of the codec against AVIF, WebP and JPEG, with bootstrap intervals; with
    ``refined`` (the same model with encoder-side refinement) also its curve and its gain over plain."""
    dataset = data_lib.load(args.data, codec.cfg.val_size, codec.cfg.split_seed, args.cache_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "source": str(args.data),
        "model": codec.describe(),
        "psnr": "mean over images of 10*log10(1/MSE) on 8-bit outputs",
        "bpp": "8 * bytes / pixels; ours: whole .cae files, header included",
        "file_format": cae_format.VERSION,  # the container's version: a new one changes the bytes, not the images
        "avif_settings": rd.PILLOW_SETTINGS["AVIF"],
        "bootstrap": {"resamples": args.resamples, "interval": "2.5-97.5 percentiles, images resampled in pairs"},
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "splits": {},
    }
    rows, plots = [], []
    for split in args.splits:
        images, _ = dataset.subset(split, args.limit)
        print(f"[{split}] {len(images)} images")
        file_dir = None if args.no_files else args.out / "files" / split
        ours, stats = rd.hyperprior_curve(codec, images, file_dir)
        cache = args.out / "baselines"  # Pillow's curves, kept: a rerun (or a new model) codes them again for free
        avif = rd.pillow_curve(images, "AVIF", rd.AVIF_QUALITIES, cache)
        webp = rd.pillow_curve(images, "WEBP", rd.WEBP_QUALITIES, cache)
        jpeg = rd.pillow_curve(images, "JPEG", rd.JPEG_QUALITIES, cache)
        for s, pt in zip(stats, ours.points()):
            print(
                f"  cae q{s['level']}: {pt['bpp']:.3f} bpp, PSNR {pt['psnr']:.2f} dB, "
                f"encode {s['encode_img_per_s']:.0f} img/s, decode {s['decode_img_per_s']:.0f} img/s"
            )
        comparisons = {
            "avif_payload": rd.compare(ours, avif, payload=True, resamples=args.resamples),
            "avif_file": rd.compare(ours, avif, payload=False, resamples=args.resamples),
            "webp": rd.compare(ours, webp, payload=False, resamples=args.resamples),
            "jpeg_scan": rd.compare(ours, jpeg, payload=True, resamples=args.resamples),
        }
        refined_points = []
        if refined is not None:
            ours_refined, stats_refined = rd.hyperprior_curve(
                refined, images, None if file_dir is None else file_dir / refined.refine.tag
            )
            refined_points = [{**p, **s} for p, s in zip(ours_refined.points(), stats_refined)]
            for pt in refined_points:
                print(
                    f"  cae q{pt['level']} {refined.refine.tag}: {pt['bpp']:.3f} bpp, PSNR {pt['psnr']:.2f} dB, "
                    f"encode {pt['encode_img_per_s']:.1f} img/s"
                )
            comparisons["refined_vs_plain"] = rd.compare(ours_refined, ours, payload=False, resamples=args.resamples)
            comparisons["refined_vs_avif_payload"] = rd.compare(
                ours_refined, avif, payload=True, resamples=args.resamples
            )
        for name, comp in comparisons.items():
            text = ", ".join(
                f"{k} {v['value']:+.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
                for k, v in comp.items()
                if v["value"] is not None and v["ci95"]
            )
            print(f"  vs {name}: {text}")
        curves = {
            "cae": [{**p, **s} for p, s in zip(ours.points(), stats)],
            "avif_file": [{"quality": q, **p} for q, p in zip(avif.settings, avif.points())],
            "avif_payload": [{"quality": q, **p} for q, p in zip(avif.settings, avif.points(payload=True))],
            "webp": [{"quality": q, **p} for q, p in zip(webp.settings, webp.points())],
            "jpeg_file": [{"quality": q, **p} for q, p in zip(jpeg.settings, jpeg.points())],
            "jpeg_scan": [{"quality": q, **p} for q, p in zip(jpeg.settings, jpeg.points(payload=True))],
        }
        if refined is not None:
            curves["cae_refined"] = refined_points
            result["refinement"] = {"tag": refined.refine.tag, **dataclasses.asdict(refined.refine)}
        result["splits"][split] = {"num_images": len(images), "curves": curves, "comparisons": comparisons}
        path = args.out / f"rd_{split}.png"
        rd.plot_curves(
            [
                ("CAE v2 (ours), whole file", curves["cae"], "o-"),
                *([(f"CAE v2, {refined.refine.tag}", refined_points, "o:")] if refined is not None else []),
                ("AVIF (AV1), payload only", curves["avif_payload"], "d--"),
                ("AVIF, whole file", curves["avif_file"], "d-"),
                ("WebP, whole file", curves["webp"], "s-"),
                ("JPEG, scan data only", curves["jpeg_scan"], "^--"),
            ],
            path,
            f"CIFAR-10 {split} ({len(images)} images)",
        )
        plots.append(path)
        rows += [{"split": split, "codec": name, **pt} for name, pts in curves.items() for pt in pts]
    (args.out / "rd.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'rd.json'} and {', '.join(str(p) for p in plots)}")
    log_wandb(args, result, rows, plots)


if __name__ == "__main__":
    main()
