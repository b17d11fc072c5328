"""Would a checkerboard context pay on a codec without one? (issue #26: "a spatial/channel context where it pays")

The probe that led to the library's context (codec/hyperprior.py, config context=checkerboard), run on the
model shipped before it: experiments/codec/v2.sh's base, RUNS/codec_v2_base/model. Its transforms, gains and
hyperprior stay frozen. A checkerboard context (He et al. 2021)
is fitted on top: a masked 5x5 convolution over the decoded anchor latents (CompressAI's
CheckerboardMaskedConv2d) and a pointwise network that turns (hyperprior's mean and log-scale, context)
into new ones, a residual on the hyperprior's, initialised to add zero. Anchors keep the hyperprior's
parameters; only the non-anchor half can gain. Loss: the estimated rate (noisy latents), each image at a
random quality level. Measured on held-out validation images in float (no coder): bits per pixel of the
latents with and without the context, and the PSNR change from the moved means.

    python experiments/codec/context_probe.py --data DATA --model runs/codec_v2_base/model [--train 20000]
        [--epochs 4] [--out outs/codec_context_probe]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from compressai.layers import CheckerboardMaskedConv2d
from compressai.ops import quantize_ste
from torch import nn

from cifarae import data as data_lib
from cifarae.codec import load_codec
from cifarae.errors import UserError, cli_main
from cifarae.files import write_atomic
from cifarae.metrics import psnr


def non_anchor_mask(h: int, w: int) -> torch.Tensor:
    """1 where (i + j) is odd: the half decoded second, with the anchors' context."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((i + j) % 2 == 1).float().view(1, 1, h, w)


class CheckerboardContext(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.context = CheckerboardMaskedConv2d(channels, 2 * channels, 5, padding=2)
        self.fuse = nn.Sequential(
            nn.Conv2d(4 * channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 1),
        )  # fmt: skip
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, anchors_hat: torch.Tensor, hyper_params: torch.Tensor) -> torch.Tensor:
        """(means, log-scales) of every position: the hyperprior's at anchors, refined at non-anchors."""
        ctx = self.context(anchors_hat)
        delta = self.fuse(torch.cat([hyper_params, ctx], dim=1))
        return hyper_params + delta * non_anchor_mask(*anchors_hat.shape[-2:])


def rate_and_hat(lc, ctx, y, quality, noisy: bool):
    """(bits per image of y and z, y_g_hat / gain) with the context (or without, ctx=None)."""
    gain = lc.gains(quality)
    y_g = y * gain
    z = lc.h_a(y_g)
    z_hat, z_lik = lc.entropy_bottleneck(z)
    h, w = y.shape[-2:]
    hyper = lc.h_s(z_hat - lc.hyper_medians())[:, :, :h, :w]
    anchor = 1 - non_anchor_mask(h, w)
    means_h = hyper.chunk(2, 1)[0]
    anchors_hat = (quantize_ste(y_g - means_h) + means_h) * anchor
    params = hyper if ctx is None else ctx(anchors_hat, hyper)
    means, log_scales = params.chunk(2, 1)
    y_in = y_g if noisy else torch.round(y_g - means) + means
    _, y_lik = lc.gaussian_conditional(y_in, torch.exp(log_scales), means)
    bits = -(torch.log2(y_lik).flatten(1).sum(1) + torch.log2(z_lik).flatten(1).sum(1))
    y_hat = quantize_ste(y_g - means) + means
    return bits, y_hat / gain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True, help="a codec without a context (shipped folder or run)")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--out", default="outs/codec_context_probe")
    args = ap.parse_args()
    torch.manual_seed(0)
    codec = load_codec(args.model)
    if codec.lc.context is not None:
        raise UserError(f"{args.model} has a context already; probe a model without one (RUNS/codec_v2_base/model)")
    model = codec.model.float().eval().requires_grad_(False)
    lc = model.latent_codec
    lc.gaussian_conditional.train()  # noisy likelihoods, differentiable
    data = data_lib.load(args.data)
    train, _ = data.subset("train", args.train)
    val, _ = data.subset("val", args.val)
    with torch.no_grad():
        y_train = torch.cat([model.encode(b.float() / 255) for b in train.split(500)])
        y_val = torch.cat([model.encode(b.float() / 255) for b in val.split(500)])
    ctx = CheckerboardContext(y_train.shape[1], args.hidden)
    steps = args.epochs * (len(y_train) // 64)
    opt = torch.optim.Adam(ctx.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps, pct_start=0.05)
    start = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(y_train))
        for idx in perm.split(64):
            if len(idx) < 64:
                continue
            q = torch.randint(0, lc.levels, (64,))
            bits, _ = rate_and_hat(lc, ctx, y_train[idx], q, noisy=True)
            loss = bits.mean() / 1024
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: train bpp {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    ctx.eval()
    lc.gaussian_conditional.eval()
    levels = []
    with torch.no_grad():
        for level in range(lc.levels):
            q = torch.full((len(y_val),), level)
            row = {"level": level}
            for name, c in (("hyperprior", None), ("context", ctx)):
                bits, y_hat = rate_and_hat(lc, c, y_val, q, noisy=False)
                rec = torch.cat([model.decode(b).clamp(0, 1) for b in y_hat.split(500)])
                mse = (rec - val.float() / 255).pow(2).flatten(1).mean(1)
                row[name] = {"bpp": bits.mean().item() / 1024, "psnr": psnr(mse).mean().item()}
            row["rate_saving_pct"] = 100 * (1 - row["context"]["bpp"] / row["hyperprior"]["bpp"])
            levels.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "minutes": (time.time() - start) / 60, "levels": levels}
    write_atomic(out / "probe.json", json.dumps(result, indent=1))


if __name__ == "__main__":
    cli_main(main)()
