"""How much of AV1's lead comes from the data's JPEG block grid? (issue #26: "say what you find about it")

The archive's images are JPEG q75: 8x8 DCT blocks for luma and, after 4:2:0 subsampling, 16x16 blocks of
image for chroma, on a grid that starts at pixel (0, 0), where AV1's transform blocks start too. Each
test image is moved so that the JPEG grid stays on AV1's (by 16 pixels) or falls between (by 4), in two
ways with opposite biases:
- rolled (cyclic shift): the content and size stay; the image's own edges meet in a seam, which sits on
  a block edge after a 16-pixel roll and inside AV1's blocks after a 4-pixel one, so the seam's cost
  adds to the misalignment's (an upper bound);
- padded (edges replicated above and to the left; PSNR on the original 32x32 pixels, bits per original
  pixel): no seam, but the aligned version codes more padding (a lower bound).
AVIF (payload) codes every version; the shipped codec (whole files) the rolled ones. The BD-rate of the
misaligned against the aligned version says what the grid is worth to each coder.

    python experiments/codec/jpeg_grid.py --data DATA [--images 300] [--out outs/codec_jpeg_grid]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cifarae import data as data_lib
from cifarae.codec.shipped import default_model
from cifarae.errors import cli_main
from cifarae.files import write_atomic
from cifarae.rd import AVIF_QUALITIES, bd_rate, hyperprior_curve, interpolate, per_image_psnr, pillow_roundtrip

SHIFTS = {"aligned": 16, "misaligned": 4}


def avif_points(images: torch.Tensor, pad: int = 0) -> list[dict]:
    """AVIF's payload at each quality: bits per pixel of ``images`` against PSNR on them. With ``pad``, the
    images are coded with that many replicated rows and columns above and to the left, which are then cut."""
    coded_images = F.pad(images.float(), (pad, 0, pad, 0), mode="replicate").to(torch.uint8) if pad else images
    points = []
    for q in AVIF_QUALITIES:
        coded = pillow_roundtrip(coded_images, "AVIF", q)
        psnr = per_image_psnr(images, coded.decoded[:, :, pad:, pad:])
        bpp = 8 * float(coded.payload_bytes.mean()) / (images.shape[2] * images.shape[3])
        points.append({"bpp": bpp, "psnr": float(np.mean(psnr))})
    return points


def summary(aligned: list[dict], misaligned: list[dict]) -> dict:
    return {
        "bd_rate_pct": bd_rate(misaligned, aligned),
        "psnr_change_db@2bpp": interpolate(misaligned, 2.0) - interpolate(aligned, 2.0),
    }


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the JPEG q75 CIFAR-10 archive (or its prepared cache)")
    p.add_argument("--images", type=int, default=300, help="stratified test images (seed 0)")
    p.add_argument("--out", type=Path, default=Path("outs/codec_jpeg_grid"))
    args = p.parse_args(argv)
    dataset = data_lib.load(args.data)
    images = dataset.images["test"][data_lib.stratified_subset(dataset.labels["test"], args.images, seed=0)]
    codec = default_model()
    points = {"rolled": {}, "padded": {}}
    for name, shift in SHIFTS.items():
        rolled = torch.roll(images, shifts=(shift, shift), dims=(2, 3))
        ours, _ = hyperprior_curve(codec, rolled, None)
        points["rolled"][name] = {"avif_payload": avif_points(rolled), "codec": ours.points()}
        points["padded"][name] = {"avif_payload": avif_points(images, pad=shift)}
        print(name, json.dumps({k: v[name] for k, v in points.items()}), flush=True)
    result = {
        "what": " ".join(__doc__.split("\n\n")[1].split()),
        "images": f"{args.images} stratified test images (seed 0) of {args.data}",
        "avif_settings": {"qualities": list(AVIF_QUALITIES), "speed": 0, "subsampling": "4:4:4"},
        "codec": f"the shipped codec, every quality level, whole files: {codec.describe()}",
        "points": points,
        "misaligned_vs_aligned": {
            f"{how}/{coder}": summary(points[how]["aligned"][coder], points[how]["misaligned"][coder])
            for how, coder in (("rolled", "avif_payload"), ("rolled", "codec"), ("padded", "avif_payload"))
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "jpeg_grid.json", json.dumps(result, indent=1))
    print(json.dumps(result["misaligned_vs_aligned"], indent=1))


if __name__ == "__main__":
    main()
