"""Decode a CIFAR-10 source once into the uint8 cache that every job loads in under a second.

python src/prepare_data.py --data PATH [--cache-dir data]
python src/prepare_data.py --download --data data      # torchvision download (needs internet)
"""

import argparse
from pathlib import Path

import torch

from cifarae import data
from cifarae.config import Config
from cifarae.errors import UserError, cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--data", required=True, help="cifar-10-batches-py root, image folder, or .tar.gz")
    p.add_argument("--download", action="store_true", help="download with torchvision into --data first")
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        cache = data.prepare(args.data, args.cache_dir, download=args.download)
    except (OSError, RuntimeError) as err:
        if not args.download:
            raise
        raise UserError(f"could not download CIFAR-10 ({type(err).__name__}); no network? pass DATA=<path>") from None
    blob = torch.load(cache, weights_only=True)
    print(
        f"cache {cache} ready: {len(blob['train_labels'])} training and {len(blob['test_labels'])} test images, "
        f"fingerprint {blob['fingerprint']} (each job splits its validation images off the training set: the "
        f"config's val_size, {Config.val_size} by default)"
    )


if __name__ == "__main__":
    main()
