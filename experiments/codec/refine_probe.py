"""Probes around encoder-side refinement (docs/codec-log.md §9): what else might move the 2-bpp point.

    python experiments/codec/refine_probe.py --data PATH --run RUN [--far-run RUN] --out outs/codec_refine/probe.json
                                [--images 100] [--prior-images 600]

Every variant codes the same stratified validation subset to real files and decodes them again
(rd.codec_point), so its bpp and PSNR are what a user gets. The variants change only how the
encoder refines the latents, each an objective for Refinement (src/cifarae/codec/refinement.py; the
shipped one is rate_distortion there):
  ste       the shipped refinement: the decoder sees the coded latents with a straight-through
            gradient; the rate is the prior's interval likelihood at the continuous latents
  sga       stochastic Gumbel annealing (Yang et al. 2020): rate and distortion both at a relaxed
            sample of floor/ceil, the temperature annealed 0.5 -> 0.05
  ste_rate  the rate also taken at the straight-through coded latents
  log_mse   per image bits + k * 10 log10(MSE) instead of bits + lambda * MSE: the allocation that
            maximises the mean of per-image PSNRs (k matched to lambda at the MSE --mse-refs give)
--far-run refines another model at several multiples of its own lambda (how far refinement moves
a model along the curve). Two measurements of rate besides: the bytes the entropy coder spends
over the ideal code length of the symbols under the prior's 16-bit tables, and the rate of refined
latents under a factorized prior refitted to refined latents of training images.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch

from cifarae import data, rd
from cifarae.codec import Codec, Refinement, RefinementStep, fit_densities, latent_bits, latent_rate, load_codec
from cifarae.errors import cli_main

REPO = Path(__file__).resolve().parents[2]


def sga_sample(u: torch.Tensor, tau: float) -> torch.Tensor:
    """A relaxed draw of floor(u) or ceil(u), nearer ones likelier (Yang et al. 2020, eq. 9)."""
    lo = torch.floor(u)
    eps = 1e-5
    logits = torch.stack(
        [-torch.atanh((u - lo).clamp(eps, 1 - eps)) / tau, -torch.atanh((lo + 1 - u).clamp(eps, 1 - eps)) / tau], -1
    )
    gumbel = -torch.log((-torch.log(torch.rand_like(logits).clamp_min(1e-20))).clamp_min(1e-20))
    w = torch.softmax((logits + gumbel) / tau, -1)
    return w[..., 0] * lo + w[..., 1] * (lo + 1)


def variant_objective(variant: str, mse_ref: float):
    """The shipped objective with one change (see the module docstring), for Refinement(objective=...): the
    library runs its own loop with it. "ste" is the shipped loss written per image, so that all variants share
    one form (equal to ~0.001 dB); like every variant here it takes the rate under the factorized prior alone."""

    def objective(s: RefinementStep) -> torch.Tensor:
        u = s.y - s.medians
        if variant == "sga":
            u_hat = sga_sample(u, 0.5 * 0.1 ** (s.step / max(1, s.steps - 1)))
        else:
            u_hat = u + (torch.round(u) - u).detach()
        rate_at = s.y if variant in ("ste", "log_mse") else u_hat + s.medians
        x_hat = s.model.decode(u_hat + s.medians)[:, :, : s.height, : s.width]
        mse = (x_hat - s.target).pow(2).flatten(1).mean(1)
        bpp = latent_rate(s.model.entropy_bottleneck, None, rate_at - s.medians) / (s.height * s.width)
        if variant == "log_mse":  # d/dMSE of k*ln(MSE) equals lambda at MSE = mse_ref
            return (bpp + s.lam * mse_ref * torch.log(mse)).sum()
        return (bpp + s.lam * mse).sum()

    objective.__name__ = variant
    return objective


def point(codec: Codec, images: torch.Tensor, **label) -> dict:
    torch.manual_seed(0)  # SGA's draws
    t0 = time.perf_counter()
    p = rd.codec_point(codec, images, None)
    row = {**label, **{k: p[k] for k in ("bpp", "bpp_payload", "psnr", "psnr_of_mean_mse", "ssim")}}
    print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return row


def coder_overhead(codec: Codec, images: torch.Tensor) -> dict:
    """Bytes of the rANS streams vs the ideal code length of the same symbols under the same CDF tables."""
    symbols = codec.symbols(images)
    ideal, actual = [], []
    for sym in symbols:
        bits = 0.0
        for v, i in zip(*codec.coded(sym)):
            k = v - codec.offsets[i]
            bits -= math.log2((codec.cdf[i][k + 1] - codec.cdf[i][k]) / 2**16)
        ideal.append(bits / 8)
        actual.append(sum(len(s) for s in codec.encode_symbols(sym)))
    n = len(images)
    row = {
        "images": n,
        "ideal_bytes": sum(ideal) / n,
        "stream_bytes": sum(actual) / n,
        "overhead_bytes": (sum(actual) - sum(ideal)) / n,
        "overhead_bpp": 8 * (sum(actual) - sum(ideal)) / n / images[0, 0].numel(),
    }
    print("coder overhead", json.dumps(row), flush=True)
    return row


def refitted_prior_rate(codec: Codec, train: torch.Tensor, val: torch.Tensor) -> dict:
    """bpp of refined, coded validation latents under the model's prior and under one refitted to refined
    training latents (the refinement moves the latents; does the prior still fit them?)."""

    def coded(images):  # C x 1 x N, the EntropyBottleneck's layout
        y = torch.cat([codec.symbols(images[i : i + 100]) for i in range(0, len(images), 100)])
        y = (y + codec.medians.view(1, -1, 1, 1)).float().transpose(0, 1)
        return y.reshape(y.shape[0], 1, -1)

    tr, va = coded(train), coded(val)
    eb = copy.deepcopy(codec.model.entropy_bottleneck).float().requires_grad_(True)

    def bpp(v, images):
        return latent_bits(eb, v).sum().item() / images.numel() * 3

    before = {"train": bpp(tr, train), "val": bpp(va, val)}
    fit_densities(eb, tr)
    with torch.no_grad():
        after = {"train": bpp(tr, train), "val": bpp(va, val)}
    row = {"train_images": len(train), "val_images": len(val), "bpp_model_prior": before, "bpp_refitted_prior": after}
    print("refitted prior", json.dumps(row), flush=True)
    return row


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (dir, .tar.gz or prepared cache .pt)")
    p.add_argument("--run", required=True, help="the codec run whose refinement is probed")
    p.add_argument("--far-run", default=None, help="a codec run refined at multiples of its own lambda")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--images", type=int, default=100, help="stratified validation images per variant")
    p.add_argument("--prior-images", type=int, default=600, help="training images for the refitted prior (0: skip)")
    p.add_argument("--mse-refs", type=float, nargs="+", default=[0.0006, 0.0008, 0.0011])
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_codec(args.run)
    ds = data.load(args.data, base.cfg.val_size, base.cfg.split_seed)
    val, _ = ds.subset("val", args.images)
    result = {"run": args.run, "images": len(val), "refine": {"steps": 50, "lr": Refinement.lr}, "points": []}

    def refine(run, variant, scale=1.0, mse_ref=0.0):
        return load_codec(run, refine=Refinement(50, Refinement.lr, scale, variant_objective(variant, mse_ref)))

    rows = result["points"]
    rows.append(point(base, val, run="model", variant="none", scale=None))
    for scale in (0.7, 1.0):
        rows.append(point(refine(args.run, "ste", scale), val, run="model", variant="ste", scale=scale))
    rows.append(point(refine(args.run, "sga"), val, run="model", variant="sga", scale=1.0))
    rows.append(point(refine(args.run, "ste_rate"), val, run="model", variant="ste_rate", scale=1.0))
    for ref in args.mse_refs:
        rows.append(point(refine(args.run, "log_mse", 1.0, ref), val, run="model", variant="log_mse", mse_ref=ref))
    if args.far_run:
        result["far_run"] = args.far_run
        for scale in (1.0, 2.0, 3.0):
            rows.append(point(refine(args.far_run, "ste", scale), val, run="far", variant="ste", scale=scale))
    result["coder_overhead"] = coder_overhead(base, val)
    if args.prior_images:
        # Seed 1, not the split's (Dataset.subset): the sample outs/codec_refine/probe.json was measured on.
        train = ds.images["train"][data.stratified_subset(ds.labels["train"], args.prior_images, 1)]
        result["refitted_prior"] = refitted_prior_rate(refine(args.run, "ste"), train, val)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
