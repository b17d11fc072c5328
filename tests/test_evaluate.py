"""src/evaluate.py: metric values, output files, determinism, DDP equality, errors."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from conftest import TINY, assert_one_line_error, run_script

from cifarae import metrics

AE_FILES = [
    "metrics.json",
    "metrics.csv",
    "metrics.png",
    "loss_plot.png",
    "per_class.png",
    *(f"{s}_{kind}.png" for s in ("train", "validation", "test") for kind in ("data_points_plot", "regression_plot")),
]


def test_psnr_of_known_noise_and_of_a_perfect_reconstruction():
    x = torch.rand(4, 3, 32, 32)
    perfect = metrics.per_image_reconstruction(x, x)
    assert torch.all(perfect["mse"] == 0) and torch.all(perfect["psnr"] == metrics.PSNR_CAP_DB)
    assert torch.allclose(perfect["ssim"], torch.ones(4))
    # A constant offset of d gives MSE d^2 and PSNR -20 log10(d) exactly.
    d = 0.05
    shifted = metrics.per_image_reconstruction((x * 0.5 + d), x * 0.5)
    assert torch.allclose(shifted["mse"], torch.full((4,), d * d))
    assert torch.allclose(shifted["mae"], torch.full((4,), d))
    assert torch.allclose(shifted["psnr"], torch.full((4,), -20 * math.log10(d)), atol=1e-4)
    labels = torch.tensor([0, 0, 1, 1])
    summary = metrics.summarize_reconstruction(shifted, labels, ["a", "b"], worst_k=2)
    assert summary["psnr_dataset"] == pytest.approx(26.0206, abs=1e-3)
    assert summary["psnr_per_class"] == pytest.approx({"a": 26.0206, "b": 26.0206}, abs=1e-3)
    # R^2 from the pixel histogram: 1 for identity, matches a direct computation otherwise.
    q = (x * 255).round() / 255
    assert metrics.r_squared(metrics.pixel_histogram(q, q)) == pytest.approx(1.0)
    noisy = ((q + 0.1 * torch.randn_like(q)).clamp(0, 1) * 255).round() / 255
    direct = 1 - ((noisy - q) ** 2).sum() / ((q - q.mean()) ** 2).sum()
    assert metrics.r_squared(metrics.pixel_histogram(noisy, q)) == pytest.approx(float(direct), rel=1e-5)


def test_classification_metrics_match_hand_counts():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.tensor([[3, 1, 0], [1.5, 2, 1], [0, 3, 1], [0, 3, 1], [1, 0, 3], [0, 2, 1.5]]).float()
    m = metrics.summarize_classification(logits, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top2_accuracy"] == pytest.approx(1.0)  # every true class is in the top two
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 1, 1]]
    assert m["precision_per_class"]["b"] == pytest.approx(2 / 4)
    assert m["recall_per_class"]["a"] == pytest.approx(1 / 2)
    f1 = [2 / 3, 2 / 3, 2 / 3]  # a: p=1 r=.5; b: p=.5 r=1; c: p=1 r=.5
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert 0 <= m["ece"] <= 1


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory, synth_cache):
    run = tmp_path_factory.mktemp("eval") / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", run, *TINY, "epochs=2")
    return run


def test_end_to_end_files_and_determinism(ae_run, synth_cache, tmp_path):
    run_script("evaluate.py", "--run", ae_run, "--data", synth_cache)
    for name in AE_FILES:
        assert (ae_run / "eval" / name).is_file(), name
    result = json.loads((ae_run / "eval" / "metrics.json").read_text())
    assert set(result) == {"train", "val", "test"}
    assert result["test"]["compression_ratio"] == pytest.approx(12.0)
    assert len(result["test"]["worst_indices"]) == 10 and len(result["test"]["psnr_per_class"]) == 10
    assert result["val"]["num_images"] == 100 and result["train"]["num_images"] == 500
    csv_lines = (ae_run / "eval" / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("split,")
    # The W&B evaluation run (its own, kept in the evaluation's folder) holds the tables and plots.
    eval_runs = list((ae_run / "eval" / "wandb").glob("offline-run-*/*.wandb"))
    assert len(eval_runs) == 1 and b"eval/test_metrics" in eval_runs[0].read_bytes()
    assert eval_runs[0].stem == f"run-{(ae_run / 'eval' / 'wandb_id').read_text().strip()}"
    # Same checkpoint, same numbers, byte for byte.
    run_script("evaluate.py", "--run", ae_run, "--data", synth_cache, "--out", tmp_path / "again", "--no-wandb")
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (ae_run / "eval" / "metrics.json").read_bytes()


def test_ddp_evaluation_equals_single_process(ae_run, synth_cache, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["--run-dir", ae_run, "--data", synth_cache, "--splits", "val,test", "--batch-size", "64", "--no-wandb"]
    run_script("evaluate.py", *common, "--out", single)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    run_script("evaluate.py", *common, "--out", ddp, launcher=launcher)
    assert json.loads((ddp / "metrics.json").read_text()) == json.loads((single / "metrics.json").read_text())


def test_evaluation_errors(ae_run, synth_cache, tmp_path, synth_folder):
    proc = run_script("evaluate.py", "--run", ae_run, "--data", synth_cache, "--splits", "train,holdout", check=False)
    assert_one_line_error(proc, "unknown split", "holdout")
    (tmp_path / "empty").mkdir()
    proc = run_script("evaluate.py", "--run", tmp_path / "empty", "--data", synth_cache, check=False)
    assert_one_line_error(proc, "holds no checkpoint")
    # Data whose classes differ from the checkpoint's.
    blob = torch.load(synth_cache, weights_only=True)
    blob["classes"] = [f"c{i}" for i in range(10)]
    other = tmp_path / "other.pt"
    torch.save(blob, other)
    proc = run_script("evaluate.py", "--run", ae_run, "--data", other, "--no-wandb", check=False)
    assert_one_line_error(proc, "trained on classes")
