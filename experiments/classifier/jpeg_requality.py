"""Re-encode CIFAR-10 at another JPEG quality: a probe of what JPEG loss costs the classifier.

    python experiments/classifier/jpeg_requality.py SOURCE OUT --quality 50

SOURCE is anything ``cifarae.data`` reads (archive, image folder, torchvision layout). OUT gets an
image-folder tree, train/<class>/NNNNN.jpg and test/<class>/NNNNN.jpg, written by Pillow at
--quality (its default 4:2:0 subsampling), in the source's order, so the train/validation split and
its subsets pick the same images. It prints the mean PSNR of the re-encoded images against SOURCE.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cifarae import metrics, rd
from cifarae.data import prepare
from cifarae.errors import UserError, cli_main


def reencode(image_chw: torch.Tensor, quality: int) -> tuple[bytes, np.ndarray]:
    """(JPEG file, its H x W x 3 decode) of one 3 x H x W uint8 image, by rd.pillow_roundtrip."""
    coded = rd.pillow_roundtrip(image_chw.unsqueeze(0), "JPEG", quality)
    return coded.files[0], coded.decoded[0].permute(1, 2, 0).numpy()


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("out", type=Path)
    p.add_argument("--quality", type=int, default=50)
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 95:
        raise UserError(f"--quality {args.quality} must be between 1 and 95 (Pillow's JPEG range)")
    data = torch.load(prepare(args.source), weights_only=True, map_location="cpu")
    psnr = {}
    for split in ("train", "test"):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        errors = []
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            raw, decoded = reencode(image, args.quality)
            folder = args.out / split / data["classes"][label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.jpg").write_bytes(raw)
            diff = decoded.astype(np.float64) - image.permute(1, 2, 0).numpy()
            errors.append(np.mean(diff**2))
        psnr[split] = float(metrics.psnr(torch.tensor(errors, dtype=torch.float64), peak=255).mean())
    print(json.dumps({"quality": args.quality, "psnr_vs_source_db": psnr}))


if __name__ == "__main__":
    main()
