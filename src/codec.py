"""Compress images to .cae files, and decompress them to PNG.

    python src/codec.py compress IMAGE... -o OUT [--quality Q] [--model MODEL]
    python src/codec.py decompress FILE... -o OUT_DIR [--model MODEL]

Without --model, compress uses the shipped codec (models/codec-v2, a mean-scale hyperprior and a
checkerboard context with quality levels 0 (smallest files) .. 10), and decompress finds the shipped
model that wrote each file from the model tag in its header (the first 2 bytes of its model id). MODEL
is a shipped model folder, a codec run directory or a checkpoint file (src/train_codec.py makes them).
A file is refused by any model but the one that wrote it, and a file of an older format (v1's, or formats
3 and 4, with longer headers) with a one-line "made by an older format" error naming the commit that decodes it.
OUT is a directory (one <stem>.cae per image), or a file name ending in .cae when there is a single
image. --refine-steps N spends N optimisation steps per image at encoding time for a better
rate-distortion point, and keeps the plain file where refining does not pay.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cifarae.codec import SUFFIX, Refinement, bits_per_pixel, load_codec, png_bytes, read_image
from cifarae.codec.shipped import default_model, model_for
from cifarae.errors import UserError, cli_main
from cifarae.files import write_atomic


def output_paths(inputs: list[Path], out: Path, suffix: str) -> list[Path]:
    if len(inputs) == 1 and out.suffix == suffix and not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        return [out]
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / (p.stem + suffix) for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, paths):
        if dst in seen:
            raise UserError(f"{seen[dst]} and {src} would both be written to {dst}; rename one")
        seen[dst] = src
    return paths


def compress(args) -> None:
    refine = Refinement(args.refine_steps, args.refine_lr, args.refine_lambda_scale)
    codec = load_codec(args.model, args.which, refine) if args.model else default_model(refine)
    quality = codec.check_quality(codec.levels // 2 if args.quality is None else args.quality)
    inputs = [Path(p) for p in args.inputs]
    outputs = output_paths(inputs, args.out, SUFFIX)
    images = [read_image(p) for p in inputs]  # read everything first: a bad input writes nothing
    for src, dst, image in zip(inputs, outputs, images):
        data = codec.compress(image.unsqueeze(0), quality)[0]
        write_atomic(dst, data)
        _, h, w = image.shape
        print(f"{src} ({w}x{h}) -> {dst}: {len(data)} bytes, {bits_per_pixel(len(data), h, w):.3f} bpp")


def decompress(args) -> None:
    codec = load_codec(args.model, args.which) if args.model else None
    inputs = [Path(p) for p in args.inputs]
    outputs = output_paths(inputs, args.out, ".png")
    for src, dst in zip(inputs, outputs):
        try:
            data = src.read_bytes()
        except OSError as err:
            raise UserError(f"cannot read {src}: {err.strerror or err}") from None
        try:
            image = (codec or model_for(data)).decompress(data)
        except UserError as err:
            raise UserError(f"{src}: {err}") from None
        write_atomic(dst, png_bytes(image))  # only a fully decoded, checked image is written
        print(f"{src} -> {dst} ({image.shape[2]}x{image.shape[1]})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, inputs, out_help in (
        ("compress", "PNG/JPEG images of any size", "output directory, or a .cae file for one image"),
        ("decompress", f"{SUFFIX} files", "output directory for the PNGs (or a .png file for one input)"),
    ):
        s = sub.add_parser(name, help=f"{name} {inputs}")
        s.add_argument("inputs", nargs="+", metavar="FILE", help=inputs)
        s.add_argument("-o", "--out", required=True, type=Path, help=out_help)
        s.add_argument("--model", help="shipped model folder, codec run directory or checkpoint (default: models/)")
        s.add_argument("--which", default="best", choices=("best", "last"), help="checkpoint of a run directory")
        if name == "compress":
            s.add_argument("--quality", type=int, help="quality level, 0 (smallest files) up (default: the middle one)")
            s.add_argument("--refine-steps", type=int, default=0, help="encoder-side latent refinement steps (0: off)")
            s.add_argument("--refine-lr", type=float, default=Refinement.lr, help="refinement step size")
            s.add_argument(
                "--refine-lambda-scale", type=float, default=1.0, help="refine at rd_lambda times this (<1: fewer bits)"
            )
    return p


@cli_main
def main(argv=None):
    args = parser().parse_args(argv)
    {"compress": compress, "decompress": decompress}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
