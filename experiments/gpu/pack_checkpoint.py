"""Slim checkpoints for shipping off a device machine: run metadata and inference weights only.

    python experiments/gpu/pack_checkpoint.py SRC DST [--only-prefix backbone.]

SRC is a run directory (its best.pt) or a checkpoint file.
experiments/gpu/run.sh's report calls this with PACK=DIR.
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
    args = p.parse_args(argv)
    ckpt = checkpoint.load(args.src, "best")
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_atomic(checkpoint.slim(ckpt, args.only_prefix), args.dst)
    print(f"{ckpt['path']} -> {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
