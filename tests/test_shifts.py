"""Synthetic shifts: each kind moves images further from the originals as severity grows."""

import pytest
import torch

from cifarae import shifts
from cifarae.metrics import per_image_reconstruction


@pytest.mark.parametrize("kind", list(shifts.SEVERITIES))
def test_shift_grows_with_severity_and_stays_8bit(kind):
    gen = torch.Generator().manual_seed(0)
    # Smooth-ish images with texture, so blur and JPEG have something to remove.
    x = torch.nn.functional.interpolate(torch.rand(8, 3, 8, 8, generator=gen), size=32, mode="bilinear") * 0.4 + 0.1
    x = (x + 0.1 * torch.rand(8, 3, 32, 32, generator=gen)).mul(255).round().div(255)
    psnrs = []
    for level in shifts.SEVERITIES[kind]:
        y = shifts.apply(x, kind, level)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        assert torch.equal(y, y.mul(255).round().div(255))
        psnrs.append(float(per_image_reconstruction(y, x)["psnr"].mean()))
    assert psnrs[0] > psnrs[1] > psnrs[2], psnrs
    assert torch.equal(shifts.apply(x, "noise", 0.1, seed=3), shifts.apply(x, "noise", 0.1, seed=3))
