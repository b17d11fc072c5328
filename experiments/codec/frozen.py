"""What the probes on a frozen codec share: their arguments, its latents cached once, a new entropy-model part
fitted on the estimated rate, and each level's estimated bits and PSNR without and with it (context_probe.py,
channel_context_probe.py, group_context_probe.py; decoder_probe.py and latent_split.py use the latents and the PSNR)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from compressai.ops import quantize_ste
from torch import nn

from cifarae import data as data_lib
from cifarae.codec import load_codec
from cifarae.errors import UserError
from cifarae.files import write_atomic
from cifarae.metrics import psnr

PIXELS = 32 * 32  # bits per image -> bits per pixel
Bits = dict[str, torch.Tensor]  # each image's bits of each part of the coded latent, e.g. {"latent": .., "hyper": ..}


def entropy_probe_args(
    doc: str, model: str | None, train: int, epochs: int, out: str, extra: Callable | None = None
) -> argparse.Namespace:
    """The command line of a probe that fits an entropy-model part on a frozen codec (``model``, ``train``, ...:
    its defaults, those of the run behind its outs/ folder; ``extra(parser)`` adds the probe's own)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    if extra is not None:
        extra(ap)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=model, required=model is None, help="a shipped model folder or a run")
    ap.add_argument("--train", type=int, default=train)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--out", default=out)
    return ap.parse_args()


def correction(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """A pointwise network to a correction of (means, log-scales), its last layer at zero: added to the
    parameters it corrects, a new context starts as none."""
    net = nn.Sequential(
        nn.Conv2d(inputs, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, outputs, 1)
    )  # fmt: skip
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def rounded(y_g: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Values rounded about their means, with the straight-through gradient (as the files and training round)."""
    return quantize_ste(y_g - means) + means


def frozen_skip_codec(path: str):
    """The codec model at ``path``, frozen in float32, after checking it has what the probes that reorder its
    coding need: a skip latent and a checkerboard context."""
    torch.manual_seed(0)
    model = load_codec(path).model.float().eval().requires_grad_(False)
    if model.latent_codec.context is None or model.to_skip is None:
        raise UserError(f"{path} needs a skip latent and a checkerboard context; probe models/codec-v2")
    return model


@torch.no_grad()
def check_same_bits(model, rate: Callable, latents: tuple, order: str) -> None:
    """Print the middle level's bits per image as the model codes them and in the probe's ``order`` without its
    new part, ``rate(None, ...)``: the two must agree before anything is fitted."""
    y_val = latents[3]
    q = torch.full((len(y_val),), model.middle_level)
    shipped_bits = -torch.log2(model.latent_codec(y_val, q)[1]).sum().item() / len(y_val)
    probe_bits = sum(rate(None, y_val, q, noisy=False)[0].values()).mean().item()
    print(f"middle level, bits per image: shipped {shipped_bits:.2f}, {order} {probe_bits:.2f}", flush=True)


def hyperprior_side(lc, y: torch.Tensor, quality: torch.Tensor):
    """(gain, y_g, the hyper-latent's likelihoods, the hyperprior's (means, log-scales)) of the frozen latent codec
    ``lc`` on latents ``y`` at levels ``quality``: what the probes' own coding orders start from."""
    gain = lc.gains(quality)
    y_g = y * gain
    z_hat, z_lik = lc.entropy_bottleneck(lc.h_a(y_g))
    h, w = y.shape[-2:]
    return gain, y_g, z_lik, lc.h_s(z_hat - lc.hyper_medians())[:, :, :h, :w]


def main_skip_bits(lc, main: int, gain, y_g, z_lik, means, log_scales, noisy: bool) -> tuple[Bits, torch.Tensor]:
    """({main, skip, hyper}: each image's bits of the main latent (the first ``main`` channels), the skip latent
    and the hyper-latent, y_g_hat / gain) under the probe's (means, log-scales); ``noisy``: the training rate."""
    y_in = y_g if noisy else torch.round(y_g - means) + means
    _, y_lik = lc.gaussian_conditional(y_in, torch.exp(log_scales), means)
    y_bits = -torch.log2(y_lik)
    bits = {
        "main": y_bits[:, :main].flatten(1).sum(1),
        "skip": y_bits[:, main:].flatten(1).sum(1),
        "hyper": -torch.log2(z_lik).flatten(1).sum(1),
    }
    return bits, rounded(y_g, means) / gain


@torch.no_grad()
def cached_latents(model, data: str, train: int, val: int) -> tuple[torch.Tensor, ...]:
    """(training images, their latents, validation images, theirs): ``train`` and ``val`` stratified images."""
    dataset = data_lib.load(data)
    train_images, _ = dataset.subset("train", train)
    val_images, _ = dataset.subset("val", val)
    y_train = torch.cat([model.encode(b.float() / 255) for b in train_images.split(500)])
    y_val = torch.cat([model.encode(b.float() / 255) for b in val_images.split(500)])
    return train_images, y_train, val_images, y_val


@torch.no_grad()
def mean_psnr(model, y_hat: torch.Tensor, images: torch.Tensor) -> float:
    """Mean PSNR over ``images`` of the decoder's output from the latents ``y_hat``."""
    rec = torch.cat([model.decode(b).clamp(0, 1) for b in y_hat.split(500)])
    return psnr((rec - images.float() / 255).pow(2).flatten(1).mean(1)).mean().item()


def fit_on_rate(
    part: nn.Module, bits: Callable[[torch.Tensor, torch.Tensor], Bits], count: int, levels: int, epochs: int
) -> None:
    """Adam with a one-cycle schedule on the mean estimated bpp, ``bits(indexes, levels)``, of batches of ``count``
    cached latents, each image at a random level: ``part``'s parameters alone train."""
    batch = 64
    opt = torch.optim.Adam(part.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=epochs * (count // batch), pct_start=0.05)
    start = time.time()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(count).split(batch):
            if len(idx) < batch:
                continue
            loss = sum(bits(idx, torch.randint(0, levels, (batch,))).values()).mean() / PIXELS
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        mean_bpp = total / (count // batch)
        print(f"epoch {epoch + 1}/{epochs}: train bpp {mean_bpp:.4f} ({time.time() - start:.0f} s)", flush=True)


@torch.no_grad()
def measure_levels(model, variants: dict[str, Callable], y_val: torch.Tensor, images: torch.Tensor) -> list[dict]:
    """Each level's estimated bpp (in all, and of each part) and PSNR on held-out ``images`` for each variant,
    ``variant(y_val, levels) -> (Bits, y_hat)``; the second against the first: its rate saving and PSNR change."""
    rows = []
    first, second = variants
    for level in range(model.latent_codec.levels):
        q = torch.full((len(y_val),), level)
        row = {"level": level}
        for name, variant in variants.items():
            bits, y_hat = variant(y_val, q)
            row[name] = {"bpp": sum(bits.values()).mean().item() / PIXELS, "psnr": mean_psnr(model, y_hat, images)}
            row[name] |= {f"{part}_bpp": b.mean().item() / PIXELS for part, b in bits.items()}
        row["rate_saving_pct"] = 100 * (1 - row[second]["bpp"] / row[first]["bpp"])
        row["psnr_change_db"] = row[second]["psnr"] - row[first]["psnr"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def probe_entropy_part(model, part: nn.Module, rate: Callable, names: tuple[str, str], latents: tuple, args) -> None:
    """Fit ``part`` on the training latents' estimated rate, then measure every level without it (``names[0]``)
    and with it (``names[1]``) and write ARGS.out/probe.json. ``rate(part or None, y, levels, noisy)`` -> (Bits,
    y_hat); ``latents``: cached_latents'."""
    lc = model.latent_codec
    _, y_train, val, y_val = latents
    lc.gaussian_conditional.train()  # noisy likelihoods, differentiable
    start = time.time()
    fit_on_rate(part, lambda idx, q: rate(part, y_train[idx], q, noisy=True)[0], len(y_train), lc.levels, args.epochs)
    part.eval()
    lc.gaussian_conditional.eval()
    variants = {name: partial(rate, p, noisy=False) for name, p in zip(names, (None, part))}
    levels = measure_levels(model, variants, y_val, val)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "minutes": (time.time() - start) / 60, "levels": levels}
    write_atomic(out / "probe.json", json.dumps(result, indent=1))
