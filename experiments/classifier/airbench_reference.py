"""Calibration probe: Keller Jordan's airbench94, unchanged, trained and tested on a CIFAR-10 copy here.

    pip install airbench==0.1.8
    python experiments/classifier/airbench_reference.py SOURCE --epochs 9.9 --seed 0 --out outs/airbench_ref/e10_s0.json

airbench94 reaches 94.0% (mean of 1,000 runs) on torchvision's CIFAR-10 in 9.9 epochs. Its accuracy
on another copy of the data, such as the JPEG archive, is what a faithful implementation of the same
network and recipe can expect there. So it tells "the data costs points" apart from "this project's
engine costs points". Its training loop, network, optimiser and augmentation are airbench's own
(the pip package); this script only feeds it the data and runs it.

Like airbench, it trains on all 50,000 training images and reports the test split (no validation
split). airbench is written for one CUDA GPU in fp16: on a GPU it runs as published, untouched. Without
CUDA, the script runs it on the CPU: float32 weights, each forward pass under bf16 autocast,
wall-clock timing instead of CUDA events. For that, and only while it runs, ``on_cpu`` swaps five
CUDA-only attributes of torch and airbench and restores them after (the one patch in the project,
of third-party code that cannot otherwise leave the GPU). Nothing in the recipe changes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarae.data import prepare
from cifarae.errors import UserError, cli_main


class WallClockEvent:
    """Stands in for torch.cuda.Event(enable_timing=True) on the CPU."""

    def __init__(self, **_):
        self.t = 0.0

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end) -> float:  # milliseconds, as CUDA events report
        return 1e3 * (end.t - self.t)


@contextlib.contextmanager
def on_cpu(utils):
    """Run airbench's CUDA code on the CPU: loaders and network stay there, timing uses the wall clock."""
    base_loader = utils.CifarLoader

    class CpuCifarLoader(base_loader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "gpu": "cpu"})
            self.images = self.images.float()  # airbench keeps them in fp16 for its fp16 network

    patches = [
        (utils, "CifarLoader", CpuCifarLoader),
        (torch.cuda, "Event", WallClockEvent),
        (torch.cuda, "synchronize", lambda *a, **k: None),
        # make_net94 ends with net.half().cuda(); on the CPU the weights stay float32 where they are.
        (torch.nn.Module, "half", lambda self: self),
        (torch.nn.Module, "cuda", lambda self, *a, **k: self),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def with_bf16_forward(net: torch.nn.Module) -> torch.nn.Module:
    """Each forward pass of ``net`` runs in its own bf16 autocast region and returns float32 logits.

    One region per call, not one around the whole run: autocast caches the bf16 copies of the weights
    until its region ends, so a run-long region would keep using the initial weights.
    """
    forward = net.forward

    def bf16_forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(x).float()

    net.forward = bf16_forward
    return net


def write_airbench_files(source: str, folder: Path, batch_size: int) -> None:
    """airbench's CifarLoader reads <folder>/{train,test}.pt: NHWC uint8 images, labels, classes."""
    data = torch.load(prepare(source), weights_only=True, map_location="cpu")
    n_train = len(data["train_labels"])
    if n_train < batch_size:
        raise UserError(f"{source} has {n_train} training images; airbench94 needs at least one batch of {batch_size}")
    for split in ("train", "test"):
        images = data[f"{split}_images"].permute(0, 2, 3, 1).contiguous()
        torch.save(
            {"images": images, "labels": data[f"{split}_labels"], "classes": data["classes"]}, folder / f"{split}.pt"
        )


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a CIFAR-10 archive, image folder, torchvision folder or cache")
    p.add_argument("--epochs", type=float, default=9.9, help="airbench94's default: 9.9")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the result")
    p.add_argument(
        "--cpu-precision", choices=("bf16", "fp32"), default="bf16",
        help="the CPU's forward passes: bf16 autocast (the measured runs), or fp32 (~10x faster on CPUs without bf16)",
    )  # fmt: skip
    args = p.parse_args(argv)
    try:
        import airbench
        from airbench import utils
        from airbench.lib_airbench94 import hyp, make_net94
    except ImportError:
        raise UserError("the airbench package is missing; pip install airbench==0.1.8") from None
    if args.epochs <= 0:
        raise UserError(f"--epochs {args.epochs} must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        # airbench's train() reads its test split from the relative path 'cifar10': run it from tmp.
        folder = Path(tmp) / "cifar10"
        folder.mkdir()
        write_airbench_files(args.source, folder, hyp["opt"]["batch_size"])
        run = on_cpu(utils) if device == "cpu" else contextlib.nullcontext()
        bf16 = device == "cpu" and args.cpu_precision == "bf16"
        make_net = (lambda: with_bf16_forward(make_net94())) if bf16 else make_net94
        with run, contextlib.chdir(tmp):
            loader_cls = utils.CifarLoader
            train_loader = loader_cls(
                "cifar10", train=True, batch_size=hyp["opt"]["batch_size"], aug=hyp["aug"], altflip=True
            )
            test_loader = loader_cls("cifar10", train=False, batch_size=2000)
            start = time.perf_counter()
            model = airbench.train94(train_loader, epochs=args.epochs, make_net=make_net)
            seconds = time.perf_counter() - start
            accuracy = {f"tta{level}": utils.evaluate(model, test_loader, tta_level=level) for level in (0, 1, 2)}
            # The trained model's loss on the (unaugmented) training images, in airbench's own terms.
            train_logits = utils.infer(model, train_loader, tta_level=0).float()
            smoothing = hyp["opt"]["label_smoothing"]
            train_loss = F.cross_entropy(train_logits, train_loader.labels, label_smoothing=smoothing).item()
    result = {
        "probe": "airbench94 (pip airbench==0.1.8), recipe unchanged",
        "source": str(args.source),
        "device": device,
        "epochs": args.epochs,
        "forward_precision": ("bf16" if bf16 else "fp32") if device == "cpu" else "fp16",
        "seed": args.seed,
        "train_images": int(len(train_loader.labels)),
        "test_images": int(len(test_loader.labels)),
        "test_accuracy": accuracy,
        "train_loss": train_loss,
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
