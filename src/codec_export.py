"""Export a trained hyperprior codec run as a shipped model folder (what models/codec-v2 holds).

    python src/codec_export.py --run RUN --out models/codec-v2 --recipe jobs/configs/codec/full.yaml

Builds the entropy coder's tables, stores the weights in files of at most ~4 MB (transforms in
float16) with a SHA-256 each in model.json, and prints the model id that its files will carry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarae.codec.shipped import export
from cifarae.errors import cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="codec run directory or checkpoint (entropy_model=hyperprior)")
    p.add_argument("--out", required=True, type=Path, help="the model folder to write")
    p.add_argument("--recipe", default="", help="the recipe that trained it (recorded in model.json)")
    p.add_argument("--which", default="best", choices=("best", "last"))
    p.add_argument(
        "--no-size-limits", action="store_true", help="a probe's model, to measure and not to ship: no size limits"
    )
    args = p.parse_args(argv)
    # refuses a model over the size limits, unless --no-size-limits
    manifest = export(args.run, args.out, args.recipe, args.which, size_limits=not args.no_size_limits)
    for name in manifest["files"]:
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1e6:.2f} MB")
    print(f"{args.out}: model id {manifest['model_id']}")


if __name__ == "__main__":
    main()
