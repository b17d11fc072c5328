"""Where do a codec's bits go: its main latent, its skip latent or its hyper-latent? (issue #26)

A codec with a skip latent codes one latent: the main latent's channels (the classifier backbone's output through
the latent head, 8x8) and then the skip latent's (block 1's features through the skip head, 16x16, folded onto the
8x8 grid). channel_context_probe.py found the shipped model's main latent carrying almost none of its bits. This
script measures that split for any codec models, on held-out validation images in float (no coder, the eval-mode
rounding the files use): at every level, the estimated bits per pixel of each part, the share of the main latent's
values that round to a symbol other than zero (the rest cost next to nothing: they are their hyperprior's means),
the PSNR, and the PSNR with every image's decoded main latent replaced by its mean over the images (what the
decoder makes of the main latent's content); and, per model, the transforms' ceiling: the decoder on the unrounded
latent.

    python experiments/codec/latent_split.py --data DATA --models shipped=models/codec-v2 control=RUNS/X/model ...
        [--val 1000] [--out outs/codec_latent_split]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from frozen import PIXELS, mean_psnr

from cifarae import data as data_lib
from cifarae.codec import load_codec
from cifarae.errors import UserError, cli_main
from cifarae.files import write_atomic


@torch.no_grad()
def split(path: str, images: torch.Tensor) -> dict:
    model = load_codec(path).model.float().eval()
    lc = model.latent_codec
    if model.to_skip is None:
        raise UserError(f"{path} has no skip latent: nothing to split")
    main = model.to_latent.out_channels
    y = torch.cat([model.encode(b.float() / 255) for b in images.split(500)])
    levels = []
    for level in range(lc.levels):
        q = torch.full((len(y),), level)
        gain, y_g, z_lik, means, log_scales = lc.coding_parameters(y, q)  # forward()'s, in eval mode
        y_g_hat, y_lik = lc.gaussian_conditional(y_g, torch.exp(log_scales), means)
        y_bits, symbols = -torch.log2(y_lik), torch.round(y_g - means)
        y_hat = y_g_hat / gain
        main_as_mean = torch.cat([y_hat[:, :main].mean(0, keepdim=True).expand_as(y_hat[:, :main]), y_hat[:, main:]], 1)
        levels.append({
            "level": level,
            "main_bpp": y_bits[:, :main].sum().item() / len(y) / PIXELS,
            "skip_bpp": y_bits[:, main:].sum().item() / len(y) / PIXELS,
            "hyper_bpp": -torch.log2(z_lik).sum().item() / len(y) / PIXELS,
            "main_nonzero": (symbols[:, :main] != 0).float().mean().item(),
            "skip_nonzero": (symbols[:, main:] != 0).float().mean().item(),
            "psnr": mean_psnr(model, y_hat, images),
            "psnr_main_as_mean": mean_psnr(model, main_as_mean, images),
        })  # fmt: skip
    params = sum(p.numel() for p in model.parameters())
    return {"main_channels": main, "params": params, "unrounded_psnr": mean_psnr(model, y, images), "levels": levels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="+", required=True, metavar="NAME=PATH", help="shipped folders or runs")
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--out", default="outs/codec_latent_split")
    args = ap.parse_args()
    named = dict(m.split("=", 1) for m in args.models if "=" in m)
    if len(named) != len(args.models):
        raise UserError("--models takes NAME=PATH pairs, e.g. shipped=models/codec-v2")
    images, _ = data_lib.load(args.data).subset("val", args.val)
    models = {}
    for name, path in named.items():
        models[name] = {"path": path, **split(path, images)}
        top = models[name]["levels"]
        shares = ", ".join(f"q{r['level']} {r['main_bpp'] / (r['main_bpp'] + r['skip_bpp']):.1%}" for r in top)
        print(f"{name}: ceiling {models[name]['unrounded_psnr']:.2f} dB; main latent's share of y bits: {shares}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "split.json", json.dumps({"args": vars(args), "models": models}, indent=1))


if __name__ == "__main__":
    cli_main(main)()
