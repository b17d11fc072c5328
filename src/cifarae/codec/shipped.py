"""Codec models shipped in the repository's models/ folder: export, checksums, lookup by model id.

A shipped model is a folder with ``model.json`` (config, model id, how it was trained, a SHA-256 per
file) and its state dict cut into files of at most ~4 MB: ``encoder.pt`` (backbone and latent heads),
``decoder.pt``, ``entropy.pt`` (the hyperprior with its coder tables) and, with a context,
``context.pt``. Transform weights are stored in float16, which is what the shipped model is: its model
id and every measurement are of the float16-rounded weights. Files are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from pathlib import Path

import torch

from .. import checkpoint
from ..config import Config, config_from_dict
from ..errors import UserError
from ..files import write_atomic
from ..models import AutoEncoder
from .format import MODEL_TAG_BYTES, parse
from .hyperprior_codec import HyperpriorCodec
from .refinement import NO_REFINEMENT, Refinement

DEFAULT_MODEL = "codec-v2"
MANIFEST = "model.json"
PARTS = {  # each weight goes to the first file with its prefix; a file with no weights is not written
    "encoder.pt": ("backbone.", "to_latent.", "to_skip."),
    # apart: two blocks would take encoder.pt past the per-file limit (about 0.15 MB each at full width)
    "analysis.pt": ("latent_blocks.", "skip_blocks.", "stem_to_skip."),
    "decoder.pt": ("decoder.",),
    "context.pt": ("latent_codec.context.", "latent_codec.subposition_contexts."),
    "entropy.pt": ("latent_codec.",),
}
MAX_FILE_BYTES = 4_200_000  # "about 4 MB" a file and "12 MB in all" (the issue): each with 5% to spare
MAX_MODEL_BYTES = 12_600_000
# Models shipped once and replaced since: model id -> the last commit that ships it (its files decode there). Only
# models that wrote files of the current format (5) belong here: the files of those replaced before (725c5da99168,
# 2f77579d16a4, ef99aa52249b, 7212e5003754, 67d76467e978) are format 3 or older, and their own error names the
# commit to use; so are the format-4 files of 486cffa0b41a (full_base.yaml's model, before the sub-position context).
# 4a318be8491e and fd696459458a: full_context.yaml's fine-tune at 3 epochs, then at 6 (before its levels moved);
# 6e92633d9e53 and 572d1ae57e83: full_levels.yaml with its 1 bpp levels drawn 1.5 times as often, then with the
# middle one 3 times (full.yaml's base: its files' bits are the shipped model's, under another model tag).
RETIRED_MODELS: dict[str, str] = {
    "486cffa0b41a": "da78422",
    "4a318be8491e": "f56bd2d",
    "fd696459458a": "902f722",
    "6e92633d9e53": "9c53500",
    "572d1ae57e83": "1cb62f4",
}


def models_dir() -> Path:
    """$CIFARAE_MODELS, else the checkout's models/ folder."""
    return Path(os.environ.get("CIFARAE_MODELS") or Path(__file__).resolve().parents[3] / "models")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _storage(name: str, t: torch.Tensor) -> torch.Tensor:
    # Transforms in float16; the entropy model's densities, medians and tables keep their precision.
    keep = name.startswith(("latent_codec.entropy_bottleneck.", "latent_codec.gaussian_conditional."))
    return t if keep or not t.is_floating_point() else t.half()


def _derived(name: str) -> bool:
    """A masked convolution's 0/1 mask (as large as its weight, 0.9 MB in the shipped model): its layer's
    constructor builds it from the shape, so it is not shipped, and read_shipped takes it from there."""
    return name.endswith(".mask")


def export(run: str | Path, out: Path, recipe: str, which: str = "best", size_limits: bool = True) -> dict:
    """Write the codec run ``run`` as a shipped model folder ``out``; returns its manifest. ``size_limits=False``
    is for a probe's model, measured and never shipped: files over the limits are kept, and model.json says so."""
    ckpt = checkpoint.load(run, which)
    cfg = checkpoint.checkpoint_config(ckpt)
    if cfg.entropy_model != "hyperprior":
        raise UserError(f"{ckpt['path']} has entropy_model={cfg.entropy_model!r}; only hyperprior codecs ship")
    model = AutoEncoder(cfg)
    checkpoint.load_weights(model, checkpoint.inference_state(ckpt), ckpt["path"])
    model.latent_codec.export()
    state = {k: _storage(k, v) for k, v in model.state_dict().items() if not _derived(k)}
    out.mkdir(parents=True, exist_ok=True)
    # The manifest is written last, and only for a folder within the limits: without it a folder is no model (a
    # stopped or refused export), and src/train_codec.py exports again.
    (out / MANIFEST).unlink(missing_ok=True)
    files, sizes = {}, {}
    for name, prefixes in PARTS.items():
        part = {k: state.pop(k) for k in list(state) if k.startswith(prefixes)}
        if not part:
            continue
        data = _tensor_file(part)
        write_atomic(out / name, data)
        files[name], sizes[name] = _sha256(data), len(data)
    over = [
        f"{out / name} is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.1f} MB allowed per file"
        for name, size in sizes.items()
        if size > MAX_FILE_BYTES
    ]
    if (total := sum(sizes.values())) > MAX_MODEL_BYTES:
        over.append(f"{out} is {total / 1e6:.1f} MB in all, over the {MAX_MODEL_BYTES / 1e6:.1f} MB allowed")
    if over and size_limits:
        raise UserError(over[0])
    manifest = {"format": "cifarae-codec-model", "config": cfg.to_dict(), "files": files, "recipe": recipe}
    if over:
        manifest["over_size_limits"] = True  # a probe's model (size_limits=False): not one to ship
    manifest["source"] = {"run": str(ckpt["path"]), "epoch": ckpt.get("epoch")}
    manifest["model_id"] = load_shipped(out, manifest).model_id.hex()
    _check_tag(manifest["model_id"], out)
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def _tensor_file(state: dict) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except OSError as err:
        raise UserError(f"{folder} is not a shipped codec model (no readable {MANIFEST}: {err.strerror})") from None
    except ValueError:
        raise UserError(f"{folder / MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "cifarae-codec-model":
        raise UserError(f"{folder / MANIFEST} is not a cifarae codec manifest")
    return manifest


def read_shipped(folder: str | Path, manifest: dict | None = None) -> tuple[dict, Config]:
    """(state dict, config) of a shipped model folder, after checking every file's SHA-256."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    state = {}
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} is missing; restore it (git checkout -- {path})")
        data = path.read_bytes()  # read once: checked, then loaded
        if _sha256(data) != digest:
            raise UserError(f"{path} does not match its checksum in {MANIFEST}; restore it (git checkout -- {path})")
        state.update(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    cfg = config_from_dict(manifest["config"])
    derived = {k: v for k, v in AutoEncoder(cfg).state_dict().items() if _derived(k)}
    return {**derived, **state}, cfg


def load_shipped(
    folder: str | Path, manifest: dict | None = None, refine: Refinement = NO_REFINEMENT, source: str | None = None
) -> HyperpriorCodec:
    """A shipped model folder -> HyperpriorCodec, after checking every file's SHA-256. ``source`` names it in
    describe() (default: the folder as given)."""
    state, cfg = read_shipped(folder, manifest)
    model = AutoEncoder(cfg)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return HyperpriorCodec(model, cfg, source=source or str(folder), refine=refine)


def shipped_models() -> dict[str, Path]:
    """Model id (hex) -> folder, for every shipped model."""
    found = {}
    for manifest in sorted(models_dir().glob(f"*/{MANIFEST}")):
        try:
            found[read_manifest(manifest.parent)["model_id"]] = manifest.parent
        except (UserError, KeyError):
            continue
    return found


def default_model(refine: Refinement = NO_REFINEMENT) -> HyperpriorCodec:
    folder = models_dir() / DEFAULT_MODEL
    if not (folder / MANIFEST).is_file():
        raise UserError(f"no shipped codec at {folder}; pass --model RUN (a codec run) or restore models/")
    # named as users know it, not by this machine's absolute path (describe() is kept in outs/ files)
    return load_shipped(folder, refine=refine, source=f"models/{DEFAULT_MODEL}")


def _with_tag(tag: str, ids) -> list[str]:
    return [model_id for model_id in ids if model_id.startswith(tag)]


def _check_tag(model_id: str, out: Path) -> None:
    """Files carry only the first MODEL_TAG_BYTES of a model id: refuse a model whose tag another one has."""
    tag = model_id[: 2 * MODEL_TAG_BYTES]
    shipped = {i: folder for i, folder in shipped_models().items() if folder.resolve() != out.resolve()}
    clash = [i for i in _with_tag(tag, [*shipped, *RETIRED_MODELS]) if i != model_id]
    if clash:
        raise UserError(
            f"{out}: model {model_id} starts with the tag {tag} of model {clash[0]}, so their files could not be "
            "told apart; train it again with another seed"
        )


def model_for(data: bytes) -> HyperpriorCodec:
    """The shipped model that wrote a file, found by the model tag in its header."""
    parsed = parse(data)  # the header alone: one-line errors, older formats too
    tag = parsed.model_tag.hex()
    folders = [folder for model_id, folder in shipped_models().items() if model_id.startswith(tag)]
    retired = _with_tag(tag, RETIRED_MODELS)
    if not folders and retired:
        raise UserError(
            f"file was written by model {retired[0]}, shipped before the current one; decompress it with "
            f"a checkout of commit {RETIRED_MODELS[retired[0]]}"
        )
    if not folders:
        raise UserError(
            f"file was written by a model whose id starts with {tag}, which is not among the shipped models in "
            f"{models_dir()}; pass the --model that compressed it"
        )
    return _cached(str(folders[0]))


@functools.lru_cache(maxsize=4)
def _cached(folder: str) -> HyperpriorCodec:
    return load_shipped(folder)
