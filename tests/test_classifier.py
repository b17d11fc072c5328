"""src/train_clf.py: weight transfer, the frozen probe, label fractions, every mode learns."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, assert_one_line_error, run_script

from cifarae import checkpoint
from cifarae.data import stratified_subset


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory, synth_cache):
    run = tmp_path_factory.mktemp("enc") / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", run, *TINY, "epochs=2")
    return run


def backbone_of(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def test_label_fraction_subset_is_stratified_and_deterministic():
    labels = torch.arange(10).repeat_interleave(450)
    a = stratified_subset(labels, 450, seed=0)
    assert torch.equal(a, stratified_subset(labels, 450, seed=0))
    assert not torch.equal(a, stratified_subset(labels, 450, seed=1))
    assert torch.bincount(labels[a]).tolist() == [45] * 10
    assert len(set(a.tolist())) == 450


@pytest.mark.parametrize("mode", ["linear", "finetune", "scratch"])
def test_each_mode_learns_the_easy_task(mode, encoder_run, synth_cache, tmp_path):
    run = tmp_path / mode
    args = ["--data", synth_cache, "--out", run, "--mode", mode, *TINY, "epochs=4", "lr=0.05"]
    args += ["--encoder", encoder_run]
    proc = run_script("train_clf.py", *args)
    assert f"classifier ({mode})" in proc.stdout
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["val_acc"] > 0.5  # chance is 0.1
    trained = checkpoint.load(run / "last.pt")["model"]
    encoder = checkpoint.inference_state(checkpoint.load(encoder_run))
    if mode == "linear":  # the probe leaves the backbone untouched, bit for bit (BatchNorm statistics too)
        for key, value in backbone_of(encoder).items():
            assert torch.equal(trained[key], value), key
    else:
        assert any(not torch.equal(trained[k], v) for k, v in backbone_of(encoder).items())


def test_weights_transfer_into_the_classifier(encoder_run, synth_cache, tmp_path):
    """Before any step, the classifier's backbone is the encoder's, tensor for tensor."""
    from cifarae.config import load_config
    from cifarae.models import Classifier

    encoder = checkpoint.load(encoder_run)
    cfg = load_config(None, [*TINY, "task=clf", "mode=finetune"])
    clf = Classifier(cfg)
    state = {k.removeprefix("backbone."): v for k, v in backbone_of(checkpoint.inference_state(encoder)).items()}
    checkpoint.load_weights(clf.backbone, state, "encoder")
    for key, value in clf.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    # The script does the same: a run with lr=0 keeps the transferred backbone weights.
    run = tmp_path / "frozen_lr"
    run_script(
        "train_clf.py",
        "--data",
        synth_cache,
        "--out",
        run,
        "--mode",
        "finetune",
        "--encoder",
        encoder_run,
        *TINY,
        "epochs=1",
        "lr=0",
        "augment=[]",
    )
    trained = checkpoint.load(run / "last.pt")["model"]
    for key, value in backbone_of(checkpoint.inference_state(encoder)).items():
        if "running" not in key and "num_batches" not in key:  # BatchNorm statistics still update in train mode
            assert torch.equal(trained[key], value), key


def test_label_fraction_and_mismatch_errors(encoder_run, synth_cache, tmp_path):
    proc = run_script(
        "train_clf.py",
        "--data",
        synth_cache,
        "--out",
        tmp_path / "f",
        "--mode",
        "scratch",
        "--label-fraction",
        "0.2",
        *TINY,
        "epochs=1",
    )
    assert "100 labelled images (20%)" in proc.stdout
    proc = run_script(
        "train_clf.py",
        "--data",
        synth_cache,
        "--out",
        tmp_path / "m",
        "--mode",
        "finetune",
        "--encoder",
        encoder_run,
        *TINY,
        "widths=[8,8,16,32]",
        check=False,
    )
    assert_one_line_error(proc, "encoder", "[8, 8, 16, 16]", "[8, 8, 16, 32]")
    proc = run_script("train_clf.py", "--data", synth_cache, "--out", tmp_path / "n", "--mode", "linear", check=False)
    assert_one_line_error(proc, "needs --encoder")
