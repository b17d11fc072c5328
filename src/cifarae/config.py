"""One flat dataclass holds every setting; YAML files and ``key=value`` overrides fill it.

Flat keeps overrides short (``epochs=5``, ``lr=0.01``), as in nanoGPT. The fully resolved
config is written next to the run and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError


@dataclass
class Config:
    # --- task ---
    task: str = "ae"  # "ae" (autoencoder) or "clf" (classifier)
    seed: int = 0

    # --- data ---
    # stratified validation split carved out of the training set; 0: none, train on all of it (the
    # final fit once a recipe is chosen on the 5,000; no epoch selection, the last epoch is the model)
    val_size: int = 5000
    split_seed: int = 0
    train_subset: int = 0  # >0: stratified subset of the training split (smoke runs)
    val_subset: int = 0  # >0: stratified subset of the validation split (smoke runs)
    label_fraction: float = 1.0  # classifier: stratified fraction of labelled training images
    # crop (random translation), flip (a random half of each batch), altflip (airbench: a random half
    # of the images flipped once, then all of them flipped every other epoch)
    augment: list[str] = field(default_factory=lambda: ["crop", "flip"])
    crop_pad: int = 4

    # --- backbone (shared by the autoencoder's encoder and the classifier) ---
    arch: str = "airbench"  # airbench (3x3 conv stem) | airbench_whiten (airbench's frozen whitening stem)
    widths: list[int] = field(default_factory=lambda: [32, 64, 256, 256])
    latent_size: int = 8  # spatial side of the bottleneck: 16, 8 or 4
    bn_weight: bool = True  # train the backbone's BatchNorm scales; false freezes them at 1 (airbench)
    # BatchNorm's running-statistics momentum and eps (PyTorch's defaults; airbench uses 0.4 and 1e-12). Not
    # weights: a classifier sets its own, whatever its encoder used
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    # --- autoencoder ---
    latent_channels: int = 12
    upsample: str = "resize_conv"  # resize_conv | pixel_shuffle | transposed
    # the decoder's widths at the backbone's four stages; empty mirrors ``widths``. The decoder is
    # not shared with the classifier, so a codec can widen it freely (detail is made at 16x16 and 32x32)
    decoder_widths: list[int] = field(default_factory=list)
    # codec only: >0 also codes this many channels of the backbone's block-1 features (16x16 for
    # latent_size 8), folded onto the latent's grid and fed to the decoder's matching stage: detail
    # that the later max-pools would lose. The backbone itself is unchanged (still the classifier's).
    skip_channels: int = 0
    # residual bottleneck blocks on the backbone's features before each latent head (to_latent, to_skip):
    # analysis capacity of the autoencoder's own, so the backbone stays the classifier's. Each starts as
    # the identity, so a trained model fine-tunes with them added (init_from)
    analysis_blocks: int = 0
    analysis_width: float = 0.25  # those blocks' inner width, a fraction of their channels (ResNet's bottleneck: 1/4)
    # codec only, with skip_channels: the skip latent also reads the stem's full-resolution features (folded
    # space-to-depth onto block 1's grid, through a 1x1 conv that starts at zero): the pixel detail that block 1's
    # max-pool drops. The backbone is unchanged
    skip_from_stem: bool = False
    loss: dict = field(default_factory=lambda: {"mse": 1.0})  # weights of mse / l1 / ssim
    # pretraining objective: "reconstruct" the whole image, or "masked": random square patches are
    # hidden from the encoder (set to the data mean) and the loss counts the hidden pixels only
    # (masked-image modelling for convnets, as in SparK / ConvNeXt V2's FCMAE)
    objective: str = "reconstruct"
    mask_ratio: float = 0.6  # masked: the fraction of patches hidden in each image
    mask_patch: int = 4  # masked: the patches' side in pixels (divides 32)
    # entropy-coded bottleneck for the codec: "none" (a plain autoencoder) or "hyperprior" (mean-scale
    # hyperprior with gain units, codec/hyperprior.py)
    entropy_model: str = "none"
    rd_lambda: float = 0.01  # rate + lambda * 255^2 * mse when entropy_model != none
    # hyperprior: one quality level per lambda (a variable-rate model); empty: one level at rd_lambda
    rd_lambdas: list[float] = field(default_factory=list)
    # how often training draws each level, relative (empty: all alike); the high levels' losses are the largest,
    # so with equal draws they weigh most on the transforms that every level shares
    rd_level_weights: list[float] = field(default_factory=list)
    hyper_channels: int = 128  # hyperprior: channels of the hyper-latent z
    context: str = "none"  # hyperprior: "checkerboard" adds a spatial context, "subpositions" also orders the skip
    # latent's sub-positions within its passes (codec/hyperprior.py)
    init_from: str = ""  # run dir, checkpoint or shipped codec folder to start from (a codec from a plain AE)
    # codec only: "decoder" trains a trained codec's decoder (init_from) alone; every other part keeps its weights
    # and BatchNorm statistics, so the files' bits stay the trained codec's
    train_only: str = ""
    # --- classifier ---
    mode: str = "scratch"  # linear | finetune | scratch
    encoder: str = ""  # AE run dir or checkpoint, for linear / finetune
    backbone_lr_mult: float = 1.0  # finetune: learning rate multiplier on the backbone
    label_smoothing: float = 0.2
    tta: bool = True  # test-time horizontal-flip augmentation
    # >0: test time also averages copies translated by this many pixels (airbench's TTA level 2)
    tta_shift: int = 0
    # multiplies the logits; airbench's 1/9 keeps a max-pooled head's logits small at high lr
    logit_scale: float = 1.0
    # >0: the whitening stem's bias trains for this many epochs, then stays (airbench: 3)
    whiten_bias_epochs: int = 0
    dirac_init: bool = False  # scratch: each 3x3 conv starts as identity on its first channels (airbench)

    # --- optimisation ---
    epochs: int = 10
    batch_size: int = 512
    eval_batch_size: int = 1000
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    # cosine (linear warm-up, cosine decay) | onecycle (linear warm-up, linear decay to 0) | airbench
    # (a triangle from 0.2 up to 1 at 23% of the steps, down to 0.07; warmup_epochs is unused)
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    grad_accum: int = 1
    grad_clip: float = 0.0
    # false: grad_clip leaves out the entropy bottleneck's quantiles (CompressAI's "aux" parameters), whose own
    # loss only fits the coder's tables; late in a run their gradient was hundreds of times the rest's and set the clip
    clip_quantiles: bool = True
    ema_decay: float = 0.0  # >0 keeps an EMA of the weights and evaluates it
    # >0: Lookahead (airbench's): every this many steps the slow weights (BatchNorm statistics too)
    # move towards the fast ones, which restart from them; the slow ones are the final model
    lookahead_every: int = 0
    # learning-rate multiplier on BatchNorm biases (airbench trains them 64x faster)
    norm_bias_lr_mult: float = 1.0
    # weight decay on biases and BatchNorm too (airbench decays every trained parameter), a BatchNorm
    # bias as much per step as a weight; false: on weights only. The codec's entropy model never decays
    decay_biases: bool = False

    # --- speed ---
    precision: str = "bf16"  # bf16 | fp16 | fp32 (Accelerate's "no" is accepted too)
    channels_last: bool = True
    compile: bool = False

    # --- logging ---
    wandb: bool = True
    wandb_project: str = "cifarae"
    log_every: int = 20  # steps between W&B step logs
    image_every: int = 1  # epochs between reconstruction grids

    def check(self) -> Config:
        choices = {
            "task": ("ae", "clf"),
            "upsample": ("resize_conv", "pixel_shuffle", "transposed"),
            "entropy_model": ("none", "hyperprior"),
            "mode": ("linear", "finetune", "scratch"),
            "optimizer": ("adamw", "sgd"),
            "schedule": ("cosine", "onecycle", "airbench"),
            "precision": ("bf16", "fp16", "fp32", "no"),
            "arch": ("airbench", "airbench_whiten"),
            "objective": ("reconstruct", "masked"),
            "context": ("none", "checkerboard", "subpositions"),
        }
        if self.entropy_model == "factorized":
            raise UserError(
                "config entropy_model='factorized' was the v1 codec, removed after commit cdeb663; "
                "use entropy_model=hyperprior (jobs/configs/codec/)"
            )
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"config {key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.latent_size not in (4, 8, 16):
            raise UserError(f"config latent_size={self.latent_size} must be 16, 8 or 4")
        if len(self.widths) != 4:
            raise UserError(f"config widths={self.widths} needs 4 entries: stem and three blocks")
        if self.decoder_widths and len(self.decoder_widths) != 4:
            raise UserError(f"config decoder_widths={self.decoder_widths} needs 4 entries (or none: mirror widths)")
        if self.skip_channels < 0 or (self.skip_channels and self.entropy_model == "none"):
            raise UserError(
                f"config skip_channels={self.skip_channels} needs entropy_model=hyperprior (a codec) and must be >= 0"
            )
        if self.skip_from_stem and not self.skip_channels:
            raise UserError("config skip_from_stem=true needs skip_channels > 0 (the skip latent it feeds)")
        if self.context != "none" and self.entropy_model != "hyperprior":
            raise UserError(f"config context={self.context} needs entropy_model=hyperprior")
        if self.context == "subpositions" and not self.skip_channels:
            raise UserError("config context=subpositions needs skip_channels > 0 (the skip latent it orders)")
        if any(lam <= 0 for lam in self.rd_lambdas) or len(self.rd_lambdas) > 128:  # a file has 7 bits for the level
            raise UserError(f"config rd_lambdas={self.rd_lambdas} must be at most 128 positive numbers")
        if self.rd_level_weights and (
            len(self.rd_level_weights) != len(self.rd_lambdas) or any(w <= 0 for w in self.rd_level_weights)
        ):
            raise UserError(
                f"config rd_level_weights={self.rd_level_weights} needs one positive weight per level of "
                f"rd_lambdas={self.rd_lambdas}, or none"
            )
        if self.train_only not in ("", "decoder"):
            raise UserError(f"config train_only={self.train_only} must be decoder (a codec's decoder alone) or empty")
        if self.train_only and (self.entropy_model != "hyperprior" or not self.init_from):
            raise UserError(
                "config train_only=decoder trains a trained codec's decoder: it needs entropy_model=hyperprior and "
                "init_from (or from: in a codec recipe)"
            )
        if self.arch == "airbench_whiten" and self.widths[0] != 24:
            raise UserError(f"config arch=airbench_whiten has a 24-channel stem; set widths[0]={self.widths[0]} to 24")
        unknown_aug = set(self.augment) - {"crop", "flip", "altflip"}
        if unknown_aug:
            raise UserError(f"config augment has unknown entries {sorted(unknown_aug)}; use crop, flip, altflip")
        if {"flip", "altflip"} <= set(self.augment):
            raise UserError("config augment has both flip and altflip; choose one")
        unknown_loss = set(self.loss) - {"mse", "l1", "ssim"}
        if unknown_loss:
            raise UserError(f"config loss has unknown terms {sorted(unknown_loss)}; use mse, l1, ssim")
        if self.objective == "masked":
            if not 0 < self.mask_ratio < 1:
                raise UserError(f"config mask_ratio={self.mask_ratio} must be between 0 and 1 (e.g. 0.6)")
            if self.mask_patch < 1 or 32 % self.mask_patch:
                raise UserError(f"config mask_patch={self.mask_patch} must divide 32 (e.g. 4)")
            if self.entropy_model != "none" or "ssim" in self.loss:
                raise UserError("config objective=masked needs entropy_model=none and a loss of mse and/or l1")
        if not 0 < self.label_fraction <= 1:
            raise UserError(f"config label_fraction={self.label_fraction} must be in (0, 1]")
        if self.tta_shift < 0:
            raise UserError(f"config tta_shift={self.tta_shift} must be 0 (off) or a number of pixels")
        if not (0 < self.bn_momentum <= 1 and self.bn_eps > 0):
            raise UserError(f"config bn_momentum={self.bn_momentum} must be in (0, 1] and bn_eps={self.bn_eps} above 0")
        for key in ("val_size", "lookahead_every", "whiten_bias_epochs", "analysis_blocks"):
            if getattr(self, key) < 0:
                raise UserError(f"config {key}={getattr(self, key)} must be 0 (off) or more")
        if not 0 < self.analysis_width <= 4:
            raise UserError(
                f"config analysis_width={self.analysis_width} must be in (0, 4] (0.25: ResNet's bottleneck)"
            )
        for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, key) < 1:
                raise UserError(f"config {key}={getattr(self, key)} must be at least 1")
        return self

    @property
    def level_lambdas(self) -> list[float]:
        """The hyperprior's lambda per quality level: rd_lambdas, or one level at rd_lambda."""
        return self.rd_lambdas or [self.rd_lambda]

    @property
    def middle_level(self) -> int:
        """The level a codec trains its validation at when none is given: the middle one."""
        return (len(self.level_lambdas) - 1) // 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(key: str, value, source: str):
    if key not in FIELDS:
        near = difflib.get_close_matches(key, FIELDS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UserError(f"unknown config key {key!r} in {source}{hint}")
    default = getattr(Config(), key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config key {key} in {source} needs true/false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if type(value) is not type(default):
        raise UserError(f"config key {key} in {source} needs a {type(default).__name__}, got {value!r}")
    return value


def read_values(path: str | Path) -> dict:
    """The checked ``key: value`` mapping of a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return {k: _coerce(k, v, str(path)) for k, v in loaded.items()}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **defaults) -> Config:
    """Config from defaults, then a YAML file, then ``key=value`` strings (YAML-typed values)."""
    values = dict(defaults)
    if path:
        values.update(read_values(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UserError(f"override {item!r} must look like key=value")
        as_text = key in FIELDS and isinstance(getattr(Config(), key), str)  # so precision=no stays "no"
        values[key] = _coerce(key, raw if as_text else yaml.safe_load(raw), "the command line")
    return Config(**values).check()


# Keys that saved configs may hold but this version no longer reads. ste_decoder switched v1's decoder
# between rounded and noisy latents; the hyperprior always trains its decoder on rounded ones.
RETIRED_KEYS = {"ste_decoder"}


def config_from_dict(values: dict) -> Config:
    """Rebuild a Config saved in a run or checkpoint, rejecting keys this version does not know."""
    return Config(**{k: _coerce(k, v, "the checkpoint") for k, v in values.items() if k not in RETIRED_KEYS}).check()


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
