"""Export a trained hyperprior codec run as a shipped model folder (what models/codec-v2 holds).

    python src/codec_export.py --run RUN --out models/codec-v2 --recipe jobs/configs/codec/full.yaml

Builds the entropy coder's tables, stores the weights in files of at most ~4 MB (transforms in
float16) with a SHA-256 each in model.json, and prints the model id that its files will carry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarae.codec.shipped import MANIFEST, MAX_FILE_BYTES, MAX_MODEL_BYTES, export
from cifarae.errors import UserError, cli_main


def refuse(out: Path, why: str) -> None:
    """Unship a folder over the size limits: without its manifest it is no model, and the next run exports again."""
    (out / MANIFEST).unlink()
    raise UserError(f"{why}; {out} is left without its {MANIFEST}")


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="codec run directory or checkpoint (entropy_model=hyperprior)")
    p.add_argument("--out", required=True, type=Path, help="the model folder to write")
    p.add_argument("--recipe", default="", help="the recipe that trained it (recorded in model.json)")
    p.add_argument("--which", default="best", choices=("best", "last"))
    args = p.parse_args(argv)
    manifest = export(args.run, args.out, args.recipe, args.which)
    for name in manifest["files"]:
        size = (args.out / name).stat().st_size
        if size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES / 1e6
            refuse(args.out, f"{args.out / name} is {size / 1e6:.1f} MB, over the {limit:.1f} MB allowed per file")
        print(f"{args.out / name}: {size / 1e6:.2f} MB")
    total = sum((args.out / name).stat().st_size for name in manifest["files"])
    if total > MAX_MODEL_BYTES:
        refuse(args.out, f"{args.out} is {total / 1e6:.1f} MB in all, over the {MAX_MODEL_BYTES / 1e6:.1f} MB allowed")
    print(f"{args.out}: model id {manifest['model_id']}")


if __name__ == "__main__":
    main()
