"""CIFAR-10: read any supported source once into a cached uint8 tensor file, then serve
batches from the device with batched on-device augmentation (as in airbench).

Sources: torchvision's ``cifar-10-batches-py`` layout, an image-folder tree
``train/<class>/*`` + ``test/<class>/*``, or a ``.tar.gz`` of such a tree, or the cache itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UserError
from .files import atomic_path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CACHE_FORMAT = "cifarae-data-v1"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DEFAULT_CACHE_DIR = Path(os.environ.get("CIFARAE_CACHE", "data"))


# ---------------------------------------------------------------------------- reading sources
def _decode(raw: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as img:
            arr = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise UserError(f"cannot decode image {name}: {err}") from None
    if arr.shape != (32, 32, 3):
        raise UserError(f"image {name} is {arr.shape[1]}x{arr.shape[0]}, expected 32x32 CIFAR-10 images")
    return arr


def _collect(items: list[tuple[str, str, str, bytes]], origin: str) -> dict:
    """items: (split, class name, file name, raw bytes) -> tensors per split in canonical class order."""
    out = {}
    for split in ("train", "test"):
        rows = sorted((c, n, raw) for s, c, n, raw in items if s == split)
        present = {c for c, _, _ in rows}
        missing = [c for c in CLASSES if c not in present]
        if missing:
            raise UserError(f"{origin}: split '{split}' has no images of class {', '.join(missing)}")
        extra = sorted(present - set(CLASSES))
        if extra:
            raise UserError(f"{origin}: split '{split}' has unknown class folder(s) {', '.join(extra)}")
        images = np.stack([_decode(raw, f"{origin}:{split}/{c}/{n}") for c, n, raw in rows])
        labels = [CLASSES.index(c) for c, _, _ in rows]
        out[split] = (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels))
    return out


def _read_image_folder(root: Path) -> dict:
    items = []
    for split in ("train", "test"):
        for path in sorted((root / split).glob("*/*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((split, path.parent.name, path.name, path.read_bytes()))
    return _collect(items, str(root))


def _read_archive(path: Path) -> dict:
    items = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                splits = [i for i, p in enumerate(parts[:-2]) if p in ("train", "test")]
                if not splits:
                    continue
                i = splits[-1]
                if len(parts) - i != 3:
                    continue
                items.append((parts[i], parts[i + 1], parts[i + 2], tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError, Exception) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"cannot read archive {path}: {err or type(err).__name__}; is it a complete .tar.gz?") from None
    if not items:
        raise UserError(f"archive {path} holds no train/<class>/*.png|jpg images")
    return _collect(items, str(path))


def _read_torchvision(root: Path, download: bool) -> dict:
    # torchvision verifies the official files' md5 sums before it unpickles them, so only the
    # genuine CIFAR-10 batches are ever unpickled.
    from torchvision.datasets import CIFAR10

    out = {}
    for split in ("train", "test"):
        try:
            ds = CIFAR10(str(root), train=split == "train", download=download)
        except RuntimeError as err:  # torchvision's integrity check failed
            raise UserError(f"{root}/cifar-10-batches-py: {err}") from None
        if list(ds.classes) != list(CLASSES):
            raise UserError(f"{root}: classes {ds.classes} are not CIFAR-10's")
        out[split] = (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets))
    return out


def detect_layout(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".pt":
            return "cache"
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "archive"
    elif path.is_dir():
        if (path / "cifar-10-batches-py").is_dir():
            return "torchvision"
        if path.name == "cifar-10-batches-py":
            return "torchvision-inner"
        if (path / "train").is_dir() and (path / "test").is_dir():
            return "folder"
        subdirs = [p for p in path.iterdir() if p.is_dir()]
        if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
            return "folder-nested"
    raise UserError(
        f"{path}: unknown data layout; expected cifar-10-batches-py/, train/<class>/ + test/<class>/, "
        "a .tar.gz of such a tree, or a prepared .pt cache"
    )


def fingerprint(path: Path) -> str:
    """Cheap identity of a source: content hash for files, (name, size, mtime) listing for trees."""
    h = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- splits
def stratified_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Indices of ``count`` samples with classes as balanced as possible, fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=gen)] for idx in per_class]
    base, extra = divmod(count, len(classes))
    chosen = [idx[: base + (i < extra)] for i, idx in enumerate(per_class)]
    return torch.cat(chosen).sort().values


def split_train_val(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    val = stratified_subset(labels, val_size, seed)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val


# ---------------------------------------------------------------------------- cache
def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def prepare(source: str | Path, cache_dir: Path | None = None, download: bool = False, verbose: bool = True) -> Path:
    """Decode ``source`` once into ``<cache_dir>/<name>-<fingerprint>.pt``; return the cache path.

    A cache is keyed by the source's fingerprint, so a changed source gets a new cache and a
    stale one is never used.
    """
    path = Path(source)
    if not path.exists():
        if download:
            path.mkdir(parents=True, exist_ok=True)
        else:
            raise UserError(f"data path {path} does not exist; pass DATA=<CIFAR-10 dir or .tar.gz> (or --download)")
    layout = "torchvision" if download else detect_layout(path)
    if layout == "cache":
        return path
    if layout == "torchvision-inner":
        path, layout = path.parent, "torchvision"
    if layout == "folder-nested":
        path, layout = next(p for p in path.iterdir() if p.is_dir()), "folder"
    if layout == "torchvision" and download:
        _read_torchvision(path, download=True)  # fetch before fingerprinting
    fp = fingerprint(path / "cifar-10-batches-py" if layout == "torchvision" else path)
    stem = path.name.replace(".tar.gz", "").replace(".tgz", "").replace(".tar", "")
    cache = Path(cache_dir or DEFAULT_CACHE_DIR) / f"{stem}-{fp}.pt"
    if cache.is_file():
        return cache
    if verbose:
        print(f"preparing CIFAR-10 from {path} ({layout}) -> {cache}", flush=True)
    reader = {"torchvision": lambda: _read_torchvision(path, False), "folder": lambda: _read_image_folder(path)}
    splits = reader.get(layout, lambda: _read_archive(path))()
    data = {
        "format": CACHE_FORMAT,
        "source": str(path),
        "fingerprint": fp,
        "classes": list(CLASSES),
        "train_images": splits["train"][0],
        "train_labels": splits["train"][1],
        "test_images": splits["test"][0],
        "test_labels": splits["test"][1],
    }
    _atomic_save(data, cache)
    return cache


@dataclass
class Dataset:
    """All of CIFAR-10 as uint8 tensors, with the train/val split applied."""

    images: dict[str, torch.Tensor]  # split -> N x 3 x 32 x 32 uint8
    labels: dict[str, torch.Tensor]  # split -> N int64
    classes: list[str]
    fingerprint: str
    split_seed: int = 0

    def subset(self, split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of ``count`` stratified images of ``split`` (all of it for 0 or more than it has).

        The one subset convention: the split's seed picks them, so a count names the same images in
        every script that loads the data set with the same split.
        """
        images, labels = self.images[split], self.labels[split]
        if not 0 < count < len(labels):
            return images, labels
        keep = stratified_subset(labels, count, self.split_seed)
        return images[keep], labels[keep]


def load(source: str | Path, val_size: int = 5000, split_seed: int = 0, cache_dir: Path | None = None) -> Dataset:
    cache = prepare(source, cache_dir)
    try:
        data = torch.load(cache, weights_only=True, map_location="cpu")
    except Exception as err:
        raise UserError(f"cache {cache} is unreadable ({type(err).__name__}); delete it and run make data") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise UserError(f"{cache} is not a {CACHE_FORMAT} cache; delete it and run make data DATA=<source>")
    # prepare() named the cache after the source's current fingerprint; the content must agree.
    if Path(source).suffix != ".pt" and not cache.stem.endswith(data["fingerprint"]):
        raise UserError(f"cache {cache} does not match its source {data['source']}; delete it and rerun")
    train_all, train_labels = data["train_images"], data["train_labels"]
    if not (
        train_all.dtype == torch.uint8 and train_all.shape[1:] == (3, 32, 32) and len(train_all) == len(train_labels)
    ):
        raise UserError(f"cache {cache} holds tensors of the wrong shape or type; delete it and rerun make data")
    if not 0 <= val_size < len(train_all):
        raise UserError(f"val_size={val_size} must be between 0 (no validation split) and {len(train_all) - 1}")
    train_idx, val_idx = split_train_val(train_labels, val_size, split_seed)
    return Dataset(
        images={"train": train_all[train_idx], "val": train_all[val_idx], "test": data["test_images"]},
        labels={"train": train_labels[train_idx], "val": train_labels[val_idx], "test": data["test_labels"]},
        classes=list(data["classes"]),
        fingerprint=data["fingerprint"],
        split_seed=split_seed,
    )


# ---------------------------------------------------------------------------- device loader
def batch_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip a random half of the batch horizontally."""
    mask = torch.rand(len(x), generator=gen, device=gen.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def alternating_flip(n: int, seed: int) -> torch.Tensor:
    """airbench's flip, as n booleans for even epochs (odd epochs flip the others): a fixed random half
    of the images is mirrored in even epochs, the other half in odd ones, so every image is seen both
    ways in every two epochs."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def batch_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels with reflection padding: one batched gather."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    width = w + 2 * pad
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(x.device)
    rows = dy.view(n, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = dx.view(n, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    flat = (rows * width + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, flat).view(n, c, h, w)


class DeviceLoader:
    """Batches of [0, 1] floats cut from a uint8 tensor that lives on the device.

    Each training epoch has a seeded permutation; under DDP rank r takes every world-th index
    of it, so shards are disjoint, and shards are cut to equal length so all ranks step
    together. Evaluation covers every sample exactly once. Augmentation draws from a generator seeded by
    (seed, epoch, step), so a run resumed mid-epoch sees the same batches.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str = "cpu",
        augment: tuple[str, ...] | list[str] = (),
        crop_pad: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.train = batch_size, train
        self.augment, self.crop_pad = tuple(augment), crop_pad
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.start_step = 0
        self.flip_phase = alternating_flip(len(labels), seed).to(self.device) if "altflip" in self.augment else None

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def batch_indices(self) -> list[torch.Tensor]:
        """This rank's batches of sample indices for the current epoch."""
        n, bs = len(self.labels), self.batch_size
        if not self.train:
            # Fixed chunks dealt round-robin to ranks: every sample once, and each chunk is the same
            # batch whatever the world size, so DDP evaluation reproduces single-process numbers.
            return [torch.arange(s, min(s + bs, n)) for s in range(self.rank * bs, n, self.world_size * bs)]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        shard = order[self.rank :: self.world_size][: n // self.world_size]  # equal length on every rank
        return [shard[s * bs : (s + 1) * bs] for s in range(len(shard) // bs)]

    def __len__(self) -> int:
        return len(self.batch_indices())

    def __iter__(self):
        for step, batch in enumerate(self.batch_indices()):
            if step < self.start_step:
                continue
            batch = batch.to(self.device)
            x = self.images[batch].float().div_(255)
            if self.train and self.augment:
                gen = torch.Generator(self.device).manual_seed(hash((self.seed, self.epoch, step, self.rank)) % 2**62)
                if "crop" in self.augment:
                    x = batch_crop(x, self.crop_pad, gen)
                if "flip" in self.augment:
                    x = batch_flip(x, gen)
            if self.train and self.flip_phase is not None:
                flip = self.flip_phase[batch] ^ bool(self.epoch % 2)
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            yield x, self.labels[batch]
        self.start_step = 0
