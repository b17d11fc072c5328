"""Evaluate a trained run (autoencoder or classifier) on the train, validation and test splits.

    python src/evaluate.py --run RUN_DIR --data PATH [--splits train,val,test] [--checkpoint best|last|FILE]

Writes RUN_DIR/eval/{metrics.json, metrics.csv, *.png} and logs them to W&B (offline without
credentials). Works under `accelerate launch` / `torchrun` too; the numbers do not change.
"""

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator

from cifarae import checkpoint, data
from cifarae.errors import UserError, cli_main
from cifarae.evaluation import evaluate, parse_splits


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    # --run-dir: the same flag for torchrun, whose own parser mistakes --run for its --run-path.
    p.add_argument("--run", "--run-dir", dest="run", required=True, type=Path, help="run directory to evaluate")
    p.add_argument("--data", required=True, help="CIFAR-10 source or prepared cache")
    p.add_argument("--splits", default="train,val,test")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint file")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: RUN/eval)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast, ~2x faster")
    p.add_argument("--no-wandb", action="store_true")
    args = p.parse_args(argv)

    splits = parse_splits(args.splits)
    if not args.run.is_dir():
        raise UserError(f"run directory {args.run} does not exist")
    if args.checkpoint in ("best", "last"):
        ckpt = checkpoint.load(args.run, args.checkpoint)
    else:
        ckpt = checkpoint.load(args.checkpoint)
    cfg = checkpoint.checkpoint_config(ckpt)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), log_with=None if args.no_wandb else "wandb")
    with accelerator.main_process_first():
        dataset = data.load(args.data, cfg.val_size, cfg.split_seed, args.cache_dir)
    history_file = args.run / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else None
    out_dir = args.out or args.run / "eval"
    results = evaluate(
        ckpt,
        dataset,
        splits,
        out_dir,
        accelerator,
        args.batch_size,
        history,
        not args.no_wandb,
        args.precision == "bf16",
    )
    # Every rank waits for the main one's plots, then all leave the process group together: a rank
    # that exits with the group still alive can abort in gloo's teardown ("terminate called ...").
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if accelerator.is_main_process:
        key = "psnr_dataset" if cfg.task == "ae" else "accuracy"
        summary = ", ".join(f"{s} {key}={r[key]:.4f}" for s, r in results.items())
        print(f"evaluated {ckpt['path']}: {summary}; files in {out_dir}")


if __name__ == "__main__":
    main()
