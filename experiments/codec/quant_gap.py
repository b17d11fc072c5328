"""How much a codec's decoder loses to the coder's rounding: PSNR of one decoder fed four kinds of latents.

    python experiments/codec/quant_gap.py --data PATH --runs RUN... --out outs/codec_skip/quant_gap.json [--images 2000]
                             [--checkpoint best|last]

For each codec run (its best.pt, or last.pt) and a stratified subset of the validation split, the decoder gets
  coded:     round(y - median) + median, what it receives from a file (src/codec.py)
  rounded:   round(y), rounding about zero
  noisy:     y + U(-0.5, 0.5), what additive-noise training shows it
  float:     y itself (no quantisation at all)
PSNR is pooled over the subset, on 8-bit outputs, in float32. A decoder trained on noise alone
can do worse on the coded latents than on noisy ones; ste_decoder=true trains it on the coded ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cifarae import checkpoint, data
from cifarae.codec import compressai_adapter
from cifarae.errors import UserError, cli_main
from cifarae.evaluation import load_model
from cifarae.metrics import psnr
from cifarae.tasks import quantize_8bit

REPO = Path(__file__).resolve().parents[2]


@torch.no_grad()
def gap(model, x: torch.Tensor, batch: int = 500) -> dict:
    if model.entropy_bottleneck is None:
        raise UserError("quant_gap.py needs codec runs (entropy_model=factorized); this one is a plain autoencoder")
    medians = compressai_adapter.medians(model.entropy_bottleneck).reshape(1, -1, 1, 1)
    noise = torch.Generator().manual_seed(0)
    feeds = {
        "coded": lambda y: torch.round(y - medians) + medians,
        "rounded": torch.round,
        "noisy": lambda y: y + torch.rand(y.shape, generator=noise) - 0.5,
        "float": lambda y: y,
    }
    sq_err = dict.fromkeys(feeds, 0.0)
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        y = model.encode(xb)
        for name, feed in feeds.items():
            sq_err[name] += float((quantize_8bit(model.decode(feed(y))) - xb).double().pow(2).sum())
    return {f"psnr_{k}": psnr(v / x.numel()) for k, v in sq_err.items()}


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (dir, .tar.gz or prepared cache .pt)")
    p.add_argument("--runs", nargs="+", required=True, help="codec run directories")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--images", type=int, default=2000, help="stratified validation subset")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of each run")
    p.add_argument("--threads", type=int, default=0, help=">0: torch.set_num_threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [load_model(checkpoint.load(run, args.checkpoint)) for run in args.runs]
    split_cfg = models[0][1]  # the runs share the train/val split of the first one's config
    dataset = data.load(args.data, split_cfg.val_size, split_cfg.split_seed)
    images, _ = dataset.subset("val", args.images)
    x = images.float() / 255
    result = {"images": len(images), "split": "val", "checkpoint": args.checkpoint, "runs": {}}
    for run, (model, cfg) in zip(args.runs, models, strict=True):
        row = {"rd_lambda": cfg.rd_lambda, "skip_channels": cfg.skip_channels} | gap(model, x)
        result["runs"][str(run)] = row
        print(run, " ".join(f"{k}={v:.2f}" for k, v in row.items() if k.startswith("psnr")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
