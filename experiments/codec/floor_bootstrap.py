"""How much a floor measured on an image subset could move with the sample: a paired bootstrap over images.

    python experiments/codec/floor_bootstrap.py --data PATH --runs RUN_A RUN_B --files DIR_A DIR_B --out OUT.json
        [--splits test val] [--limit 1000] [--bpp 2.0] [--resamples 2000]

DIR_A, DIR_B: the files/<point> folders that src/rd_eval.py wrote for two of our points (one <split>/
subfolder each), which should bracket --bpp; RUN_A, RUN_B: the runs that decode them. Every file is
decoded again (its bytes and its PSNR), and Pillow's WebP codes the same images at each quality.
Each resample draws the images with replacement; its mean bpp and PSNR per point give our curve and
WebP's, interpolated at --bpp as the floors are (rd.interpolate). Writes the gain's full-sample value,
mean, 2.5 and 97.5 percentiles, and the share of resamples at or above +1 dB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cifarae import data as data_lib
from cifarae import rd
from cifarae.codec import Codec, load_codec
from cifarae.errors import UserError, cli_main


def our_point(codec: Codec, folder: Path, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (bytes of its file, PSNR of its decode)."""
    paths = sorted(folder.glob("*.cae"))
    if len(paths) != len(images):
        raise UserError(f"{folder} holds {len(paths)} .cae files for {len(images)} images; rerun rd_eval.py with files")
    files = [p.read_bytes() for p in paths]
    decoded = torch.stack([codec.decompress(f) for f in files])
    return np.array([len(f) for f in files], dtype=np.float64), rd.per_image_psnr(images, decoded)


def webp_points(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(qualities x images bytes, qualities x images PSNR) for Pillow's WebP at rd.WEBP_QUALITIES."""
    sizes, psnrs = [], []
    for q in rd.WEBP_QUALITIES:
        coded = rd.pillow_roundtrip(images, "WEBP", q)
        sizes.append(coded.file_bytes)
        psnrs.append(rd.per_image_psnr(images, coded.decoded))
    return np.array(sizes, dtype=np.float64), np.array(psnrs)


def gain_at(bpp: float, ours: list[tuple[np.ndarray, np.ndarray]], webp, pixels: int, idx: np.ndarray) -> float:
    """Our PSNR minus WebP's at ``bpp``, both curves from the images ``idx`` (NaN outside a curve)."""
    curve = [{"bpp": 8 * b[idx].mean() / pixels, "psnr": p[idx].mean()} for b, p in ours]
    webp_curve = [{"bpp": 8 * b[idx].mean() / pixels, "psnr": p[idx].mean()} for b, p in zip(*webp)]
    a, b = rd.interpolate(curve, bpp), rd.interpolate(webp_curve, bpp)
    return float("nan") if a is None or b is None else a - b


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", type=Path, nargs="+", required=True)
    p.add_argument("--files", type=Path, nargs="+", required=True, help="rd_eval.py's files/<point> folders")
    p.add_argument("--splits", nargs="+", default=["test", "val"])
    p.add_argument("--limit", type=int, default=1000, help="the stratified subset rd_eval.py coded (its --limit)")
    p.add_argument("--bpp", type=float, default=2.0)
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if len(args.runs) != len(args.files) or len(args.runs) < 2:
        raise UserError("give one --files folder per run, two runs or more")
    codecs = [load_codec(run) for run in args.runs]
    cfg = codecs[0].cfg
    dataset = data_lib.load(args.data, cfg.val_size, cfg.split_seed)
    rng = np.random.default_rng(args.seed)
    result = {"bpp": args.bpp, "resamples": args.resamples, "runs": [str(r) for r in args.runs], "splits": {}}
    for split in args.splits:
        images, _ = dataset.subset(split, args.limit)
        ours = [our_point(codec, folder / split, images) for codec, folder in zip(codecs, args.files)]
        webp = webp_points(images)
        pixels, n = images.shape[2] * images.shape[3], len(images)
        full = gain_at(args.bpp, ours, webp, pixels, np.arange(n))
        if not np.isfinite(full):
            raise UserError(f"[{split}] our points and WebP's do not both reach {args.bpp:g} bpp; choose another --bpp")
        gains = np.array([gain_at(args.bpp, ours, webp, pixels, rng.integers(0, n, n)) for _ in range(args.resamples)])
        gains = gains[np.isfinite(gains)]  # a resample may leave one curve short of --bpp
        if not len(gains):
            raise UserError(f"[{split}] no resample reaches {args.bpp:g} bpp on both curves; choose another --bpp")
        result["splits"][split] = {
            "images": n,
            "gain_db": full,
            "bootstrap_mean_db": float(gains.mean()),
            "ci95_db": [float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))],
            "share_at_least_1db": float((gains >= rd.FLOOR_MARGIN_DB).mean()),
            "resamples_inside_both_curves": len(gains),
        }
        low, high = result["splits"][split]["ci95_db"]
        share = 100 * result["splits"][split]["share_at_least_1db"]
        print(
            f"[{split}] {n} images: gain at {args.bpp:g} bpp {full:+.3f} dB, 95% interval "
            f"[{low:+.3f}, {high:+.3f}], >= +1 dB in {share:.1f}% of resamples"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
