"""Fit a checkerboard context model to a trained codec's latents; writes RUN/context.pt.

    python src/codec_context.py --run RUN --data PATH [--images 20000] [--epochs 6]

Encoder, decoder and prior stay frozen (the run's codec.pt when src/codec_fit.py wrote one, else
best.pt), so the latents and the reconstructions do not change: only the code length of the
non-anchor half of the latents does (src/cifarae/codec/context.py, CheckerboardContext). codec.py and
rd_eval.py use RUN/context.pt in preference to codec.pt and best.pt when it exists; the fit's
figures go to RUN/context_fit.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cifarae import checkpoint
from cifarae.codec import fit_context, load_codec_checkpoint, training_images
from cifarae.errors import UserError, cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="codec run directory")
    p.add_argument("--data", required=True, help="CIFAR-10 source (the run's training split is used)")
    p.add_argument("--images", type=int, default=20000, help="training images to fit on (stratified subset)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--hidden", type=int, default=192, help="the context network's width")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if min(args.epochs, args.hidden, args.batch_size) < 1 or args.images < 0:
        raise UserError("--epochs, --hidden and --batch-size must be >= 1, and --images >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    which = "codec" if (args.run / "codec.pt").is_file() else "best"
    ckpt, cfg, model = load_codec_checkpoint(args.run, which)
    model.eval().requires_grad_(False)
    images = training_images(args.data, cfg, args.images, args.cache_dir)
    t0 = time.perf_counter()
    context, stats = fit_context(model, images, args.hidden, args.epochs, args.batch_size, args.lr)
    stats.update(seconds=time.perf_counter() - t0, source=ckpt["path"])
    path = Path(ckpt["path"]).parent / "context.pt"
    saved = checkpoint.derived(ckpt, model.state_dict(), context=context.state_dict(), context_fit=stats)
    checkpoint.save_atomic(saved, path)
    path.with_name("context_fit.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(
        f"{ckpt['path']}: estimated rate on {stats['images']} training images "
        f"{stats['bpp_before']:.3f} -> {stats['bpp_after']:.3f} bpp with the context model "
        f"({stats['seconds']:.0f} s); wrote {path}"
    )


if __name__ == "__main__":
    main()
