"""Rate-distortion evaluation of codec runs against Pillow's JPEG, WebP and AVIF.

A hyperprior (v2) codec, a run or a shipped model folder, is measured at each of its quality levels
against AVIF (Pillow, speed 0, 4:4:4: whole files and its mdat payload alone), WebP and JPEG, with
the PSNR gaps at 0.5/1/2/3 bpp and BD-rates, each with a paired bootstrap interval over the images:

    python src/rd_eval.py --data PATH --runs models/codec-v2 --out outs/codec/rd --splits test --limit 2000
        [--refine-steps 30]   # also the same model with encoder-side refinement, and its paired gain

    python src/rd_eval.py --data PATH --runs RUN [RUN ...] --out outs/rd [--splits test val] [--limit N]
        [--reuse OLD/rd.json] [--refine-steps 50 --refine-lambda-scales 1 0.6]

Each RUN (one rate-distortion lambda each) compresses every image of the split to a real .cae
file (written under OUT/files/), the files are read back and decoded with the same function as
`codec.py decompress`, and bpp is 8 * file bytes / pixels, header included (also reported
without it). Writes OUT/rd.json, OUT/rd_<split>.png and a W&B table; prints the floors.
--reuse takes the points of models already measured in an earlier rd.json (same model id, split
and image count) instead of coding those images again: adding one lambda costs one run.
--refine-steps N encodes with encoder-side latent refinement (src/cifarae/codec/refinement.py),
at rd_lambda times --refine-lambda-scales (one value for every run, or one per run; a run may be
given twice with two scales). --reuse takes several rd.json files, so runs measured in parallel
jobs merge into one curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from cifarae import data as data_lib
from cifarae import rd, tracking
from cifarae.codec import Refinement, load_codec
from cifarae.codec.hyperprior_codec import HyperpriorCodec
from cifarae.errors import UserError, cli_main


def log_wandb(args, result: dict, rows: list[dict], plots: list[Path]) -> None:
    if args.no_wandb:
        return
    config = {"runs": args.runs, "splits": args.splits, "limit": args.limit, "refine_steps": args.refine_steps}
    run = tracking.start_run(args.wandb_project, args.out, "rd_eval", config)
    if run is None:
        return
    import wandb

    columns = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("split", "codec", "quality"), k))
    run.log({"rd/points": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
    for path in plots:
        run.log({f"rd/{path.stem}": wandb.Image(str(path))})
    for split, floors in result["floors"].items():
        run.summary[f"floors/{split}/all_pass"] = floors["all_pass"]
    run.finish()
    print(f"W&B ({tracking.wandb_mode()}): logged table rd/points under {args.out}/wandb")


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (dir, .tar.gz or prepared cache .pt)")
    p.add_argument("--runs", nargs="+", required=True, help="codec run directories or checkpoints (one per lambda)")
    p.add_argument("--out", type=Path, required=True, help="output directory (rd.json, plots, files/)")
    p.add_argument("--splits", nargs="+", default=["test", "val"], choices=("test", "val"))
    p.add_argument("--limit", type=int, default=0, help=">0: a stratified subset of this many images per split")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--threads", type=int, default=0, help=">0: torch.set_num_threads")
    p.add_argument("--no-files", action="store_true", help="count bytes in memory instead of writing the files")
    p.add_argument("--no-wandb", action="store_true")
    p.add_argument("--wandb-project", default="cifarae")
    p.add_argument("--refine-steps", type=int, default=0, help="encoder-side latent refinement steps (0: off)")
    p.add_argument("--refine-lr", type=float, default=Refinement.lr)
    p.add_argument(
        "--refine-lambda-scales", type=float, nargs="+", default=[1.0], help="refine at rd_lambda times this, per run"
    )
    p.add_argument("--resamples", type=int, default=1000, help="hyperprior codecs: bootstrap resamples")
    p.add_argument("--reuse", type=Path, nargs="+", default=[], help="earlier rd.json files whose points to keep")
    args = p.parse_args(argv)
    previous = {}
    for path in args.reuse:
        try:
            old = json.loads(path.read_text())
            previous |= {
                (split, pt["model_id"], pt.get("refine", ""), pts["num_images"]): {**pt, "reused_from": str(path)}
                for split, pts in old["points"].items()
                for pt in pts["cae"]
            }
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"--reuse {path} is not a readable rd.json ({err})") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = args.refine_lambda_scales if args.refine_steps else [1.0]
    if len(scales) == 1:
        scales = scales * len(args.runs)
    if len(scales) != len(args.runs):
        raise UserError(f"--refine-lambda-scales needs one value, or one per run ({len(args.runs)}); got {len(scales)}")
    runs = args.runs
    if len(runs) == 1:
        codec = load_codec(runs[0])
        if isinstance(codec, HyperpriorCodec):
            refine = Refinement(args.refine_steps, args.refine_lr, scales[0])
            return evaluate_hyperprior(args, codec, load_codec(runs[0], refine=refine) if refine.steps else None)
    codecs = [load_codec(r, refine=Refinement(args.refine_steps, args.refine_lr, s)) for r, s in zip(runs, scales)]
    ids = [(c.model_id, c.refine) for c in codecs]
    if len(set(ids)) != len(ids):
        raise UserError("the same model (and refinement) was given twice in --runs / --refine-lambda-scales")
    splits = {(c.cfg.val_size, c.cfg.split_seed) for c in codecs}
    if "val" in args.splits and len(splits) > 1:
        raise UserError(f"--runs use different validation splits {sorted(splits)}; evaluate them separately")
    val_size, split_seed = next(iter(splits))
    dataset = data_lib.load(args.data, val_size, split_seed, args.cache_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "source": str(args.data),
        "note": "measured on the given source; for the JPEG q75 CIFAR-10 archive its decoded pixels are ground truth",
        "psnr": "mean over images of 10*log10(1/MSE) on 8-bit outputs; psnr_of_mean_mse also given",
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "runs": {str(r): c.describe() for r, c in zip(runs, codecs)},
        "refine": {"steps": args.refine_steps, "lr": args.refine_lr, "lambda_scales": scales},
        "points": {},
        "floors": {},
    }
    rows, plots = [], []
    for split in args.splits:
        images, _ = dataset.subset(split, args.limit)
        print(f"[{split}] {len(images)} images")
        ours = []
        for run, codec in zip(runs, codecs):
            name = "-".join(filter(None, [Path(run).name, codec.refine.tag]))
            reused = previous.get((split, codec.model_id.hex(), codec.refine.tag, len(images)))
            if reused is not None:
                ours.append({**reused, "run": str(run)})
                print(f"  cae {name}: reused from {reused['reused_from']} ({reused['bpp']:.3f} bpp)")
                continue
            t0 = time.perf_counter()
            file_dir = None if args.no_files else args.out / "files" / name / split
            point = {"run": str(run), **rd.codec_point(codec, images, file_dir)}
            ours.append(point)
            print(
                f"  cae {name} (lambda={point['rd_lambda']:g}): {point['bpp']:.3f} bpp "
                f"({point['bpp_payload']:.3f} without the {point['header_bytes']:.1f}-byte header), "
                f"PSNR {point['psnr']:.2f} dB, SSIM {point['ssim']:.4f}, encode {point['encode_img_per_s']:.0f} img/s, "
                f"decode {point['decode_img_per_s']:.0f} img/s, peak RSS {point['encode_peak_rss_mb']:.0f}/"
                f"{point['decode_peak_rss_mb']:.0f} MB ({time.perf_counter() - t0:.0f} s)"
            )
        jpeg = rd.baseline_points(images, "JPEG", rd.JPEG_QUALITIES)
        webp = rd.baseline_points(images, "WEBP", rd.WEBP_QUALITIES)
        for pt in jpeg:
            print(
                f"  jpeg q{pt['quality']}: {pt['bpp']:.3f} bpp whole file, {pt['bpp_scan']:.3f} bpp scan data, "
                f"PSNR {pt['psnr']:.2f} dB, SSIM {pt['ssim']:.4f}"
            )
        for pt in webp:
            print(f"  webp q{pt['quality']}: {pt['bpp']:.3f} bpp, PSNR {pt['psnr']:.2f} dB, SSIM {pt['ssim']:.4f}")
        floors = rd.floors(ours, jpeg, webp)
        print(f"[{split}] floors (matched bpp, whole files, header included):")
        print("\n".join(rd.format_floors(floors)))
        result["points"][split] = {"cae": ours, "jpeg": jpeg, "webp": webp, "num_images": len(images)}
        result["floors"][split] = floors
        path = args.out / f"rd_{split}.png"
        rd.plot({"cae": ours, "jpeg": jpeg, "webp": webp}, path, f"CIFAR-10 {split} ({len(images)} images)")
        plots.append(path)
        rows += [{"split": split, **pt} for pt in ours + jpeg + webp]
    (args.out / "rd.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'rd.json'} and {', '.join(str(p) for p in plots)}")
    log_wandb(args, result, rows, plots)


def evaluate_hyperprior(args, codec: HyperpriorCodec, refined: HyperpriorCodec | None = None) -> None:
    """Every quality level of one v2 codec against AVIF, WebP and JPEG, with bootstrap intervals; with
    ``refined`` (the same model with encoder-side refinement) also its curve and its gain over plain."""
    dataset = data_lib.load(args.data, codec.cfg.val_size, codec.cfg.split_seed, args.cache_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "source": str(args.data),
        "model": codec.describe(),
        "psnr": "mean over images of 10*log10(1/MSE) on 8-bit outputs",
        "bpp": "8 * bytes / pixels; ours: whole .cae files, header included",
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
            result["refinement"].pop("objective")
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
    result["floors"] = {}
    log_wandb(args, result, rows, plots)


if __name__ == "__main__":
    main()
