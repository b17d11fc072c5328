"""Held-out photos of any size through the codec: does a codec trained on 32x32 CIFAR-10 images code them?

    python experiments/generalisation/photos.py --photos A.png B.jpg ... --out outs/photos [--model models/codec-v2]

Each photo is coded at every quality level of the shipped codec as a real .cae file (whole file, header
included) and decoded again, and by Pillow's AVIF (speed 0, 4:4:4), WebP and JPEG over a range of
qualities. At these sizes AVIF's container is a few hundred bytes, under 0.02 bpp, so whole files are
compared. Per photo: every point, and BD-rates against each reference where the curves overlap.
Writes OUT/photos.json and OUT/photos_rd.png (one panel per photo).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from cifarae import rd
from cifarae.codec import load_codec, read_image
from cifarae.codec.shipped import default_model
from cifarae.errors import cli_main

# Wider than the CIFAR-10 evaluation's ranges: a large photo costs fewer bits per pixel at one quality.
REFERENCES = {
    "AVIF": (20, 35, 50, 60, 70, 80, 90),
    "WEBP": (5, 20, 40, 60, 75, 90),
    "JPEG": (10, 25, 50, 75, 90, 95),
}


def measure(codec, path: Path) -> dict:
    image = read_image(path).unsqueeze(0)
    _, _, height, width = image.shape
    ours, stats = rd.hyperprior_curve(codec, image, None)
    curves = {"cae": [{"level": s["level"], **p} for s, p in zip(stats, ours.points())]}
    for fmt, qualities in REFERENCES.items():
        curve = rd.pillow_curve(image, fmt, qualities)
        curves[fmt.lower()] = [{"quality": q, **p} for q, p in zip(qualities, curve.points())]
    bd_rates = {name: rd.bd_rate(curves["cae"], curves[name]) for name in ("avif", "webp", "jpeg")}
    speed = {k: float(np.mean([s[k] for s in stats])) for k in ("encode_img_per_s", "decode_img_per_s")}
    print(
        f"{path.name} {width}x{height}: ours {curves['cae'][0]['bpp']:.2f}-{curves['cae'][-1]['bpp']:.2f} bpp, "
        + ", ".join(f"BD-rate vs {k} {'-' if v is None else f'{v:+.1f}%'}" for k, v in bd_rates.items())
    )
    return {"photo": path.name, "width": width, "height": height, "curves": curves, "bd_rate_pct": bd_rates, **speed}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(results))
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    styles = {"cae": ("o-", "CAE v2 (ours)"), "avif": ("d-", "AVIF"), "webp": ("s-", "WebP"), "jpeg": ("^-", "JPEG")}
    for ax, r in zip(axes.flat, results):
        for name, (style, label) in styles.items():
            pts = sorted(r["curves"][name], key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], style, label=label, markersize=3)
        ax.set_title(f"{r['photo']} ({r['width']}x{r['height']})", fontsize=9)
        ax.set_xlim(0, 4)
        ax.set_xlabel("bits per pixel (whole files)", fontsize=8)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", nargs="+", type=Path, required=True, help="PNG/JPEG photos of any size")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", help="codec: shipped model folder or codec run (default: models/codec-v2)")
    args = p.parse_args(argv)
    codec = load_codec(args.model) if args.model else default_model()
    results = [measure(codec, path) for path in args.photos]
    mean_bd = {
        name: float(np.mean(vals)) if (vals := [r["bd_rate_pct"][name] for r in results]) and None not in vals else None
        for name in ("avif", "webp", "jpeg")
    }
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": f"{Path(codec.source).name} (model id {codec.model_id.hex()}, {codec.levels} quality levels)",
        "avif_settings": rd.PILLOW_SETTINGS["AVIF"],
        "bpp": "8 * bytes / pixels, whole files (ours: header included)",
        "psnr": "over the whole photo, RGB, 8-bit",
        "mean_bd_rate_pct": mean_bd,
        "photos": results,
    }
    (args.out / "photos.json").write_text(json.dumps(summary, indent=1))
    plot(results, args.out / "photos_rd.png")
    print(f"mean BD-rate over {len(results)} photos: {mean_bd}; wrote {args.out / 'photos.json'}, photos_rd.png")


if __name__ == "__main__":
    main()
