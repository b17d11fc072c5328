"""Is the shipped codec's high-rate end held back by its decoder? (issue #26: the 2-bpp floor)

The shipped model's curve flattens at the top: 34.0, 35.0 and 35.8 dB at 2.5, 3.0 and 3.6 bpp, where AVIF's
payload climbs 6 dB a bpp. This probe keeps the model's encoder, gains and entropy model frozen, so every
level's bits stay exactly those of its files, and asks what the decoder alone can add. It measures, on held-out
validation images:

- the transforms' ceiling: the decoder on the unrounded latent (no quantisation at all);
- each level's PSNR with the shipped decoder (the eval-mode rounding the files use, decoded in float32);
- the same after training the decoder alone on the rounded latents for a fixed budget of steps, each image at a
  random level with its level's weight in training (lambda * MSE: the rate is fixed), BatchNorm statistics kept
  as joint training left them (re-estimated from these batches, in a first run not kept, they cost every level
  0.1-0.65 dB): the shipped decoder trained on, and the shipped decoder widened (``--widths``) and trained as
  long. The widened one starts as the shipped function (its old channels copied, the new ones' paths into the
  old ones zero), so the difference between the two is what the extra width buys at equal training.

    python experiments/codec/decoder_probe.py --data DATA [--model models/codec-v2] [--train 20000]
        [--steps 1500] [--widths 64,128,128,128] [--out outs/codec_decoder_probe]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from frozen import cached_latents

from cifarae.codec import load_codec
from cifarae.errors import cli_main
from cifarae.files import write_atomic
from cifarae.metrics import psnr
from cifarae.models import AutoEncoder


def rounded_latents(model: AutoEncoder, y: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """What files at each image's ``quality`` level carry to the decoder: the eval-mode latent codec rounds
    around its means."""
    with torch.no_grad():
        return model.latent_codec(y, quality)[0]


def eval_psnr(model: AutoEncoder, latents: torch.Tensor, images: torch.Tensor) -> float:
    """Mean PSNR over images of the decoder's 8-bit output."""
    with torch.no_grad():
        rec = torch.cat([model.decode(b) for b in latents.split(250)])
    rec = torch.round(rec.clamp(0, 1) * 255) / 255
    return psnr((rec - images.float() / 255).pow(2).flatten(1).mean(1)).mean().item()


def widened(shipped: torch.nn.Module, cfg, widths: list[int], skip_side: int) -> torch.nn.Module:
    """A decoder of ``widths`` that computes what ``shipped`` does: every old weight, bias and BatchNorm statistic
    copied into the first channels; weights from new channels into old ones zero."""
    decoder = AutoEncoder(dataclasses.replace(cfg, decoder_widths=widths, entropy_model="none")).decoder
    old = dict(shipped.named_modules())
    skip_conv = f"layers.{decoder.skip_at}.0"  # its input is [features, skip]: the skip moves up with the width
    with torch.no_grad():
        for name, new in decoder.named_modules():
            src = old[name]
            if isinstance(new, torch.nn.Conv2d):
                o, i = src.weight.shape[:2]
                inputs = list(range(i))
                if name == skip_conv:
                    kept = i - cfg.skip_channels
                    inputs = inputs[:kept] + [new.in_channels - cfg.skip_channels + k for k in range(cfg.skip_channels)]
                new.weight[:o].zero_()
                new.weight[:o, inputs] = src.weight
                if new.bias is not None:
                    new.bias[:o] = src.bias
            elif isinstance(new, torch.nn.BatchNorm2d):
                o = src.num_features
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(new, key)[:o] = getattr(src, key)
    z = torch.randn(4, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    skip = torch.randn(4, cfg.skip_channels, skip_side, skip_side)
    if not torch.allclose(decoder.eval()(z, skip), shipped(z, skip), atol=1e-5):
        raise AssertionError("the widened decoder does not start as the shipped one")
    return decoder


def probe_args(doc: str, steps: int, out: str, extra=None) -> argparse.Namespace:
    """The command line of a probe that trains a decoder on a frozen codec's bits (``extra(parser)`` adds its own)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="models/codec-v2", help="a shipped model folder")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--lr", type=float, default=1e-4)
    if extra is not None:
        extra(ap)
    ap.add_argument("--out", default=out)
    return ap.parse_args()


def train_decoder(model: AutoEncoder, lambdas, y_train, images, steps: int, groups: list[dict], latents=None) -> float:
    """Adam with a one-cycle schedule on lambda-weighted MSE of the parameter ``groups`` alone (each with its lr),
    each image at a random level; ``latents(y, levels)`` is what the decoder reads (default: the files' rounded
    latents). Returns minutes."""
    latents = latents or (lambda y, q: rounded_latents(model, y, q))
    levels = model.latent_codec.levels
    weights = torch.tensor(lambdas)
    weights = weights / weights.mean()
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=steps, pct_start=0.05)
    start, step = time.time(), 0
    # BatchNorm keeps the statistics joint training left (eval mode; its scales and shifts still train)
    model.eval()
    while step < steps:
        for idx in torch.randperm(len(y_train)).split(64):
            if step == steps:
                break
            q = torch.randint(0, levels, (len(idx),))
            mse = (model.decode(latents(y_train[idx], q)) - images[idx].float() / 255).pow(2).flatten(1).mean(1)
            loss = (weights[q] * mse).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 500 == 0:
                print(f"  step {step}/{steps}: loss {loss.item():.5f} ({time.time() - start:.0f} s)", flush=True)
    return (time.time() - start) / 60


def main() -> None:
    args = probe_args(
        __doc__,
        1500,
        "outs/codec_decoder_probe",
        lambda ap: ap.add_argument("--widths", nargs="*", default=["64,128,128,128"]),
    )
    torch.manual_seed(0)
    codec = load_codec(args.model)
    cfg, model = codec.cfg, codec.model.float().eval().requires_grad_(False)
    train, y_train, val, y_val = cached_latents(model, args.data, args.train, args.val)
    with torch.no_grad():
        val_hat = [
            rounded_latents(model, y_val, torch.full((len(y_val),), q)) for q in range(model.latent_codec.levels)
        ]
    result = {"args": vars(args), "model": cfg.to_dict(), "variants": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def measure(name: str, minutes: float = 0.0) -> None:
        row = {
            "params": sum(p.numel() for p in model.decoder.parameters()),
            "minutes": minutes,
            "unrounded_psnr": eval_psnr(model, y_val, val),
            "level_psnr": [eval_psnr(model, y, val) for y in val_hat],
        }
        result["variants"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "level_psnr"}), flush=True)
        print("  " + " ".join(f"{p:.2f}" for p in row["level_psnr"]), flush=True)
        write_atomic(out / "probe.json", json.dumps(result, indent=1))

    shipped = model.decoder
    measure("shipped, as shipped")
    for widths in [None, *args.widths]:
        torch.manual_seed(0)
        w = cfg.decoder_widths if widths is None else [int(v) for v in widths.split(",")]
        model.decoder = widened(shipped, cfg, w, cfg.latent_size * model.skip_fold)
        name = "shipped, trained on" if widths is None else f"widened to {widths}, trained on"
        print(name, flush=True)
        groups = [{"params": model.decoder.parameters(), "lr": args.lr}]
        measure(name, train_decoder(model, cfg.level_lambdas, y_train, train, args.steps, groups))


if __name__ == "__main__":
    cli_main(main)()
