"""Data layer: every layout, the cache, the split, augmentation, the device loader, bad input."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import synth
import torch
from conftest import REAL_ARCHIVE, REPO, assert_one_line_error, run_script, script_env

from cifarae import data

CLASSIFIER_PROBES = REPO / "experiments" / "classifier"


def test_all_layouts_decode_to_the_same_tensors(tmp_path, monkeypatch, synth_folder, synth_archive, synth_torchvision):
    # torchvision checks the official files' md5 before unpickling them; synthetic batches cannot pass it.
    from torchvision.datasets import CIFAR10, cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args: True)
    loaded = {
        name: data.load(src, val_size=100, cache_dir=tmp_path / name)
        for name, src in (("folder", synth_folder), ("archive", synth_archive), ("torchvision", synth_torchvision))
    }
    ref = loaded["folder"]
    assert ref.classes == list(data.CLASSES)
    assert ref.images["train"].dtype == torch.uint8 and ref.images["train"].shape == (500, 3, 32, 32)
    assert ref.images["val"].shape == (100, 3, 32, 32) and ref.images["test"].shape == (200, 3, 32, 32)
    assert ref.labels["train"].dtype == torch.int64
    # synth.make_images orders images class by class: label i belongs to CLASSES[i].
    images, labels = synth.make_images(20, seed=1)
    order = np.lexsort((np.arange(len(labels)), labels))
    assert torch.equal(ref.labels["test"], torch.from_numpy(labels[order]))
    for other in ("archive", "torchvision"):
        for split in ("train", "val", "test"):
            assert torch.equal(loaded[other].labels[split], ref.labels[split])
            assert torch.equal(loaded[other].images[split], ref.images[split]), (other, split)


def test_cache_is_reused_and_a_changed_source_gets_a_new_one(tmp_path, synth_folder):
    src = tmp_path / "src"
    shutil.copytree(synth_folder, src)
    first = data.prepare(src, tmp_path / "cache", verbose=False)
    mtime = first.stat().st_mtime_ns
    assert data.prepare(src, tmp_path / "cache", verbose=False) == first
    assert first.stat().st_mtime_ns == mtime  # not rebuilt
    next((src / "train" / "cat").iterdir()).unlink()
    second = data.prepare(src, tmp_path / "cache", verbose=False)
    assert second != first


def test_a_stale_or_foreign_cache_is_refused(tmp_path, synth_cache):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(data.UserError, match="not a cifarae-data-v1 cache"):
        data.load(bad)
    stale = tmp_path / "stale.pt"
    blob = torch.load(synth_cache, weights_only=True)
    blob["fingerprint"] = "0" * 16
    torch.save(blob, stale)
    # Loading by source recomputes the fingerprint: a cache that no longer matches is not used.
    cache_dir = tmp_path / "c"
    cache_dir.mkdir()
    src = data.prepare(blob["source"], cache_dir, verbose=False)
    torch.save(blob, src)
    with pytest.raises(data.UserError, match="does not match its source"):
        data.load(blob["source"], cache_dir=cache_dir)


def test_split_is_deterministic_stratified_and_disjoint():
    labels = torch.arange(10).repeat_interleave(500)
    train, val = data.split_train_val(labels, 500, seed=3)
    train2, val2 = data.split_train_val(labels, 500, seed=3)
    assert torch.equal(val, val2) and torch.equal(train, train2)
    assert not torch.equal(val, data.split_train_val(labels, 500, seed=4)[1])
    assert torch.bincount(labels[val]).tolist() == [50] * 10
    assert len(set(train.tolist()) | set(val.tolist())) == 5000 and not set(train.tolist()) & set(val.tolist())


def test_augmentation_invariants():
    x = torch.rand(64, 3, 32, 32)
    flip_twice = data.batch_flip(data.batch_flip(x, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(1))
    assert torch.equal(flip_twice, x)
    flipped = data.batch_flip(x, torch.Generator().manual_seed(1))
    changed = [(not torch.equal(a, b)) for a, b in zip(flipped, x)]
    assert 10 < sum(changed) < 54  # about half of the batch
    for a, b, c in zip(flipped, x, changed):
        assert torch.equal(a, b.flip(-1) if c else b)
    cropped = data.batch_crop(x, 4, torch.Generator().manual_seed(2))
    assert cropped.shape == x.shape and cropped.min() >= 0 and cropped.max() <= 1
    assert torch.equal(data.batch_crop(x, 0, torch.Generator()), x)
    # Each crop is a 32x32 window of the reflect-padded image.
    padded = torch.nn.functional.pad(x, (4,) * 4, mode="reflect")
    for i in range(4):
        found = any(
            torch.equal(cropped[i], padded[i, :, dy : dy + 32, dx : dx + 32]) for dy in range(9) for dx in range(9)
        )
        assert found


def test_device_loader_shards_and_covers():
    images = torch.zeros(103, 3, 32, 32, dtype=torch.uint8)
    labels = torch.arange(103) % 10
    for world in (1, 2, 3):
        evals = [data.DeviceLoader(images, labels, 10, train=False, rank=r, world_size=world) for r in range(world)]
        seen = torch.cat([torch.cat(ld.batch_indices()) for ld in evals])
        assert sorted(seen.tolist()) == list(range(103))  # every sample exactly once
        trains = [
            data.DeviceLoader(images, labels, 8, train=True, rank=r, world_size=world, seed=5) for r in range(world)
        ]
        shards = [set(torch.cat(ld.batch_indices()).tolist()) for ld in trains]
        assert len({len(s) for s in shards}) == 1  # equal steps on every rank
        for a in range(world):
            for b in range(a + 1, world):
                assert not shards[a] & shards[b]
    loader = data.DeviceLoader(images, labels, 8, train=True, augment=["crop", "flip"], seed=5)
    loader.set_epoch(2)
    first = [x for x, _ in loader]
    loader.set_epoch(2, start_step=3)
    resumed = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first[3:], resumed)) and len(resumed) == len(first) - 3
    epoch2 = torch.cat(loader.batch_indices())
    loader.set_epoch(3)
    assert not torch.equal(torch.cat(loader.batch_indices()), epoch2)  # a new order every epoch


def test_two_process_torchrun_shards_do_not_overlap(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys, torch\n"
        "from accelerate import Accelerator\n"
        "from cifarae.data import DeviceLoader\n"
        "acc = Accelerator(cpu=True)\n"
        "labels = torch.arange(1000) % 10\n"
        "images = torch.zeros(1000, 3, 32, 32, dtype=torch.uint8)\n"
        "ld = DeviceLoader(images, labels, 50, train=True, rank=acc.process_index, world_size=acc.num_processes)\n"
        "ld.set_epoch(1)\n"
        f"torch.save(torch.cat(ld.batch_indices()), {str(tmp_path)!r} + f'/rank{{acc.process_index}}.pt')\n"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    proc = subprocess.run([*torchrun, str(probe)], env=script_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0, r1 = (set(torch.load(tmp_path / f"rank{r}.pt").tolist()) for r in (0, 1))
    assert len(r0) == len(r1) == 500 and not r0 & r1


def test_prepare_data_writes_the_cache_and_says_what_it_holds(tmp_path, synth_folder):
    proc = run_script("prepare_data.py", "--data", synth_folder, "--cache-dir", tmp_path)
    (cache,) = tmp_path.glob("*.pt")
    assert f"cache {cache} ready: 600 training and 200 test images" in proc.stdout
    assert "the config's val_size, 5000 by default" in proc.stdout
    blob = torch.load(cache, weights_only=True)
    assert blob["train_images"].shape == (600, 3, 32, 32) and blob["test_images"].dtype == torch.uint8


def test_bad_inputs_give_one_line_errors(tmp_path, synth_folder):
    assert_one_line_error(run_script("prepare_data.py", "--data", tmp_path / "nope", check=False), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_script("prepare_data.py", "--data", tmp_path / "empty", check=False), "unknown data layout"
    )
    truncated = tmp_path / "cut.tar.gz"
    good = synth.write_archive(tmp_path / "good.tar.gz", synth_folder).read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    assert_one_line_error(run_script("prepare_data.py", "--data", truncated, check=False), "cannot read archive")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(synth_folder, corrupt)
    next((corrupt / "train" / "dog").iterdir()).write_bytes(b"not a png")
    assert_one_line_error(run_script("prepare_data.py", "--data", corrupt, check=False), "cannot decode image")
    missing = tmp_path / "missing"
    shutil.copytree(synth_folder, missing)
    shutil.rmtree(missing / "test" / "frog")
    assert_one_line_error(run_script("prepare_data.py", "--data", missing, check=False), "no images of class frog")


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason="needs ../shared/data/cifar10-jpeg.tar.gz")
def test_real_archive_prepares_to_full_cifar10(tmp_path):
    cache_dir = REPO / "data"  # shared with the other real-data runs, so it is decoded once per machine
    cache = data.prepare(REAL_ARCHIVE, cache_dir, verbose=False)
    ds = data.load(cache)
    assert os.path.getsize(cache) > 100e6
    total = {k: len(v) for k, v in ds.labels.items()}
    assert total["train"] + total["val"] == 50_000 and total["test"] == 10_000
    assert ds.classes == list(data.CLASSES)
    assert torch.bincount(torch.cat([ds.labels["train"], ds.labels["val"]])).tolist() == [5000] * 10
    assert torch.bincount(ds.labels["test"]).tolist() == [1000] * 10
    assert torch.bincount(ds.labels["val"]).tolist() == [500] * 10


def test_jpeg_requality_rewrites_every_image_in_the_same_order(synth_cache, tmp_path):
    import json

    out = tmp_path / "q30"
    cmd = [
        sys.executable,
        str(CLASSIFIER_PROBES / "jpeg_requality.py"),
        str(synth_cache),
        str(out),
        "--quality",
        "30",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout.strip().splitlines()[-1])["psnr_vs_source_db"]
    source = data.load(synth_cache, val_size=100)
    reencoded = data.load(out, val_size=100, cache_dir=tmp_path / "cache")
    for split in ("train", "val", "test"):
        assert torch.equal(source.labels[split], reencoded.labels[split])
    # Image for image, the folder holds the source's pictures through JPEG q30: changed, and by exactly
    # the PSNR the script reports (a different order would not match it).
    mse = ((source.images["test"].double() - reencoded.images["test"].double()) ** 2).mean(dim=(1, 2, 3))
    assert (mse > 0).all()
    assert (10 * torch.log10(255**2 / mse)).mean().item() == pytest.approx(printed["test"], abs=1e-6)
    bad = subprocess.run([*cmd[:-1], "0"], cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert_one_line_error(bad, "--quality 0", "between 1 and 95")


def test_airbench_reference_trains_airbench94_on_our_data(tmp_path, synth_cache):
    """The calibration probe runs airbench's own recipe end to end on a source this project reads."""
    import json

    folder = synth.write_folder(tmp_path / "cifar", n_train=110, n_test=20)  # 1,100 images: one step of 1,024 per epoch
    source = data.prepare(folder, tmp_path / "cache", verbose=False)
    out = tmp_path / "airbench.json"
    cmd = [
        sys.executable,
        str(CLASSIFIER_PROBES / "airbench_reference.py"),
        str(source),
        "--out",
        str(out),
    ]
    # fp32: the same recipe, ~10x faster than the bf16 of the measured runs on a CPU without bf16 units.
    fast = [*cmd, "--epochs", "6", "--cpu-precision", "fp32"]
    proc = subprocess.run(fast, cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert (result["train_images"], result["test_images"]) == (1100, 200)
    # Six steps are far too few for airbench to fit this set (20 epochs stay below 60%), so this checks
    # the run itself: the whole recipe goes through on the CPU and its numbers are real ones.
    assert math.isfinite(result["train_loss"]), result
    assert all(0.0 <= acc <= 1.0 for acc in result["test_accuracy"].values()), result
    bad = subprocess.run(
        [*cmd[:2], str(synth_cache), "--out", str(out)], cwd=REPO, env=script_env(), capture_output=True, text=True
    )
    assert_one_line_error(bad, "600 training images", "batch of 1024")


def test_airbench_cpu_adapter_trains_and_undoes_its_patches():
    sys.path.insert(0, str(CLASSIFIER_PROBES))
    import airbench_reference as probe
    from airbench import utils
    from airbench.lib_airbench94 import make_net94

    module_cuda, loader = torch.nn.Module.cuda, utils.CifarLoader
    x = torch.randn(8, 3, 32, 32)
    with probe.on_cpu(utils):
        net = probe.with_bf16_forward(make_net94())
    assert (torch.nn.Module.cuda, utils.CifarLoader) == (module_cuda, loader)
    inner = []
    net[2].register_forward_hook(lambda module, args, out: inner.append(out.dtype))
    before = net(x)
    # The convolutions run in bf16, the logits come back float32, the weights stay float32 on the CPU.
    assert inner == [torch.bfloat16] and before.dtype == torch.float32
    assert {(p.dtype, p.device.type) for p in net.parameters()} == {(torch.float32, "cpu")}
    before.square().sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    # A step must reach the next forward pass. A bf16 autocast region held open across steps keeps
    # using its cached casts of the first weights, and the network never learns.
    assert not torch.allclose(net(x), before)
