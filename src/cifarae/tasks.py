"""What the autoencoder and the classifier each add to the shared engine: loss, validation, media."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import Config
from .data import MEAN
from .losses import bits_per_pixel, masked_reconstruction_loss, patch_mask, reconstruction_loss
from .metrics import psnr


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 levels an image file can hold."""
    return x.float().clamp(0, 1).mul(255).round().div(255)


def reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    """8-bit reconstruction, as a decoder would write it to disk."""
    x_hat, _ = model(x)
    return quantize_8bit(x_hat)


def predict_logits(model, x: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Logits with the config's test-time augmentation (flip, then optionally translation)."""

    def mirrored(images):
        logits = model(images).float()
        if cfg.tta:  # average with the mirrored image
            logits = 0.5 * (logits + model(images.flip(-1)).float())
        return logits

    logits = mirrored(x)
    if cfg.tta_shift:  # airbench's level 2: half weight on two copies shifted diagonally
        s, (h, w) = cfg.tta_shift, x.shape[-2:]
        padded = F.pad(x, (s,) * 4, mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2 * s : 2 * s + h, 2 * s : 2 * s + w]]
        logits = 0.5 * logits + 0.25 * sum(mirrored(xs) for xs in shifted)
    return logits


class AutoencoderTask:
    name = "ae"
    monitor, monitor_mode = "psnr", "max"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        if cfg.entropy_model != "none":  # a codec trades rate for distortion: its best epoch has the lowest RD loss
            self.monitor, self.monitor_mode = "rd_loss", "min"

    def loss(self, model, x, y):
        if self.cfg.objective == "masked":
            return self.masked_loss(model, x)
        lambdas = self.cfg.rd_lambdas
        if lambdas:  # a variable-rate codec: each image trains one quality level, at its lambda
            if self.cfg.rd_level_weights:
                weights = torch.tensor(self.cfg.rd_level_weights, device=x.device)
                quality = torch.multinomial(weights, len(x), replacement=True)
            else:
                quality = torch.randint(len(lambdas), (len(x),), device=x.device)
            x_hat, likelihoods = model(x, quality)
            lam = torch.tensor(lambdas, device=x.device)[quality]
        else:
            x_hat, likelihoods = model(x)
            lam = torch.full((len(x),), self.cfg.rd_lambda, device=x.device)
        distortion = reconstruction_loss(x_hat, x, self.cfg.loss)
        if likelihoods is None:
            return distortion, {}
        mse_per_image = (x_hat.float() - x.float()).pow(2).mean(dim=(1, 2, 3))
        bpp = bits_per_pixel(likelihoods, x.shape[0] * x.shape[2] * x.shape[3])
        loss = bpp + 255**2 * (lam * mse_per_image).mean()  # the engine adds the coder's aux loss (its quantiles)
        logs = {"train/bpp_estimate": bpp.item(), "train/mse": mse_per_image.mean().item()}
        return loss, logs

    def masked_loss(self, model, x):
        """Hide random patches from the encoder (the data mean: zero after its normalisation); score the
        reconstruction of the hidden pixels only, so the encoder must infer them from their context."""
        cfg = self.cfg
        mask = patch_mask(len(x), x.shape[-1], cfg.mask_ratio, cfg.mask_patch, x.device)
        mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x_hat, _ = model(torch.where(mask, mean, x))
        return masked_reconstruction_loss(x_hat, x, mask, cfg.loss), {}

    @torch.no_grad()
    def validate(self, model, loader, accelerator):
        model.eval()
        totals = torch.zeros(4, device=accelerator.device, dtype=torch.float64)  # loss*n, sq-err sum, n, bits
        for x, _ in loader:
            with accelerator.autocast():
                x_hat, likelihoods = model(x)
            totals[0] += reconstruction_loss(x_hat, x, self.cfg.loss).double() * len(x)
            totals[1] += (quantize_8bit(x_hat) - x).double().pow(2).sum()
            totals[2] += len(x)
            if likelihoods is not None:  # eval mode rounds the latents: the prior's code length
                totals[3] += -torch.log2(likelihoods.double()).sum()
        totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
        loss, sq_err, n, bits = totals.tolist()
        mse = sq_err / (n * 3 * 32 * 32)
        metrics = {"loss": loss / n, "mse": mse, "psnr": psnr(mse)}
        if self.cfg.entropy_model != "none":
            metrics["bpp_estimate"] = bits / (n * 32 * 32)
            lam = self.cfg.level_lambdas[self.cfg.middle_level]  # the level model(x) codes
            metrics["rd_loss"] = metrics["bpp_estimate"] + 255**2 * lam * mse
        return metrics

    @torch.no_grad()
    def media(self, model, images_u8):
        from torchvision.utils import make_grid  # ~2 s to import (torch._dynamo): only when images are logged

        model.eval()
        x = images_u8.float().div(255).to(next(model.parameters()).device)
        x_hat = reconstruct(model, x)
        # Row pairs: originals above their reconstructions.
        grid = make_grid(torch.cat([x, x_hat.to(x.dtype)]), nrow=len(x), padding=1)
        return {"val/reconstructions": grid.permute(1, 2, 0).cpu().numpy()}


class ClassifierTask:
    name = "clf"
    monitor, monitor_mode = "acc", "max"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def loss(self, model, x, y):
        logits = model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing), {}

    @torch.no_grad()
    def validate(self, model, loader, accelerator):
        model.eval()
        totals = torch.zeros(3, device=accelerator.device, dtype=torch.float64)  # loss*n, correct, n
        for x, y in loader:
            with accelerator.autocast():
                logits = predict_logits(model, x, self.cfg)
            totals[0] += F.cross_entropy(logits, y, reduction="sum").double()
            totals[1] += (logits.argmax(1) == y).sum()
            totals[2] += len(y)
        totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
        loss, correct, n = totals.tolist()
        return {"loss": loss / n, "acc": correct / n}

    def media(self, model, images_u8):
        return {}
