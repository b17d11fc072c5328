"""Command-line pieces shared by the entry scripts."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import data as data_lib
from .config import Config


def train_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data", required=True, help="CIFAR-10 source: cifar-10-batches-py root, image folder, .tar.gz, or cache .pt"
    )
    p.add_argument("--out", required=True, type=Path, help="run directory; an existing one resumes from its last.pt")
    p.add_argument("--config", help="YAML config (see jobs/configs/)")
    p.add_argument("--cache-dir", type=Path, default=None, help="where prepared data caches live (default: data/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=5 lr=1e-3")
    return p


def load_dataset(source: str, cfg: Config, cache_dir: Path | None, accelerator=None) -> data_lib.Dataset:
    """Load (preparing once, on the main process first) and apply the smoke-run subsets."""
    if accelerator is not None:
        with accelerator.main_process_first():
            dataset = data_lib.load(source, cfg.val_size, cfg.split_seed, cache_dir)
    else:
        dataset = data_lib.load(source, cfg.val_size, cfg.split_seed, cache_dir)
    for split, count in (("train", cfg.train_subset), ("val", cfg.val_subset)):
        dataset.images[split], dataset.labels[split] = dataset.subset(split, count)
    return dataset
