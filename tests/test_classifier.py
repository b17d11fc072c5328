"""src/train_clf.py: weight transfer, the frozen probe, label fractions, every mode learns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, assert_one_line_error, run_script

from cifarae import checkpoint
from cifarae.data import stratified_subset
from cifarae.errors import UserError

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"


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
    # The full-size recipe (lr 0.4, logits x 1/8, 4 warm-up epochs) is paced for 20 CIFAR epochs; 60 steps
    # need a faster one.
    args = ["--data", synth_cache, "--out", run, "--mode", mode, *TINY, "epochs=6", "lr=0.05", "logit_scale=1.0"]
    args += ["warmup_epochs=1"]
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


def test_a_run_resumes_whether_its_encoder_is_named_from_the_checkout_or_absolutely(encoder_run, synth_cache, tmp_path):
    # jobs/clf_grid.py reuses the cells the pipeline trained; the pipeline names the encoder absolutely.
    out = tmp_path / "clf"
    args = ["--data", synth_cache, "--out", out, "--mode", "linear", *TINY, "epochs=1"]
    run_script("train_clf.py", *args, "--encoder", os.path.relpath(encoder_run, REPO))
    saved = checkpoint.load(out, "last")
    again = run_script("train_clf.py", *args, "--encoder", encoder_run)
    assert "other settings" not in again.stderr and checkpoint.load(out, "last")["config"] == saved["config"]
    assert saved["config"]["encoder"] == str(encoder_run)


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


def test_logit_scale_multiplies_the_logits_and_is_the_recipe_default(synth_cache, tmp_path):
    from cifarae.config import load_config
    from cifarae.models import Classifier

    torch.manual_seed(0)
    plain = Classifier(load_config(None, [*TINY, "task=clf", "logit_scale=1.0"])).eval()
    scaled = Classifier(load_config(None, [*TINY, "task=clf", "logit_scale=0.125"])).eval()
    scaled.load_state_dict(plain.state_dict())
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scaled(x), 0.125 * plain(x))
    run = tmp_path / "scratch"
    run_script("train_clf.py", "--data", synth_cache, "--out", run, "--mode", "scratch", *TINY, "epochs=1")
    assert checkpoint.load(run / "last.pt")["config"]["logit_scale"] == 0.111  # airbench's 1/9


def test_translation_tta_averages_flipped_and_shifted_copies():
    from cifarae.config import load_config
    from cifarae.tasks import predict_logits

    def top_left(images):  # a "model" whose logits are its input's top-left pixel
        return images[:, :, 0, 0]

    x = torch.rand(2, 3, 8, 8)
    flip_only = predict_logits(top_left, x, load_config(None, ["task=clf"]))
    assert torch.allclose(flip_only, 0.5 * (x[..., 0, 0] + x[..., 0, -1]))
    # shift 1 with reflect padding: both shifted copies start at pixel (1, 1), their mirrors at (1, -2)
    shifted = predict_logits(top_left, x, load_config(None, ["task=clf", "tta_shift=1"]))
    assert torch.allclose(shifted, 0.25 * (x[..., 0, 0] + x[..., 0, -1]) + 0.25 * (x[..., 1, 1] + x[..., 1, -2]))


def test_norm_bias_lr_mult_speeds_up_only_batchnorm_biases():
    from cifarae.config import load_config
    from cifarae.models import Classifier

    cfg = load_config(None, [*TINY, "task=clf", "lr=0.1", "norm_bias_lr_mult=64", "backbone_lr_mult=0.5"])
    model = Classifier(cfg)
    lr_of = {id(p): g["lr"] for g in model.param_groups(cfg) for p in g["params"]}
    bn = model.backbone.stem[1]
    assert lr_of[id(bn.bias)] == pytest.approx(0.1 * 0.5 * 64)
    assert lr_of[id(bn.weight)] == pytest.approx(0.1 * 0.5)
    assert lr_of[id(model.backbone.stem[0].weight)] == pytest.approx(0.1 * 0.5)
    assert lr_of[id(model.head.weight)] == pytest.approx(0.1)


def test_airbench_batchnorm_and_bias_decay_are_settings_off_by_default():
    from cifarae.config import load_config
    from cifarae.models import Classifier

    base = [
        *TINY,
        "task=clf",
        "arch=airbench_whiten",
        "widths=[24,8,16,16]",
        "lr=0.1",
        "weight_decay=0.01",
        "norm_bias_lr_mult=64",
    ]

    def settings(*overrides):
        cfg = load_config(None, [*base, *overrides])
        model = Classifier(cfg)
        decay_of = {id(p): g["weight_decay"] for g in model.param_groups(cfg) for p in g["params"]}
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        bn, stem = model.backbone.blocks[0].bn1, model.backbone.stem.conv
        decays = (decay_of[id(bn.bias)], decay_of[id(stem.bias)], decay_of[id(model.head.weight)])
        return {(m.momentum, m.eps) for m in norms}, decays

    assert settings() == ({(0.1, 1e-5)}, (0.0, 0.0, 0.01))
    # airbench's: every BatchNorm follows its batches faster, and the biases decay too, a BatchNorm bias
    # (at 64x the lr) by 1/64 of the rate so that it shrinks as much per step as a weight
    airbench = settings("bn_momentum=0.4", "bn_eps=1e-12", "decay_biases=true")
    assert airbench[0] == {(0.4, 1e-12)}
    assert airbench[1] == pytest.approx((0.01 / 64, 0.01, 0.01))
    with pytest.raises(UserError, match="bn_momentum=0"):
        load_config(None, ["bn_momentum=0"])


def test_grid_runs_scratch_without_an_encoder_and_tabulates(synth_cache, tmp_path):
    import subprocess
    import sys

    from conftest import REPO, script_env

    grid = tmp_path / "grid.yaml"
    grid.write_text("modes: [scratch]\nfractions:\n  0.5: {seeds: [0]}\n")
    out = tmp_path / "grid"
    cmd = [sys.executable, str(REPO / "jobs" / "clf_grid.py"), "--data", str(synth_cache), "--out", str(out)]
    cmd += ["--grid", str(grid), "--no-wandb"]
    train = subprocess.run([*cmd, *TINY, "epochs=2"], cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert train.returncode == 0, train.stderr[-2000:]
    table = (out / "grid.csv").read_text()
    assert table.splitlines()[1].startswith("scratch,0.5,0,2,")
    (out / "grid.csv").unlink()
    # --tabulate trains nothing: the cell's checkpoint stays as it was, and the table comes back the same.
    before = (out / "scratch-f0.5-s0" / "last.pt").stat().st_mtime_ns
    again = subprocess.run([*cmd, "--tabulate"], cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "grid.csv").read_text() == table
    assert (out / "scratch-f0.5-s0" / "last.pt").stat().st_mtime_ns == before
    # linear / finetune cells need the encoder: a one-line error, not a traceback.
    grid.write_text("modes: [finetune]\nfractions:\n  0.5: {seeds: [0]}\n")
    proc = subprocess.run(cmd, cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert_one_line_error(proc, "--encoder")


def test_whitening_stem_whitens_patches_and_stays_frozen_from_ae_to_classifier(synth_cache, tmp_path):
    from cifarae.config import load_config
    from cifarae.data import load
    from cifarae.models import AutoEncoder, WhiteningStem, init_stem

    # Correlated colour channels: the fitted 2x2 filters decorrelate the 12 patch values to unit variance.
    torch.manual_seed(0)
    base = torch.randn(200, 1, 16, 16)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.randn_like(base), torch.randn_like(base)], dim=1)
    stem = WhiteningStem()
    stem.fit(images, eps=0.0)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, stem.conv.weight)  # no padding: whole patches only
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24).double()
    cov = flat[:, :12].T @ flat[:, :12] / len(flat)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert torch.equal(out[:, 12:], -out[:, :12])  # both signs, so the GELU after it loses nothing

    whiten = [*TINY, "arch=airbench_whiten", "widths=[24,8,16,16]"]
    proc = run_script(
        "train_clf.py", "--data", synth_cache, "--out", tmp_path / "bad", *TINY, "arch=airbench_whiten", check=False
    )
    assert_one_line_error(proc, "airbench_whiten", "widths[0]=8", "24")
    ae = tmp_path / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", ae, *whiten, "epochs=1")
    clf = tmp_path / "clf"
    run_script(
        "train_clf.py",
        "--data",
        synth_cache,
        "--out",
        clf,
        "--mode",
        "finetune",
        "--encoder",
        ae,
        "epochs=1",
        *[a for a in TINY if not a.startswith("widths=")],  # arch and widths come from the encoder
    )
    ae_stem = checkpoint.load(ae / "last.pt")["model"]["backbone.stem.conv.weight"]
    assert ae_stem.abs().sum() > 0
    # The AE never trained its stem (it is still what init_stem fits), and the classifier received it
    # and left it alone too.
    fresh = AutoEncoder(load_config(None, whiten))
    init_stem(fresh, load(synth_cache, val_size=100).images["train"])
    assert torch.allclose(ae_stem, fresh.backbone.stem.conv.weight, atol=1e-5)
    assert torch.equal(checkpoint.load(clf / "last.pt")["model"]["backbone.stem.conv.weight"], ae_stem)


def test_frozen_batchnorm_scales_stay_at_one_from_ae_to_classifier(synth_cache, tmp_path):
    from cifarae.models import backbone_settings

    frozen = [*TINY, "bn_weight=false"]
    ae = tmp_path / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", ae, *frozen, "epochs=1")
    state = checkpoint.load(ae / "last.pt")["model"]
    scales = {k: v for k, v in state.items() if k.endswith(".weight") and v.ndim == 1}
    backbone_scales = {k: v for k, v in scales.items() if k.startswith("backbone.")}
    assert backbone_scales and all(torch.equal(v, torch.ones_like(v)) for v in backbone_scales.values())
    assert any(not torch.equal(v, torch.ones_like(v)) for k, v in scales.items() if k.startswith("decoder."))

    # The fine-tune inherits the setting from its encoder: its scales stay at 1 while the biases move.
    clf = tmp_path / "clf"
    no_widths = [a for a in TINY if not a.startswith("widths=")]
    run_script("train_clf.py", "--data", synth_cache, "--out", clf, "--mode", "finetune", "--encoder", ae,
               *no_widths, "epochs=1")  # fmt: skip
    trained = checkpoint.load(clf / "last.pt")["model"]
    assert all(torch.equal(trained[k], v) for k, v in backbone_scales.items())
    bias = "backbone.blocks.0.bn1.bias"
    assert not torch.equal(trained[bias], state[bias])

    proc = run_script("train_clf.py", "--data", synth_cache, "--out", tmp_path / "m", "--mode", "finetune",
                      "--encoder", ae, *no_widths, "bn_weight=true", check=False)  # fmt: skip
    assert_one_line_error(proc, "encoder", "'bn_weight': False", "'bn_weight': True")
    # A checkpoint saved before the key existed trained its scales: it reads as bn_weight=True.
    assert backbone_settings({"arch": "airbench", "widths": [8, 8, 16, 16], "latent_size": 8})["bn_weight"] is True


def test_the_codec_owns_its_entropy_models_optimizer_settings():
    """The engine asks the model for its groups: the AE's entropy model at 10x lr, never decayed."""
    from cifarae.config import load_config
    from cifarae.models import AutoEncoder

    cfg = load_config(None, [*TINY, "entropy_model=hyperprior", "hyper_channels=8", "lr=0.01", "weight_decay=0.1"])
    model = AutoEncoder(cfg)
    group_of = {id(p): g for g in model.param_groups(cfg) for p in g["params"]}
    names = [name for name, _ in model.named_parameters()]
    assert "latent_codec.log_gains" in names and any(n.startswith("latent_codec.entropy_bottleneck.") for n in names)
    for name, p in model.named_parameters():
        g = group_of[id(p)]
        if name.startswith("latent_codec.entropy_bottleneck."):
            assert (g["lr"], g["weight_decay"]) == (pytest.approx(0.1), 0.0), name
        elif name == "latent_codec.log_gains":  # decay would pull every level's gain to 1
            assert (g["lr"], g["weight_decay"]) == (pytest.approx(0.01), 0.0), name
        else:
            assert g["lr"] == pytest.approx(0.01) and g["weight_decay"] == (0.1 if p.ndim > 1 else 0.0), name


# ---------------------------------------------------------------------------- airbench parity (issue #28)
def test_val_size_0_fits_every_training_image_keeps_the_last_epoch_and_evaluates_test(synth_cache, tmp_path):
    from cifarae.data import load

    assert len(load(synth_cache, val_size=100).labels["train"]) == 500
    full = load(synth_cache, val_size=0)
    assert len(full.labels["train"]) == 600 and len(full.labels["val"]) == 0
    run = tmp_path / "refit"
    proc = run_script(
        "train_clf.py", "--data", synth_cache, "--out", run, "--mode", "scratch", *TINY, "val_size=0", "epochs=2"
    )
    assert "600 labelled images" in proc.stdout and "val_size=0" in proc.stdout
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and not any(k.startswith("val_") for h in history for k in h)
    best, last = checkpoint.load(run, "best"), checkpoint.load(run, "last")
    assert all(torch.equal(best["model"][k], v) for k, v in last["model"].items())  # no selection: the last epoch
    proc = run_script(
        "evaluate.py", "--run", run, "--data", synth_cache, "--no-wandb"
    )  # default splits: train,val,test
    assert "val: no images" in proc.stdout
    assert set(json.loads((run / "eval" / "metrics.json").read_text())) == {"train", "test"}


def test_the_recipe_carries_airbench_parity_settings_and_clf_sgd_switches_them_off():
    from cifarae.config import load_config, read_values

    recipe = read_values(REPO_CONFIGS / "clf.yaml")
    parity = load_config(None, ["task=clf"], **recipe)
    assert (parity.val_size, parity.lookahead_every, parity.schedule, parity.whiten_bias_epochs) == (
        0,
        5,
        "airbench",
        3,
    )
    assert (parity.batch_size, parity.momentum, parity.augment, parity.dirac_init) == (
        1024,
        0.85,
        ["crop", "altflip"],
        True,
    )
    assert (parity.bn_momentum, parity.bn_eps, parity.decay_biases) == (0.4, 1e-12, True)
    old = load_config(REPO_CONFIGS / "clf_sgd.yaml", [], **recipe)
    assert (old.val_size, old.lookahead_every, old.schedule, old.whiten_bias_epochs) == (5000, 0, "onecycle", 0)
    assert (old.bn_momentum, old.bn_eps, old.decay_biases) == (0.1, 1e-5, False)
    assert (old.batch_size, old.augment, old.dirac_init) == (512, ["crop", "flip"], False)
    for name in ("airbench_net.yaml", "clf_10ep.yaml"):  # airbench's layout on the same Backbone class
        net = load_config(REPO_CONFIGS / name, [], **recipe)
        assert (net.arch, net.widths, net.latent_size, net.bn_weight) == (
            "airbench_whiten",
            [24, 64, 256, 256],
            4,
            False,
        )
    assert load_config(REPO_CONFIGS / "clf_10ep.yaml", [], **recipe).epochs == 10


def test_airbench_schedule_is_its_triangle():
    from cifarae.engine import lr_factor

    total = 1000
    assert lr_factor(0, total, 0, "airbench") == pytest.approx(0.2)
    assert lr_factor(230, total, 0, "airbench") == pytest.approx(1.0)
    assert lr_factor(115, total, 0, "airbench") == pytest.approx(0.6)
    assert lr_factor(total, total, 0, "airbench") == pytest.approx(0.07)
    assert lr_factor(615, total, 0, "airbench") == pytest.approx(1 - 0.93 * 0.5)


def test_lookahead_pulls_every_k_steps_and_ends_on_the_slow_weights():
    from cifarae.engine import Lookahead

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    la = Lookahead(model, every=5, total_steps=20)
    assert "1.num_batches_tracked" not in la.slow  # integer buffers are left alone, as airbench does

    def move(delta):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(delta)
            model[1].running_mean.add_(delta)

    move(1.0)
    la.step(model, 4)  # not a multiple of 5: nothing happens
    assert torch.equal(model[0].bias, start["0.bias"] + 1)
    la.step(model, 10)  # decay 0.95^5 * (10/20)^3: the slow copy moves by 1 - decay, the model restarts from it
    decay = 0.95**5 * 0.5**3
    assert torch.allclose(la.slow["0.bias"], start["0.bias"] + (1 - decay))
    assert torch.equal(model[0].bias, la.slow["0.bias"])
    assert torch.allclose(model[1].running_mean, start["1.running_mean"] + (1 - decay))  # BatchNorm statistics too
    slow = {k: v.clone() for k, v in la.slow.items()}
    move(3.0)
    la.step(model, 20)  # the last step: the model becomes the slow copy, its last moves dropped
    assert all(torch.equal(model.state_dict()[k], v) for k, v in slow.items())


def test_a_lookahead_run_saves_its_slow_weights_and_ends_on_them(synth_cache, tmp_path):
    run = tmp_path / "la"
    args = ["--data", synth_cache, "--out", run, "--mode", "scratch", *TINY, "epochs=2", "lookahead_every=3"]
    run_script("train_clf.py", *args, "lr=0.05", "logit_scale=1.0")
    ckpt = checkpoint.load(run / "last.pt")
    assert ckpt["lookahead"] and all(torch.equal(ckpt["model"][k], v) for k, v in ckpt["lookahead"].items())


def test_whitening_bias_trains_for_its_epochs_then_stays():
    from cifarae.config import load_config
    from cifarae.engine import group_lr_lambda, make_optimizer
    from cifarae.models import Classifier

    cfg = load_config(
        None,
        [*TINY, "task=clf", "arch=airbench_whiten", "widths=[24,8,16,16]", "whiten_bias_epochs=2"],
        optimizer="sgd",
        lr=0.1,
    )
    model = Classifier(cfg)
    bias = model.backbone.stem.conv.bias
    optimizer = make_optimizer(model, cfg)
    (own,) = [g for g in optimizer.param_groups if any(p is bias for p in g["params"])]
    assert own["params"] == [bias] and own["train_epochs"] == 2
    steps_per_epoch = 3
    lambdas = [group_lr_lambda(g, 12, 0, "cosine", steps_per_epoch) for g in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    values, heads = [], []
    for _ in range(12):  # four epochs of constant gradients (momentum keeps a velocity after the stop)
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.ones_like(p)
        optimizer.step()
        scheduler.step()
        values.append(bias.detach().clone())
        heads.append(model.head.weight.detach().clone())
    moved = [not torch.equal(a, b) for a, b in zip(values, values[1:])]
    assert all(moved[: 2 * steps_per_epoch - 1]) and not any(moved[2 * steps_per_epoch - 1 :])
    assert not torch.equal(heads[6], heads[9])  # the other groups train on
    # Without a whitening stem, or with whiten_bias_epochs=0, there is no such group.
    plain = load_config(None, [*TINY, "task=clf", "whiten_bias_epochs=2"])
    assert not any("train_epochs" in g for g in Classifier(plain).param_groups(plain))


def test_dirac_init_makes_each_block_conv_pass_its_input_through():
    from cifarae.config import load_config
    from cifarae.models import Classifier, dirac_init

    model = Classifier(load_config(None, [*TINY, "task=clf", "widths=[8,8,16,16]"]))
    dirac_init(model)
    conv = model.backbone.blocks[1].conv1  # 8 -> 16 channels: the first 8 filters are the identity
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        y = conv(x)
    assert torch.allclose(y[:, :8], x)
    assert y[:, 8:].abs().sum() > 0  # the others stay random
    assert torch.allclose(model.backbone.blocks[2].conv2[0](y[:, :16]).detach(), y[:, :16].detach())


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    from cifarae.data import DeviceLoader

    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(64)

    def epoch(e, seed=0):
        loader = DeviceLoader(images, labels, 16, train=True, augment=["altflip"], seed=seed)
        loader.set_epoch(e)
        out = torch.empty(64, 3, 8, 8)
        for x, y in loader:
            out[y] = x
        return out

    plain = images.float() / 255
    e0, e1, e2 = epoch(0), epoch(1), epoch(2)
    flipped0 = (e0 == plain.flip(-1)).flatten(1).all(1) & ~(e0 == plain).flatten(1).all(1)
    assert 16 < int(flipped0.sum()) < 48  # about half in the first epoch
    assert torch.equal(e1, e0.flip(-1))  # every image the other way round in the next
    assert torch.equal(e2, e0)  # and back again
    assert not torch.equal(epoch(0, seed=1), e0)  # the seed draws the half


def test_grid_names_each_cells_objective_and_merges_grids_side_by_side(synth_cache, tmp_path):
    """One grid per pretraining objective (here a masked AE's), then --merge: one table and plot."""
    import subprocess
    import sys

    from conftest import REPO, script_env

    masked_ae = tmp_path / "ae_masked"
    run_script("train_ae.py", "--data", synth_cache, "--out", masked_ae, *TINY, "epochs=1", "objective=masked")
    grid = tmp_path / "grid.yaml"
    grid.write_text("modes: [linear, scratch]\nfractions:\n  0.5: {seeds: [0]}\n")
    out = tmp_path / "grid_masked"
    cmd = [sys.executable, str(REPO / "jobs" / "clf_grid.py"), "--data", str(synth_cache), "--out", str(out)]
    cmd += ["--grid", str(grid), "--encoder", str(masked_ae), "--no-wandb", *TINY, "epochs=1"]
    proc = subprocess.run(cmd, cwd=REPO, env=script_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((out / "grid.json").read_text())["rows"]
    assert {(r["mode"], r["objective"]) for r in rows} == {("linear", "masked"), ("scratch", "none")}
    # A grid of the reconstruction objective, as grids wrote them before the objective column.
    old = tmp_path / "grid_reconstruct"
    old.mkdir()
    base = {"label_fraction": 0.5, "seed": 0, "epochs": 1, "best_val_accuracy": 0.5, "test_macro_f1": 0.5}
    base |= {"test_ece": 0.1, "train_time_s": 1.0}
    old_rows = [{"mode": "linear", **base, "test_accuracy": 0.25}, {"mode": "scratch", **base, "test_accuracy": 0.9}]
    (old / "grid.json").write_text(json.dumps({"rows": old_rows, "summary": {}}))
    merged = tmp_path / "merged"
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "clf_grid.py"), "--merge", str(out), str(old), "--out", str(merged)]
        + ["--no-wandb"],
        cwd=REPO,
        env=script_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((merged / "grid.json").read_text())
    assert result["objectives"] == ["masked", "reconstruct"]
    assert list(result["summary"]) == ["linear (masked)", "linear (reconstruct)", "scratch"]
    assert result["summary"]["linear (reconstruct)"]["0.5"]["mean"] == 0.25
    scratch = [r for r in result["rows"] if r["mode"] == "scratch"]
    assert len(scratch) == 1 and scratch[0]["test_accuracy"] != 0.9  # once, from the first grid
    assert (merged / "grid.png").is_file() and "objective" in (merged / "grid.csv").read_text().splitlines()[0]
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "jobs" / "clf_grid.py"),
            "--merge",
            str(tmp_path / "nowhere"),
            "--out",
            str(merged),
        ],
        cwd=REPO,
        env=script_env(),
        capture_output=True,
        text=True,
    )
    assert_one_line_error(proc, "no grid.json")
