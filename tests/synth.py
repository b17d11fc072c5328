"""Small synthetic CIFAR-10-shaped data sets, written in the layouts the data layer reads."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from cifarae.data import CLASSES


def make_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Easy-to-learn images: each class has its own colour and stripe orientation, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    yy, xx = np.mgrid[0:32, 0:32]
    for c in range(len(CLASSES)):
        base = np.array([(c * 37) % 256, (c * 91) % 256, (c * 53) % 256], dtype=np.float32)
        stripes = np.sin((xx if c % 2 else yy) * (0.3 + 0.15 * c))[..., None] * 60
        for _ in range(n_per_class):
            img = base + stripes + rng.normal(0, 20, (32, 32, 3))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels)


def write_folder(root: Path, n_train: int = 20, n_test: int = 5, suffix: str = ".png") -> Path:
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = make_images(n, seed)
        for i, (img, label) in enumerate(zip(images, labels)):
            d = root / split / CLASSES[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:05d}{suffix}")
    return root


def write_archive(path: Path, tree: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname="cifar10-synth")
    return path


def write_torchvision(root: Path, n_train: int = 20, n_test: int = 5) -> Path:
    """torchvision's cifar-10-batches-py layout (its md5 check is skipped when download=False)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    train_x, train_y = make_images(n_train, 0)
    test_x, test_y = make_images(n_test, 1)
    chunks = np.array_split(np.arange(len(train_y)), 5)
    for i, idx in enumerate(chunks, 1):
        batch = {"data": train_x[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1), "labels": train_y[idx].tolist()}
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    batch = {"data": test_x.transpose(0, 3, 1, 2).reshape(len(test_y), -1), "labels": test_y.tolist()}
    (d / "test_batch").write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return root
