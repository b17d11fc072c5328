"""Do changes to the analysis side move the codec's RD curve? (issue #26: the decoder probe found the encoder the limit)

experiments/codec/heads.sh trains one recipe twice from the same seed: as it is (the control) and with one change:
``analysis_blocks``, residual bottleneck blocks before each latent head that start as the identity (``finetune``
trains the shipped model on, ``scratch`` its design from scratch), ``skip_from_stem`` (``stem``: the skip latent
also reads the stem's full-resolution features), or a change to training alone (``clip``: ``clip_quantiles=false``,
grad_clip leaves out the quantiles), or both of codec/full.yaml's changes (``next``). This script codes the same
stratified validation images at every level with each model (real files, whole-file bits, decoded and compared) and
reports each one's points, and each model against the others: the PSNR gap at equal bpp and the BD-rate, with
paired bootstrap intervals over the images.

    python experiments/codec/heads_compare.py --data DATA --models NAME=MODEL... [--val 1000]
        [--out outs/codec_heads] [--cache runs/codec_heads_curves]

Each model's per-image curve is kept in CACHE/<model id>-<images>-format<version>.npz and read back on the next call,
so that models can be coded in separate runs (one core each) and compared at the end.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarae import data as data_lib
from cifarae import rd
from cifarae.codec import VERSION, load_codec
from cifarae.errors import cli_main
from cifarae.files import write_atomic


def blocks_share(model, images: torch.Tensor) -> dict:
    """How much each head's output moves with its analysis blocks: |head(blocks(f)) - head(f)| / |head(f)| over the
    first 500 images (0 when its blocks stayed the identity they started as; none when it has no blocks)."""
    model = copy.deepcopy(model).float().eval()  # a copy: the codec's own stays float64, as it codes
    with torch.no_grad():
        _, tap, features = model.backbone.forward_with_taps(images.float() / 255)
        heads = {
            "latent": (model.latent_blocks, model.to_latent, features),
            "skip": (model.skip_blocks, model.to_skip, tap),
        }
        return {
            name: ((head(blocks(f)) - head(f)).norm() / head(f).norm()).item()
            for name, (blocks, head, f) in heads.items()
            if len(blocks)
        }


def stem_share(model, images: torch.Tensor) -> float:
    """How much of the skip head's output comes from the stem: |stem_to_skip(stem)| / |to_skip(blocks(tap))| over the
    first 500 images (0 while it is still the zero it started as)."""
    model = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        stem, tap, _ = model.backbone.forward_with_taps(images.float() / 255)
        from_stem = model.stem_to_skip(F.pixel_unshuffle(stem, model.stem_fold))
        return (from_stem.norm() / model.to_skip(model.skip_blocks(tap)).norm()).item()


def curve_of(model: str, images: torch.Tensor, cache: Path) -> tuple[rd.Curve, dict]:
    codec = load_codec(model)
    # the images are the first len(images) stratified; the file format sets the bytes a file costs
    path = cache / f"{codec.model_id.hex()}-{len(images)}-format{VERSION}.npz"
    params = sum(p.numel() for p in codec.model.parameters())
    info = {"model": model, "model_id": codec.model_id.hex(), "parameters": params}
    info["blocks_share"] = blocks_share(codec.model, images[:500])
    if codec.model.stem_to_skip is not None:
        info["stem_share"] = stem_share(codec.model, images[:500])
    if path.is_file():
        return rd.Curve.load(path, "cae", list(range(codec.levels))), info
    curve, _ = rd.hyperprior_curve(codec, images, None)
    cache.mkdir(parents=True, exist_ok=True)
    curve.save(path)
    return curve, info


@cli_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="NAME=MODEL: a shipped model folder or codec run")
    ap.add_argument("--val", type=int, default=1000, help="stratified validation images")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", default="outs/codec_heads")
    ap.add_argument("--cache", default="runs/codec_heads_curves", help="per-image curves, one file per model")
    args = ap.parse_args()
    out = Path(args.out)
    images, _ = data_lib.load(args.data).subset("val", args.val)
    curves, result = {}, {"val_images": len(images), "models": {}, "comparisons": {}}
    for name, model in (m.split("=", 1) for m in args.models):
        curves[name], info = curve_of(model, images, Path(args.cache))
        result["models"][name] = {**info, "points": curves[name].points()}
        print(name, " ".join(f"{p['bpp']:.3f}:{p['psnr']:.2f}" for p in curves[name].points()), flush=True)
    for a, b in itertools.combinations(curves, 2):
        stats = rd.compare(curves[b], curves[a], payload=False, resamples=args.resamples)
        result["comparisons"][f"{b} vs {a}"] = stats
        print(f"{b} vs {a}:", {k: round(v["value"], 3) for k, v in stats.items() if v["value"] is not None})
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "compare.json", json.dumps(result, indent=1).encode())


if __name__ == "__main__":
    main()
