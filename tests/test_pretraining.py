"""The masked-image pretraining objective (objective=masked): masking, its loss, and transfer to the classifier."""

from __future__ import annotations

import torch
from conftest import TINY, assert_one_line_error, run_script

from cifarae.config import load_config
from cifarae.data import MEAN
from cifarae.losses import masked_reconstruction_loss, patch_mask
from cifarae.tasks import AutoencoderTask

MASKED = [*TINY, "objective=masked", "mask_ratio=0.5", "mask_patch=8", "epochs=1", "precision=no"]


def test_patch_mask_hides_that_share_of_whole_patches():
    torch.manual_seed(0)
    mask = patch_mask(64, 32, ratio=0.6, patch=4)
    assert mask.shape == (64, 1, 32, 32) and mask.dtype == torch.bool
    patches = mask[:, 0, ::4, ::4]  # one pixel per patch
    assert torch.equal(mask, patches.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1))
    assert (patches.flatten(1).sum(1) == round(0.6 * 64)).all()
    assert len({tuple(m.flatten().tolist()) for m in patches}) > 60  # a new draw for each image


def test_masked_loss_counts_the_hidden_pixels_only():
    x = torch.rand(4, 3, 32, 32)
    mask = patch_mask(4, 32, 0.5, 8)
    visible_wrong = torch.where(mask, x, 1 - x)
    assert masked_reconstruction_loss(visible_wrong, x, mask, {"mse": 1.0, "l1": 1.0}) == 0
    hidden_wrong = torch.where(mask, x + 0.1, x)
    expected = 0.1**2 + 0.1
    assert torch.isclose(
        masked_reconstruction_loss(hidden_wrong, x, mask, {"mse": 1.0, "l1": 1.0}), torch.tensor(expected)
    )


def test_the_encoder_sees_the_masked_image_and_the_loss_ignores_what_it_saw():
    cfg = load_config(None, MASKED)
    seen = []

    def model(inputs):  # returns the input as its reconstruction: only the hidden pixels are wrong
        seen.append(inputs)
        return inputs, None

    x = torch.rand(8, 3, 32, 32)
    torch.manual_seed(1)
    loss, _ = AutoencoderTask(cfg).masked_loss(model, x)
    (masked,) = seen
    mean = torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(x)
    hidden = (masked == mean).all(dim=1, keepdim=True) & (x != mean).any(dim=1, keepdim=True)
    assert torch.isclose(hidden.float().mean(), torch.tensor(0.5))  # half of each image hidden
    assert torch.equal(masked[~hidden.expand_as(x)], x[~hidden.expand_as(x)])  # the rest untouched
    expected = (x - mean).pow(2)[hidden.expand_as(x)].mean()
    assert torch.isclose(loss, expected)


def test_a_masked_autoencoder_trains_and_its_encoder_transfers(tmp_path, synth_cache):
    ae = tmp_path / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", ae, *MASKED)
    ae_ckpt = torch.load(ae / "best.pt", weights_only=True)
    assert ae_ckpt["config"]["objective"] == "masked"
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in ae_ckpt["history"])
    clf = tmp_path / "clf"
    run_script(
        "train_clf.py", "--data", synth_cache, "--out", clf, "--encoder", ae, "--mode", "linear", *TINY, "epochs=1"
    )
    clf_state = torch.load(clf / "best.pt", weights_only=True)["model"]
    backbone = {k: v for k, v in ae_ckpt["model"].items() if k.startswith("backbone.")}
    assert backbone and all(torch.equal(clf_state[k], v) for k, v in backbone.items())


def test_a_bad_masking_ratio_is_one_line(tmp_path, synth_cache):
    proc = run_script(
        "train_ae.py", "--data", synth_cache, "--out", tmp_path / "x", *MASKED, "mask_ratio=1.5", check=False
    )
    assert_one_line_error(proc, "mask_ratio=1.5 must be between 0 and 1")
    proc = run_script(
        "train_ae.py", "--data", synth_cache, "--out", tmp_path / "y", *MASKED, "mask_patch=5", check=False
    )
    assert_one_line_error(proc, "mask_patch=5 must divide 32")


def test_the_training_loss_masks_under_objective_masked_only():
    """What the engine calls (task.loss) hides patches for objective=masked and nothing otherwise."""
    x = torch.rand(8, 3, 32, 32)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(x)
    for objective, hidden_share in (("masked", 0.5), ("reconstruct", 0.0)):
        cfg = load_config(None, [*MASKED, f"objective={objective}"])
        seen = []

        def model(inputs, seen=seen):
            seen.append(inputs)
            return inputs, None

        AutoencoderTask(cfg).loss(model, x, None)
        hidden = (seen[0] == mean).all(dim=1).float().mean()
        assert torch.isclose(hidden, torch.tensor(hidden_share)), objective


def test_a_masked_encoder_fine_tunes_from_its_own_weights(tmp_path, synth_cache):
    """finetune (not only the frozen probe): the classifier starts from the masked AE's backbone, tensor for tensor."""
    from cifarae import checkpoint

    ae = tmp_path / "ae"
    run_script("train_ae.py", "--data", synth_cache, "--out", ae, *MASKED)
    clf = tmp_path / "clf"
    args = ["--data", synth_cache, "--out", clf, "--encoder", ae, "--mode", "finetune", *TINY, "epochs=1", "lr=0"]
    run_script("train_clf.py", *args, "augment=[]")
    trained = checkpoint.load(clf / "last.pt")["model"]
    encoder = checkpoint.inference_state(checkpoint.load(ae))
    backbone = {
        k: v for k, v in encoder.items() if k.startswith("backbone.") and "running" not in k and "num_b" not in k
    }
    assert backbone and all(torch.equal(trained[k], v) for k, v in backbone.items())
