"""Single-file checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds plain tensors and Python scalars only, so loading never unpickles code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from .config import Config, config_from_dict
from .errors import UserError
from .files import atomic_path

FORMAT = "cifarae-ckpt-v1"


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the target."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def resolve(path: str | Path, which: str = "best") -> Path:
    """A run directory (-> its best/last checkpoint) or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        for name in (f"{which}.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise UserError(f"run directory {path} holds no checkpoint ({which}.pt or last.pt); train it first")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return path


def load(path: str | Path, which: str = "best") -> dict:
    path = resolve(path, which)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason}") from None
    except Exception as err:  # weights_only refuses pickled code: not one of ours
        raise UserError(f"{path} is not a cifarae checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not a cifarae checkpoint (expected format {FORMAT})")
    ckpt["path"] = str(path)
    return ckpt


def checkpoint_config(ckpt: dict) -> Config:
    return config_from_dict(ckpt["config"])


def load_weights(model: torch.nn.Module, state: dict, source: str, may_lack: str | tuple[str, ...] = ()) -> None:
    """load_state_dict with a one-line error naming the first mismatches.

    ``may_lack``: key prefixes that ``state`` may miss (those parameters keep their init).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (may_lack and k.startswith(may_lack))]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes))
            if keys
        )
        raise UserError(f"{source} holds another architecture or size ({detail})")
    model.load_state_dict(state, strict=not may_lack)


def inference_state(ckpt: dict) -> dict:
    """The weights to evaluate: the EMA copy when the run kept one."""
    return ckpt.get("ema_model") or ckpt["model"]


# What a derived checkpoint keeps besides the weights: no optimiser, scheduler or RNG state.
RUN_KEYS = ("format", "task", "config", "classes", "history", "epoch", "global_step", "best", "compression_ratio")


def new(cfg: Config, classes: list[str] | None, model_state: dict, **extra) -> dict:
    """A checkpoint dict of our format for ``model_state`` (e.g. a model built outside training)."""
    return {
        "format": FORMAT,
        "task": cfg.task,
        "config": cfg.to_dict(),
        "classes": classes,
        "model": model_state,
        "ema_model": None,
        **extra,
    }


def derived(ckpt: dict, model_state: dict, **extra) -> dict:
    """``ckpt``'s run metadata with other weights (a slimmed copy) and ``extra`` keys."""
    return {**{k: ckpt[k] for k in RUN_KEYS if k in ckpt}, "model": model_state, "ema_model": None, **extra}


def slim(ckpt: dict, only_prefix: str = "") -> dict:
    """An inference-only copy of ``ckpt``: its run metadata and the weights to evaluate.

    ``only_prefix`` keeps the weights under one prefix (e.g. "backbone.").
    """
    state = {k: v for k, v in inference_state(ckpt).items() if k.startswith(only_prefix)}
    return derived(ckpt, state)
