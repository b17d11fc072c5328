"""Can the decoder use what the entropy model knows? Latent residual prediction on the frozen codec (issue #26)

The decoder gets each latent value rounded about its mean, but not the mean and scale the entropy model coded it
with, which the decoder side has too: they say where in its bin a value most likely was (Minnen & Singh 2020's
latent residual prediction, LRP). This probe keeps the shipped model's encoder, gains and entropy model frozen, so
every level's bits stay those of its files, and trains, from the same seed and for the same steps as
decoder_probe.py's "trained on" arm:

- the shipped decoder with a residual predictor in front of it: a small network from (rounded value minus its mean,
  mean, log-scale) at each latent position, in the gained domain, to a correction within half a step
  (0.5 tanh), its last layer at zero so that it starts as none.

Compare with decoder_probe.py's "shipped, trained on" (the decoder alone, trained as long) to see what the
entropy model's parameters add.

    python experiments/codec/lrp_probe.py --data DATA [--model models/codec-v2] [--train 20000]
        [--steps 3000] [--out outs/codec_decoder_side/lrp]
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from decoder_probe import eval_psnr, probe_args, train_decoder
from frozen import cached_latents
from torch import nn

from cifarae.codec import load_codec
from cifarae.errors import cli_main
from cifarae.files import write_atomic


class ResidualPrediction(nn.Module):
    """(y_g_hat - means, means, log-scales) -> a correction of y_g_hat within +-0.5 (a step is 1)."""

    def __init__(self, channels: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3 * channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, y_g_hat, means, log_scales):
        return y_g_hat + 0.5 * torch.tanh(self.net(torch.cat([y_g_hat - means, means, log_scales], 1)))


@torch.no_grad()
def coded(model, y: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(y_g_hat, means, log-scales, gain) as the eval-mode latent codec computes them for the files."""
    gain, y_g, _, means, log_scales = model.latent_codec.coding_parameters(y, quality)
    return torch.round(y_g - means) + means, means, log_scales, gain


def main() -> None:
    args = probe_args(
        __doc__, 3000, "outs/codec_decoder_side/lrp", lambda ap: ap.add_argument("--lrp-lr", type=float, default=1e-3)
    )
    torch.manual_seed(0)
    codec = load_codec(args.model)
    cfg, model = codec.cfg, codec.model.float().eval().requires_grad_(False)
    train, y_train, val, y_val = cached_latents(model, args.data, args.train, args.val)
    levels = model.latent_codec.levels
    val_coded = [coded(model, y_val, torch.full((len(y_val),), q)) for q in range(levels)]
    lrp = ResidualPrediction(model.latent_codec.channels)

    def latents(parts, use_lrp: bool) -> torch.Tensor:
        y_g_hat, means, log_scales, gain = parts
        return (lrp(y_g_hat, means, log_scales) if use_lrp else y_g_hat) / gain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "variants": {}}

    def measure(name: str, use_lrp: bool, minutes: float = 0.0) -> None:
        with torch.no_grad():
            level_psnr = [eval_psnr(model, latents(parts, use_lrp), val) for parts in val_coded]
        result["variants"][name] = {"minutes": minutes, "level_psnr": level_psnr}
        print(name, f"{minutes:.1f} min", " ".join(f"{p:.2f}" for p in level_psnr), flush=True)
        write_atomic(out / "probe.json", json.dumps(result, indent=1))

    measure("shipped, as shipped", False)
    torch.manual_seed(0)
    model.decoder.requires_grad_(True)
    groups = [{"params": model.decoder.parameters(), "lr": args.lr}, {"params": lrp.parameters(), "lr": args.lrp_lr}]
    minutes = train_decoder(
        model, cfg.level_lambdas, y_train, train, args.steps, groups, lambda y, q: latents(coded(model, y, q), True)
    )
    measure("shipped decoder with residual prediction, trained on", True, minutes)


if __name__ == "__main__":
    cli_main(main)()
