"""Train a codec beside a trained autoencoder with one recipe, from training to its RD evaluation.

    python src/train_codec.py --data PATH --ae runs/full/ae --out runs/full/codec \
        --recipe jobs/configs/codec/full.yaml [key=value ...]

The recipe (jobs/configs/codec/) gives each step's settings; each step is an entry script run in this
process. The training config is the AE's (so the backbone is the classifier's) with the recipe's
train section on top (entropy_model: hyperprior):
  train (src/train_ae.py) -> export (src/codec_export.py: OUT/model, a shipped-model folder; copy it
  to models/codec-v2 to ship it) -> rd (src/rd_eval.py: OUT/rd, every quality level against AVIF,
  WebP and JPEG).
OUT/model is a codec that `python src/codec.py compress IMG... -o DIR --model OUT/model` uses. Run
again, it resumes: training from OUT/last.pt, and a step whose output is newer than its input is skipped.
--steps runs some steps only (e.g. `--steps train export` on a GPU machine, `--steps rd` later on CPUs).
A recipe with `from: OTHER.yaml` continues that recipe's model: OTHER is trained and exported into
OUT/base first (same data and overrides), and training starts from OUT/base/model. A run folder that
holds its model but no checkpoint was trained elsewhere: its training and export are skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

import codec_export
import rd_eval
import train_ae
from cifarae import checkpoint
from cifarae.codec.shipped import MANIFEST
from cifarae.config import Config
from cifarae.errors import UserError, cli_main

STEPS = {"train", "export", "rd"}
SECTIONS = STEPS | {"from"}


def load_recipe(path: Path) -> dict:
    try:
        recipe = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise UserError(f"codec recipe {path} cannot be read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise UserError(f"codec recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(recipe, dict) or set(recipe) - SECTIONS or "train" not in recipe:
        raise UserError(f"codec recipe {path} needs a train section and only {', '.join(sorted(SECTIONS))}")
    if "from" in recipe and "init_from" in recipe["train"]:
        raise UserError(f"codec recipe {path} sets both from: and train.init_from; keep one")
    seen, link = {Path(path).resolve()}, recipe
    while "from" in link:  # the chain of recipes it continues: each one beside it, and no loop
        base = Path(path).parent / str(link["from"])
        if not base.is_file():
            raise UserError(f"codec recipe {path}: from: {link['from']} is not a recipe beside it")
        if base.resolve() in seen:
            raise UserError(f"codec recipe {path}: from: {link['from']} leads back to a recipe of its own chain")
        seen.add(base.resolve())
        link = yaml.safe_load(base.read_text()) or {}
    return recipe


def flags(section: dict) -> list[str]:
    """{'limit': 2000, 'splits': ['test']} -> ['--limit', '2000', '--splits', 'test']."""
    out = []
    for key, value in section.items():
        out.append("--" + key.replace("_", "-"))
        out += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return out


def overrides(values: dict) -> list[str]:
    """Config values as key=value overrides (YAML flow style, as the command line reads them)."""
    return [
        f"{k}={v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True).strip()}"
        for k, v in values.items()
    ]


def skipped(name: str, steps: list[str], done: bool, why: str = "done already") -> str:
    """Why step ``name`` is skipped, or "" to run it."""
    return "not in --steps" if name not in steps else why if done else ""


def trained_elsewhere(run: Path) -> bool:
    """A run folder with its exported model but no checkpoint (e.g. unpacked from a GPU machine): done."""
    return (run / "model" / MANIFEST).is_file() and not (run / "last.pt").is_file()


def newer(path: Path, than: Path) -> bool:
    """``path`` exists and is as new as ``than``, or ``than`` does not exist (nothing newer to make it from)."""
    return path.is_file() and (not than.is_file() or path.stat().st_mtime >= than.stat().st_mtime)


def step(name: str, skip: str, fn, argv: list[str]) -> None:
    """Run ``fn(argv)``, unless ``skip`` says why not."""
    if skip:
        print(f"codec: {name}: {skip}, skipped", flush=True)
        return
    print(f"codec: {name}: {' '.join(argv)}", flush=True)
    fn(argv)


STEPS = ("train", "export", "rd")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (dir, .tar.gz or prepared cache .pt)")
    p.add_argument(
        "--ae", type=Path, help="the autoencoder run whose config (backbone) the codec shares; default: config defaults"
    )
    p.add_argument("--out", required=True, type=Path, help="the codec's run directory")
    p.add_argument("--recipe", required=True, type=Path, help="codec recipe (jobs/configs/codec/*.yaml)")
    p.add_argument("--no-wandb", action="store_true", help="no W&B for training and the RD evaluation")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--no-size-limits", action="store_true", help="export: a probe's model, over the limits allowed")
    p.add_argument(
        "--steps",
        nargs="+",
        metavar="STEP",
        default=list(STEPS),
        help="the steps to run, in recipe order: train, export, rd (e.g. train export on a GPU machine, rd later)",
    )
    p.add_argument("overrides", nargs="*", help="key=value config overrides on top of the recipe's train section")
    args = p.parse_args(argv)
    # --steps takes every word after it, so overrides written after it land there: give them back
    args.overrides += [word for word in args.steps if "=" in word]
    args.steps = [word for word in args.steps if "=" not in word]
    unknown = [word for word in args.steps if word not in STEPS] or ([] if args.steps else ["(none)"])
    if unknown:
        raise UserError(f"--steps {' '.join(unknown)}: not a step; the steps are {', '.join(STEPS)}")
    return args


@cli_main
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe)
    ae_cfg = checkpoint.checkpoint_config(checkpoint.load(args.ae, "best")) if args.ae else Config()
    if ae_cfg.task != "ae":
        raise UserError(f"--ae {args.ae} is a {ae_cfg.task} run, not an autoencoder")
    train = {**ae_cfg.to_dict(), "task": "ae", "init_from": "", **recipe["train"]}
    if train.get("entropy_model") != "hyperprior":
        raise UserError(f"codec recipe {args.recipe} must train entropy_model: hyperprior (a codec)")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
    data = ["--data", args.data, *cache]
    base = args.out / "base"
    if "from" in recipe and "train" in args.steps and trained_elsewhere(base):
        print(f"codec: base: {base / 'model'} trained elsewhere, skipped", flush=True)
    elif "from" in recipe and "train" in args.steps:  # the recipe it continues: trained and exported into OUT/base
        print(f"codec: base: {args.recipe.parent / recipe['from']} -> {base}", flush=True)
        base_argv = ["--steps", "train", "export", *data, "--out", str(base)]
        base_argv += ["--recipe", str(args.recipe.parent / recipe["from"])] + ["--no-wandb"] * args.no_wandb
        main([*base_argv, *(["--ae", str(args.ae)] if args.ae else []), *args.overrides])
    if "from" in recipe:
        train["init_from"] = str(base / "model")

    if args.no_wandb:
        train["wandb"] = False
    step(
        "train",
        skipped("train", args.steps, trained_elsewhere(args.out), "trained elsewhere"),
        train_ae.main,
        ["--out", str(args.out), *data, *overrides(train), *args.overrides],
    )

    best = args.out / "best.pt"
    model = args.out / "model"
    export = ["--run", str(args.out), "--out", str(model), "--recipe", str(args.recipe)]
    export += ["--no-size-limits"] if args.no_size_limits else []
    done = trained_elsewhere(args.out) or newer(model / MANIFEST, best)
    step("export", skipped("export", args.steps, done), codec_export.main, export)
    rd = args.out / "rd"
    rd_argv = ["--model", str(model), "--out", str(rd), *data, *flags(recipe.get("rd", {}))]
    rd_argv += ["--no-wandb"] if args.no_wandb else []
    step("rd", skipped("rd", args.steps, newer(rd / "rd.json", model / MANIFEST)), rd_eval.main, rd_argv)
    if (model / MANIFEST).is_file():
        print(f"codec: {model} is ready: python src/codec.py compress IMAGE... -o DIR --model {model} [--quality Q]")


if __name__ == "__main__":
    main()
