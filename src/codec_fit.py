"""Refit a trained codec's entropy model to its latents on the training split; writes RUN/codec.pt.

    python src/codec_fit.py --run RUN --data PATH [--images 10000] [--steps 600]

Encoder and decoder stay frozen and the medians (hence the quantised latents) stay as trained;
only the factorized prior's densities and CDF tails move, to minimise the real code length.
codec.py and rd_eval.py use RUN/codec.pt in preference to RUN/best.pt when it exists.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cifarae import checkpoint
from cifarae.codec import fit_entropy_model, load_codec_checkpoint, training_images
from cifarae.errors import cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="codec run directory (its best.pt is refitted)")
    p.add_argument("--data", required=True, help="CIFAR-10 source (the run's training split is used)")
    p.add_argument("--images", type=int, default=10000, help="training images to fit on (stratified subset)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args(argv)
    ckpt, cfg, model = load_codec_checkpoint(args.run, "best")
    images = training_images(args.data, cfg, args.images, args.cache_dir)
    t0 = time.perf_counter()
    stats = fit_entropy_model(model, images, steps=args.steps, lr=args.lr)
    stats["seconds"] = time.perf_counter() - t0
    path = Path(ckpt["path"]).parent / "codec.pt"
    checkpoint.save_atomic(
        checkpoint.derived(ckpt, model.state_dict(), codec_fit={**stats, "source": ckpt["path"]}), path
    )
    print(
        f"{ckpt['path']}: estimated rate on {stats['images']} training images "
        f"{stats['bpp_before']:.3f} -> {stats['bpp_after']:.3f} bpp ({stats['seconds']:.0f} s); wrote {path}"
    )


if __name__ == "__main__":
    main()
