"""The shared backbone, the autoencoder built on it, and the classifier built on it.

``AutoEncoder.backbone`` and ``Classifier.backbone`` are the same class with the same
parameter names, so a pretrained encoder loads into the classifier with no renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .data import MEAN, STD
from .errors import UserError

NUM_CLASSES = 10


class Normalize(nn.Module):
    """[0, 1] images -> per-channel standardised; fixed buffers, so checkpoints carry them."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def conv_bn_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class DownBlock(nn.Module):
    """airbench's block: conv -> (max-pool) -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, cin: int, cout: int, pool: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn1 = nn.BatchNorm2d(cout)
        self.act = nn.GELU()
        self.conv2 = conv_bn_act(cout, cout)

    def forward(self, x):
        return self.conv2(self.act(self.bn1(self.pool(self.conv1(x)))))


class WhiteningStem(nn.Module):
    """airbench's first layer: a frozen 2x2 convolution that whitens image patches.

    Its 12 filters are the principal components of 2x2x3 training patches, scaled to unit variance,
    each with both signs (24 channels) so that the GELU after it loses nothing. ``fit`` sets them from
    training images; they are saved with the model and never trained (the bias is). The input is
    padded by one pixel on the right and bottom so that 32x32 stays 32x32 for the blocks and the decoder.
    """

    channels = 2 * 3 * 2 * 2

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, self.channels, 2)
        self.conv.weight.requires_grad_(False)
        self.act = nn.GELU()

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """``images``: N x 3 x H x W, normalised as the backbone sees them."""
        patches = images.double().unfold(2, 2, 1).unfold(3, 2, 1)  # N, 3, H-1, W-1, 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * 2 * 2)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0).reshape(-1, 3, 2, 2)
        self.conv.weight.copy_(torch.cat([filters, -filters]).float())
        self.conv.bias.zero_()

    def forward(self, x):
        return self.act(self.conv(F.pad(x, (0, 1, 0, 1), mode="replicate")))


def configure_batchnorms(module: nn.Module, weight: bool, momentum: float, eps: float) -> None:
    """The config's BatchNorm settings on every BatchNorm in ``module`` (``weight=False`` freezes the scales)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = momentum, eps
            m.weight.requires_grad_(weight)


def pools_for(latent_size: int) -> list[bool]:
    """Which of the three blocks halve the resolution so that 32 x 32 ends at latent_size."""
    n = int(math.log2(32 // latent_size))
    return [i < n for i in range(3)]


class Backbone(nn.Module):
    """airbench-style CNN (stem + 3 conv blocks, ~2M parameters at the default widths).

    Its output is a ``widths[3]`` x ``latent_size`` x ``latent_size`` feature map. The stem is a
    3x3 conv -> BN -> GELU (arch "airbench") or airbench's frozen whitening layer ("airbench_whiten",
    24 channels, so widths[0] must be 24; ``init_stem`` fits it to the training images).
    ``bn_weight=False`` freezes every BatchNorm scale at 1, as airbench does: a conv followed by
    BatchNorm is scale-invariant, so the scale adds nothing but a second knob on the effective
    learning rate, which weight decay on the conv weights already sets.
    """

    def __init__(
        self,
        widths: list[int],
        latent_size: int,
        arch: str = "airbench",
        bn_weight: bool = True,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        w0, w1, w2, w3 = widths
        p1, p2, p3 = pools_for(latent_size)
        self.normalize = Normalize()
        self.stem = WhiteningStem() if arch == "airbench_whiten" else conv_bn_act(3, w0)
        self.blocks = nn.Sequential(DownBlock(w0, w1, p1), DownBlock(w1, w2, p2), DownBlock(w2, w3, p3))
        self.out_channels = w3
        configure_batchnorms(self, bn_weight, bn_momentum, bn_eps)

    def forward(self, x):
        return self.blocks(self.stem(self.normalize(x)))

    def forward_with_taps(self, x):
        """(the stem's output, block 1's output, the backbone's output): the codec's skip latent reads the first
        two."""
        stem = self.stem(self.normalize(x))
        tap = self.blocks[0](stem)
        return stem, tap, self.blocks[2](self.blocks[1](tap))


class Bottleneck(nn.Module):
    """x + a residual branch: 1x1 conv to ``width`` x channels -> 3x3 conv -> 1x1 conv back (ResNet's bottleneck
    has width 1/4: a quarter of a 3x3 block's weights). The last conv starts at zero, so the block starts as the
    identity and a trained model fine-tunes with blocks added."""

    def __init__(self, channels: int, width: float = 0.25):
        super().__init__()
        mid = max(1, round(channels * width))
        self.branch = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.GELU(),
            conv_bn_act(mid, mid),
            nn.Conv2d(mid, channels, 1),
        )
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)

    def forward(self, x):
        return x + self.branch(x)


def upsample(channels: int, mode: str) -> nn.Module:
    if mode == "resize_conv":  # nearest resize; the conv that follows smooths it (no checkerboard)
        return nn.Upsample(scale_factor=2, mode="nearest")
    if mode == "pixel_shuffle":
        return nn.Sequential(nn.Conv2d(channels, 4 * channels, 1), nn.PixelShuffle(2))
    return nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)


class Decoder(nn.Module):
    """Mirror of the backbone: latent -> widths[3] ... widths[0] -> RGB, upsampling where it pooled.

    ``skip_channels`` > 0: the stage that mirrors block 1 also takes a ``skip`` input at block 1's
    resolution (concatenated before its first convolution).
    """

    def __init__(self, latent_channels: int, widths: list[int], latent_size: int, mode: str, skip_channels: int = 0):
        super().__init__()
        w0, w1, w2, w3 = widths
        pools = pools_for(latent_size)
        layers = [conv_bn_act(latent_channels, w3)]
        for cin, cout, up, extra in [(w3, w2, pools[2], 0), (w2, w1, pools[1], 0), (w1, w0, pools[0], skip_channels)]:
            if extra:
                self.skip_at = len(layers)
            layers.append(conv_bn_act(cin + extra, cin))
            if up:
                layers.append(upsample(cin, mode))
            layers.append(conv_bn_act(cin, cout))
        layers.append(nn.Conv2d(w0, 3, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z, skip=None):
        for i, layer in enumerate(self.layers):
            if skip is not None and i == self.skip_at:
                z = torch.cat([z, skip], dim=1)
            z = layer(z)
        # Sigmoid: targets are pixel intensities in [0, 1]; it keeps outputs in range without clipping.
        return torch.sigmoid(z)


class OwnsParamGroups:
    """The optimizer's parameter groups, which each model defines for its own parameters.

    No weight decay on norms and biases (unless ``decay_biases``); the backbone can take a smaller learning rate
    (``backbone_lr_mult``), and BatchNorm biases a larger one (``norm_bias_lr_mult``; airbench uses
    64x): they only shift activations, so they tolerate large steps and settle early.
    """

    def lr_mult_and_decay(self, name: str, param: nn.Parameter, cfg: Config) -> tuple[float, bool]:
        return (cfg.backbone_lr_mult if name.startswith("backbone.") else 1.0), param.ndim > 1 or cfg.decay_biases

    def param_groups(self, cfg: Config) -> list[dict]:
        norm_biases = {
            id(m.bias) for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine
        }
        groups: dict[tuple, list] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            lr_mult, decay = self.lr_mult_and_decay(name, p, cfg)
            bias_mult = cfg.norm_bias_lr_mult if id(p) in norm_biases else 1.0
            # a decayed BatchNorm bias shrinks per step as much as a weight, whatever its lr multiplier
            weight_decay = cfg.weight_decay / bias_mult if decay else 0.0
            groups.setdefault((lr_mult * bias_mult, weight_decay), []).append(p)
        return [{"params": ps, "lr": cfg.lr * m, "weight_decay": d} for (m, d), ps in groups.items()]


class AutoEncoder(OwnsParamGroups, nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.backbone = Backbone(cfg.widths, cfg.latent_size, cfg.arch, cfg.bn_weight, cfg.bn_momentum, cfg.bn_eps)
        self.to_latent = nn.Conv2d(cfg.widths[3], cfg.latent_channels, 1)
        self.decoder = Decoder(
            cfg.latent_channels, cfg.decoder_widths or cfg.widths, cfg.latent_size, cfg.upsample, cfg.skip_channels
        )
        # The skip latent is block 1's features through a 1x1 conv, folded (space-to-depth) onto the
        # latent's grid, so that one latent tensor, one entropy model and one file stream carry both.
        self.to_skip = nn.Conv2d(cfg.widths[1], cfg.skip_channels, 1) if cfg.skip_channels else None
        self.skip_fold = (32 >> pools_for(cfg.latent_size)[0]) // cfg.latent_size
        coded_channels = cfg.latent_channels + cfg.skip_channels * self.skip_fold**2
        self.latent_codec = None
        self.middle_level = cfg.middle_level  # the level forward() codes when given none
        if cfg.entropy_model == "hyperprior":
            from .codec.hyperprior import HyperpriorLatentCodec

            lambdas = cfg.level_lambdas
            folded = cfg.skip_channels * self.skip_fold**2
            if cfg.context == "subpositions" and self.skip_fold != 2:
                raise UserError(
                    f"config context=subpositions needs a skip latent at twice the latent's side; with "
                    f"latent_size={cfg.latent_size} it is at the same side: use context=checkerboard"
                )
            self.latent_codec = HyperpriorLatentCodec(
                coded_channels, cfg.hyper_channels, len(lambdas), lambdas, cfg.context, folded
            )
        self.latent_shape = (coded_channels, cfg.latent_size, cfg.latent_size)
        # Built last, so that a model with blocks draws every other initial weight as the same model without them.
        self.latent_blocks = nn.Sequential(
            *[Bottleneck(cfg.widths[3], cfg.analysis_width) for _ in range(cfg.analysis_blocks)]
        )
        skip_blocks = cfg.analysis_blocks if cfg.skip_channels else 0
        self.skip_blocks = nn.Sequential(*[Bottleneck(cfg.widths[1], cfg.analysis_width) for _ in range(skip_blocks)])
        for blocks in (self.latent_blocks, self.skip_blocks):  # analysis layers, as the backbone's
            configure_batchnorms(blocks, cfg.bn_weight, cfg.bn_momentum, cfg.bn_eps)
        # The stem's features folded onto block 1's grid, into the skip head: it starts at zero, so the model
        # starts as the one without it (and, built last, from the same initial weights).
        self.stem_fold = 2 if pools_for(cfg.latent_size)[0] else 1
        self.stem_to_skip = None
        if cfg.skip_from_stem:
            self.stem_to_skip = nn.Conv2d(cfg.widths[0] * self.stem_fold**2, cfg.skip_channels, 1, bias=False)
            nn.init.zeros_(self.stem_to_skip.weight)
        # train_only=decoder: every other part frozen, so the bits of every file stay the trained codec's
        self.decoder_only = cfg.train_only == "decoder"
        if self.decoder_only:
            self.requires_grad_(False)
            self.decoder.requires_grad_(True)

    def train(self, mode: bool = True):
        # Decoder only: every part stays in eval mode, the decoder's BatchNorms too, whose statistics are those the
        # frozen latents had in joint training (re-estimated from decoder-only batches they cost 0.1-0.65 dB:
        # docs/codec-log.md, "What holds the top levels back"); their scales and shifts still train.
        return super().train(mode and not self.decoder_only)

    def lr_mult_and_decay(self, name: str, param: nn.Parameter, cfg: Config) -> tuple[float, bool]:
        # The codec's entropy model (its densities and quantiles) trains at 10x the learning rate,
        # with no weight decay: its densities start 10 units wide and must follow the latents within
        # a short run, or the rate term gives the encoder no useful gradient.
        if name.startswith("latent_codec.entropy_bottleneck."):
            return 10.0, False
        if name == "latent_codec.log_gains":  # gains set the rate: decay would pull them all to 1
            return 1.0, False
        return super().lr_mult_and_decay(name, param, cfg)

    def aux_loss(self) -> torch.Tensor | None:
        """The entropy model's own loss: it fits the CDF quantiles the coder uses (none without a codec)."""
        return None if self.latent_codec is None else self.latent_codec.aux_loss()

    @property
    def compression_ratio(self) -> float:
        """Input values per latent value (3*32*32 / C*H*W)."""
        return 3 * 32 * 32 / math.prod(self.latent_shape)

    def encode(self, x):
        if self.to_skip is None:
            return self.to_latent(self.latent_blocks(self.backbone(x)))
        stem, tap, features = self.backbone.forward_with_taps(x)
        latent = self.to_latent(self.latent_blocks(features))
        skip = self.to_skip(self.skip_blocks(tap))
        if self.stem_to_skip is not None:
            skip = skip + self.stem_to_skip(F.pixel_unshuffle(stem, self.stem_fold))
        return torch.cat([latent, F.pixel_unshuffle(skip, self.skip_fold)], dim=1)

    def decode(self, y):
        if self.to_skip is None:
            return self.decoder(y)
        c = self.to_latent.out_channels
        return self.decoder(y[:, :c], F.pixel_shuffle(y[:, c:], self.skip_fold))

    def forward(self, x, quality: torch.Tensor | None = None):
        """Returns (reconstruction in [0, 1], latent likelihoods or None). ``quality``: each image's rate
        level for the hyperprior (default: the middle one)."""
        y = self.encode(x)
        if self.latent_codec is None:
            return self.decode(y), None
        if quality is None:
            quality = torch.full((len(x),), self.middle_level, device=x.device)
        # The entropy model runs in fp32 even under autocast: its likelihoods are differences of
        # CDFs that bf16 rounds to zero, which would make the rate term infinite.
        with torch.autocast(device_type=y.device.type, enabled=False):
            y_hat, likelihoods = self.latent_codec(y.float(), quality)
        return self.decode(y_hat), likelihoods


class Classifier(OwnsParamGroups, nn.Module):
    """Backbone -> global max-pool -> (probe BatchNorm) -> linear head."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.backbone = Backbone(cfg.widths, cfg.latent_size, cfg.arch, cfg.bn_weight, cfg.bn_momentum, cfg.bn_eps)
        # Linear probe: BatchNorm without affine before the head (MAE/DINO protocol).
        self.probe_norm = nn.BatchNorm1d(cfg.widths[3], affine=False) if cfg.mode == "linear" else nn.Identity()
        self.head = nn.Linear(cfg.widths[3], NUM_CLASSES, bias=False)
        self.logit_scale = cfg.logit_scale
        self.frozen_backbone = cfg.mode == "linear"
        if self.frozen_backbone:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_backbone:  # a probe must not move the backbone's BatchNorm statistics either
            self.backbone.eval()
        return self

    def param_groups(self, cfg: Config) -> list[dict]:
        """The shared groups; with ``whiten_bias_epochs`` the whitening stem's bias gets a group of its
        own that the engine stops after that many epochs (``train_epochs``), as airbench does."""
        groups = super().param_groups(cfg)
        stem = self.backbone.stem
        if not (cfg.whiten_bias_epochs and isinstance(stem, WhiteningStem) and stem.conv.bias.requires_grad):
            return groups
        bias = stem.conv.bias
        for g in groups:
            g["params"] = [p for p in g["params"] if p is not bias]
        own = {
            "params": [bias],
            "lr": cfg.lr * cfg.backbone_lr_mult,
            "weight_decay": cfg.weight_decay * cfg.decay_biases,
        }
        return [g for g in groups if g["params"]] + [{**own, "train_epochs": cfg.whiten_bias_epochs}]

    def features(self, x):
        return torch.amax(self.backbone(x), dim=(2, 3))

    def forward(self, x):
        return self.head(self.probe_norm(self.features(x))) * self.logit_scale


def build_model(cfg: Config) -> nn.Module:
    return AutoEncoder(cfg) if cfg.task == "ae" else Classifier(cfg)


def init_stem(model: nn.Module, images_u8: torch.Tensor, n: int = 5000) -> None:
    """Fit a whitening stem to the first ``n`` training images (uint8); other stems need nothing.

    Call it on a fresh model only: a pretrained encoder or a checkpoint brings its own stem.
    """
    backbone = model.backbone
    if isinstance(backbone.stem, WhiteningStem):
        backbone.stem.fit(backbone.normalize(images_u8[:n].float() / 255))


@torch.no_grad()
def dirac_init(model: nn.Module) -> None:
    """airbench's initialisation of a fresh network: each 3x3 convolution of the backbone's blocks
    passes its input through on its first ``in_channels`` filters (identity), the rest stay random."""
    for m in model.backbone.blocks.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            n = min(m.in_channels, m.out_channels)
            nn.init.dirac_(m.weight[:n])


BACKBONE_KEYS = ("arch", "widths", "latent_size", "bn_weight")


def backbone_settings(encoder_cfg: dict) -> dict:
    """The backbone keys of a saved config; checkpoints older than a key get its default."""
    return {k: encoder_cfg.get(k, getattr(Config(), k)) for k in BACKBONE_KEYS}


def check_backbone_compatible(encoder_cfg: dict, cfg: Config, source: str) -> None:
    """One-line error when a pretrained encoder's backbone differs from the classifier's."""
    theirs = backbone_settings(encoder_cfg)
    ours = {k: getattr(cfg, k) for k in BACKBONE_KEYS}
    if theirs != ours:
        raise UserError(f"encoder {source} has backbone {theirs} but the classifier config asks for {ours}")
