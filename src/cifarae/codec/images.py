"""Images in and out of the codec: files -> uint8 tensors, uint8 tensors -> PNG bytes, floats -> uint8."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError


def read_image(path: str | Path) -> torch.Tensor:
    """PNG/JPEG/... -> 3 x H x W uint8 (RGB)."""
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0] if str(err) else 'unreadable'}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8, the rounding of tasks.quantize_8bit."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)
