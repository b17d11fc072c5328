"""Codec runs from disk: a checkpoint's config and model, and a ready HyperpriorCodec."""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint
from ..config import Config
from ..errors import UserError
from ..models import AutoEncoder
from .hyperprior import TABLES, gains_for_levels
from .hyperprior_codec import HyperpriorCodec
from .refinement import NO_REFINEMENT, Refinement
from .shipped import MANIFEST, load_shipped, read_shipped

# What a model started from another (init_from) may lack and start fresh: a plain autoencoder has no entropy
# model, a smaller codec no analysis blocks (they start as the identity).
MAY_START_FRESH = ("latent_codec.", "latent_blocks.", "skip_blocks.")


def load_codec_checkpoint(path: str | Path, which: str = "best") -> tuple[dict, Config, AutoEncoder]:
    """(checkpoint, config, AutoEncoder with its inference weights) of a codec run; anything else is refused."""
    ckpt = checkpoint.load(path, which)
    cfg = checkpoint.checkpoint_config(ckpt)
    if cfg.task != "ae":
        raise UserError(f"{ckpt['path']} is a {cfg.task} checkpoint, not a codec")
    if cfg.entropy_model == "none":
        raise UserError(f"{ckpt['path']} is a plain autoencoder (entropy_model=none), not a codec")
    model = AutoEncoder(cfg)
    checkpoint.load_weights(model, checkpoint.inference_state(ckpt), ckpt["path"])
    return ckpt, cfg, model


def load_codec(path: str | Path, which: str = "best", refine: Refinement = NO_REFINEMENT) -> HyperpriorCodec:
    """A codec from a shipped model folder (models/), a run directory or a checkpoint file (EMA weights
    when the run kept them); a run's coder tables are built here."""
    if Path(path, MANIFEST).is_file():
        return load_shipped(path, refine=refine)
    ckpt, cfg, model = load_codec_checkpoint(path, which)
    model.latent_codec.export()
    return HyperpriorCodec(model, cfg, source=str(ckpt["path"]), refine=refine)


def init_state(path: str | Path, cfg: Config) -> tuple[dict, str]:
    """(weights, source) to start a training run from (config ``init_from``): an autoencoder or codec run, or
    a shipped codec folder. A codec's coder tables are dropped (training rebuilds them) and its gains are
    mapped onto ``cfg``'s levels, so that a model fine-tunes with other rate levels or a context added."""
    if Path(path, MANIFEST).is_file():
        state, init_cfg, source = *read_shipped(path), str(path)
    else:
        ckpt = checkpoint.load(path, "best")
        state, init_cfg, source = checkpoint.inference_state(ckpt), checkpoint.checkpoint_config(ckpt), ckpt["path"]
    state = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in TABLES}
    if "latent_codec.log_gains" in state and cfg.entropy_model == "hyperprior":
        gains = gains_for_levels(state["latent_codec.log_gains"].float(), init_cfg.level_lambdas, cfg.level_lambdas)
        state["latent_codec.log_gains"] = gains
    return state, source
