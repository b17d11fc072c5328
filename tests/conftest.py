"""Shared fixtures: small synthetic data sets in every layout, and a runner for the entry scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import synth

REPO = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# Tiny model and run settings: an epoch takes about a second on two CPU cores.
TINY = [
    "widths=[8,8,16,16]",
    "latent_channels=4",
    "batch_size=50",
    "eval_batch_size=64",
    "val_size=100",
    "log_every=2",
    "wandb=false",  # W&B start-up costs seconds; the tests that check tracking switch it on
]


def script_env() -> dict:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    return env


def run_script(script: str, *args, check: bool = True, launcher: list[str] | None = None, timeout: int = 300):
    """Run src/<script> as a user would; return the CompletedProcess."""
    cmd = [*(launcher or [sys.executable]), str(REPO / "src" / script), *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def assert_one_line_error(proc, *fragments: str, code: int = 2):
    """A user error: non-zero exit, no traceback, one 'error:' line naming the problem."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory) -> Path:
    return synth.write_folder(tmp_path_factory.mktemp("folder") / "cifar", n_train=60, n_test=20)


@pytest.fixture(scope="session")
def synth_archive(tmp_path_factory, synth_folder) -> Path:
    return synth.write_archive(tmp_path_factory.mktemp("archive") / "synth.tar.gz", synth_folder)


@pytest.fixture(scope="session")
def synth_torchvision(tmp_path_factory) -> Path:
    return synth.write_torchvision(tmp_path_factory.mktemp("tv") / "root", n_train=60, n_test=20)


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory, synth_archive) -> Path:
    """The prepared cache of the synthetic archive (600 train / 200 test images)."""
    from cifarae import data

    return data.prepare(synth_archive, tmp_path_factory.mktemp("cache"), verbose=False)


def wandb_runs(wandb_dir: Path) -> list:
    """The RunRecord (run_id, run_group, job_type, ...) of every offline run W&B wrote under ``wandb_dir``.

    A run-<id>.wandb file is a header (":W&B", 2 magic bytes, a version byte) then LevelDB-style
    log records (crc32, 2-byte length, type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks,
    each holding a protobuf Record; the run's identity is its first "run" record.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    runs = []
    for path in sorted(Path(wandb_dir).glob("offline-run-*/run-*.wandb")):
        raw, pos, parts = path.read_bytes(), 7, b""
        while pos + 7 <= len(raw):
            if 32768 - pos % 32768 < 7:  # too little room left in the block for a header: padding
                pos += 32768 - pos % 32768
                continue
            length, kind = int.from_bytes(raw[pos + 4 : pos + 6], "little"), raw[pos + 6]
            parts += raw[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):
                record = pb.Record.FromString(parts)
                parts = b""
                if record.WhichOneof("record_type") == "run":
                    runs.append(record.run)
                    break
    return runs


# Tests that train, run scripts or start jobs: `pytest -m "not slow"` leaves them out for a quick loop.
SLOW_FILES = {"test_slurm.py", "test_launch.py"}
SLOW_FIXTURES = {"synth_folder", "synth_archive", "synth_torchvision", "synth_cache", "v2_run", "other_model"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in SLOW_FILES or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
