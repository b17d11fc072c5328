"""Codec runs from disk: a checkpoint's config and model, and a ready Codec (fitted prior, context model)."""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint
from ..config import Config
from ..errors import UserError
from ..models import AutoEncoder
from .context import CheckerboardContext
from .facade import Codec
from .hyperprior_codec import HyperpriorCodec
from .refinement import NO_REFINEMENT, Refinement
from .shipped import MANIFEST, load_shipped


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


def load_codec(path: str | Path, which: str = "best", refine: Refinement = NO_REFINEMENT) -> Codec | HyperpriorCodec:
    """A codec from a shipped model folder (models/), a run directory or a checkpoint file (EMA weights
    when the run kept them). Hyperprior (v2) runs come back as a HyperpriorCodec, their coder tables
    built here; factorized-prior (v1) runs as a Codec.

    A run directory with a ``context.pt`` (written by src/codec_context.py: a refitted prior and a
    context model) uses it, else one with a ``codec.pt`` (src/codec_fit.py: the refitted prior).
    """
    if Path(path, MANIFEST).is_file():
        return load_shipped(path, refine=refine)
    if which == "best" and Path(path).is_dir():
        which = next((n for n in ("context", "codec") if (Path(path) / f"{n}.pt").is_file()), which)
    ckpt, cfg, model = load_codec_checkpoint(path, which)
    if cfg.entropy_model == "hyperprior":
        model.latent_codec.export()
        return HyperpriorCodec(model, cfg, source=str(ckpt["path"]), refine=refine)
    context = None
    if "context" in ckpt:
        hidden = (ckpt.get("context_fit") or {}).get("hidden")
        if not isinstance(hidden, int) or hidden < 1:
            raise UserError(f"{ckpt['path']} holds a context model without its width; rerun src/codec_context.py")
        context = CheckerboardContext(model.latent_shape[0], hidden)
        checkpoint.load_weights(context, ckpt["context"], ckpt["path"])
    return Codec(model, cfg, source=str(ckpt["path"]), refine=refine, context=context)
