"""Slim checkpoints for shipping off a device machine: run metadata and inference weights only.

    python experiments/gpu/pack_checkpoint.py SRC DST [--only-prefix backbone.] [--float16]

SRC is a run directory (its codec.pt when codec_fit.py wrote one, else best.pt) or a checkpoint
file. --float16 halves the transforms (a 4.5M-parameter codec: 17.9 -> 9 MB, under what one
device call may bring back); the entropy model stays float32. experiments/gpu/run.sh's report
and codecs call this with PACK=DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarae import checkpoint
from cifarae.errors import cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="run directory or checkpoint file")
    p.add_argument("dst", type=Path, help="checkpoint file to write")
    p.add_argument("--only-prefix", default="", help="keep only the weights under this prefix, e.g. backbone.")
    p.add_argument("--float16", action="store_true", help="store the transforms in float16")
    args = p.parse_args(argv)
    which = "codec" if args.src.is_dir() and (args.src / "codec.pt").is_file() else "best"
    ckpt = checkpoint.load(args.src, which)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_atomic(checkpoint.slim(ckpt, args.only_prefix, args.float16), args.dst)
    print(f"{ckpt['path']} -> {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
