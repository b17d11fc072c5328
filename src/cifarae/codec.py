"""The learned image codec: an entropy-coded AutoEncoder turned into real files with measured bits.

Encoding: image -> [0, 1] float64 -> replicate-pad to a multiple of the stride -> encoder ->
latent y -> integer symbols round(y - median_c) -> rANS (CompressAI's coder with the
EntropyBottleneck's quantised CDF tables) -> file. Decoding inverts it: file -> checks ->
symbols -> y_hat = symbols + median_c -> decoder -> crop -> 8-bit image.

Context model (optional, ``CheckerboardContext``; src/codec_context.py fits one to a trained codec):
the latent grid is split like a checkerboard. The anchor half is coded first under the factorized
prior; the other half under a discretised Gaussian whose mean and scale a small conv net predicts
from the decoded anchors (He et al. 2021, "Checkerboard context model for efficient learned image
compression"). The latents and the decoder do not change, only their code length: the symbols are
still round(y - median_c), and a non-anchor symbol s is sent as s - round(mu) under the CDF table of
(mu's fraction, scale), so CompressAI's coder runs with tables built like GaussianConditional's.

Encoder-side refinement (optional, ``Refinement``): the encoder's latents are a good first guess
that a few Adam steps on each image's own rate + lambda * 255^2 * MSE improve, with the decoder and
prior fixed (Campos et al. 2019, "Content adaptive optimization for neural image compression"). Only
encoding gets slower; the files and the decoder are unchanged.

Bit-exactness: the decoder always runs on the CPU in float64, one image at a time, from the
integer symbols stored in the file, so its 8-bit output does not depend on the batch size, the
device the encoder ran on, or the thread count (float64 rounding noise is ~1e-16, far below the
half-step of 8-bit rounding). The rate-distortion evaluator measures exactly this decode.

File format, version 1 (integers big-endian; varints are unsigned LEB128):

    field        bytes  notes
    magic        3      b"CAE"
    version      1      1
    width        1-3    varint, 1..65535
    height       1-3    varint, 1..65535
    model id     6      first 6 bytes of SHA-256 over the model's architecture, weights and CDF tables
    stream sizes varint each, for every stream but the last (the last runs up to the checksum)
    streams      ...    rANS streams: the symbols in coding order (with a context model: anchors, then the
                        rest) cut into slices of at most SLICE_SYMBOLS symbols
    crc32        4      zlib CRC-32 of every byte before it

A 32 x 32 image with one stream has a 16-byte header + checksum (0.125 bpp at 32 x 32).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from . import data as data_lib
from .config import Config
from .errors import UserError
from .models import AutoEncoder

MAGIC = b"CAE"
VERSION = 1
MODEL_ID_BYTES = 6
CRC_BYTES = 4
MAX_SIDE = 65535
MAX_PIXELS = 1024 * 1024  # decoding runs in float64: ~10 GB at this size
SLICE_SYMBOLS = 8192  # one rANS stream per slice: bounds the decoder's read-ahead padding
# CompressAI's rANS coder loops forever on |symbol| >= 2**28 (its bypass shift wraps): stay well inside.
MAX_SYMBOL = 2**24
ARCH_KEYS = ("arch", "widths", "latent_size", "latent_channels", "upsample", "entropy_model")
SUFFIX = ".cae"
# The context model's Gaussian CDF tables: scales on a log grid (GaussianConditional's bounds, capped
# where CIFAR latents end), times the mean's fractional part in MEAN_BINS bins.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS, MEAN_BINS = 0.11, 64.0, 64, 8
TAIL_MASS = 1e-9


# ---------------------------------------------------------------------------- varints
def put_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def get_varint(data: bytes, pos: int, what: str, limit: int) -> tuple[int, int]:
    """(value, next position); at most 4 bytes, value <= limit."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            raise UserError(f"truncated header ({what})")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > limit or (i and not byte):  # non-minimal encodings are refused
                raise UserError(f"corrupt header: {what}={value}")
            return value, pos + i + 1
    raise UserError(f"corrupt header: {what} varint too long")


# ---------------------------------------------------------------------------- container
@dataclass
class Parsed:
    width: int
    height: int
    model_id: bytes
    streams: list[bytes]
    header_bytes: int  # everything that is not stream payload: header + checksum


def pack(width: int, height: int, model_id: bytes, streams: list[bytes]) -> bytes:
    head = MAGIC + bytes([VERSION]) + put_varint(width) + put_varint(height) + model_id
    head += b"".join(put_varint(len(s)) for s in streams[:-1])
    body = head + b"".join(streams)
    return body + struct.pack(">I", zlib.crc32(body))


def parse(data: bytes, num_streams: int | None = None) -> Parsed:
    """Check and split a file. ``num_streams``: how many the model expects (None: one)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UserError("not a byte string")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise UserError("not a cifarae codec file (bad magic; foreign file?)")
    if len(data) < len(MAGIC) + 1:
        raise UserError("truncated file (no format version)")
    if data[len(MAGIC)] != VERSION:
        raise UserError(f"unsupported format version {data[len(MAGIC)]} (this decoder reads version {VERSION})")
    if len(data) < len(MAGIC) + 1 + 2 + MODEL_ID_BYTES + CRC_BYTES:
        raise UserError(f"truncated file ({len(data)} bytes is shorter than any header)")
    body, (crc,) = data[:-CRC_BYTES], struct.unpack(">I", data[-CRC_BYTES:])
    if zlib.crc32(body) != crc:
        raise UserError("checksum mismatch: the file is truncated or corrupt")
    pos = len(MAGIC) + 1
    width, pos = get_varint(body, pos, "width", MAX_SIDE)
    height, pos = get_varint(body, pos, "height", MAX_SIDE)
    if not width or not height or width * height > MAX_PIXELS:
        raise UserError(f"corrupt header: image size {width}x{height}")
    model_id, pos = body[pos : pos + MODEL_ID_BYTES], pos + MODEL_ID_BYTES
    if len(model_id) != MODEL_ID_BYTES:
        raise UserError("truncated header (model id)")
    sizes = []
    for i in range((num_streams or 1) - 1):
        size, pos = get_varint(body, pos, f"stream {i} size", len(body))
        sizes.append(size)
    if pos + sum(sizes) > len(body):
        raise UserError("corrupt header: stream sizes exceed the file")
    streams = []
    for size in sizes:
        streams.append(body[pos : pos + size])
        pos += size
    streams.append(body[pos:])
    if any(len(s) < 8 for s in streams):  # a flushed rANS stream holds at least its 8-byte state
        raise UserError("corrupt file: empty or short entropy-coded stream")
    return Parsed(width, height, model_id, streams, len(data) - sum(map(len, streams)))


# ---------------------------------------------------------------------------- images
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


# ---------------------------------------------------------------------------- the codec
def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


@torch.no_grad()
def fit_tails(eb, iterations: int = 64) -> None:
    """Set the lower and upper quantiles by bisection (deterministic; the medians stay)."""
    shape = (eb.channels, 1, 1)
    for i in (0, 2):
        low = torch.full(shape, -1e5, dtype=eb.quantiles.dtype)
        high = torch.full(shape, 1e5, dtype=eb.quantiles.dtype)
        for _ in range(iterations):
            mid = (low + high) / 2
            below = eb._logits_cumulative(mid, stop_gradient=True) < eb.target[i]
            low, high = torch.where(below, mid, low), torch.where(below, high, mid)
        eb.quantiles[:, :, i] = ((low + high) / 2)[:, :, 0]


def latent_bits(eb, v: torch.Tensor) -> torch.Tensor:
    """Bits of each value of ``v`` (C x 1 x N, the EntropyBottleneck's layout) under the factorized prior."""
    likelihood, _, _ = eb._likelihood(v)
    return -torch.log2(eb.likelihood_lower_bound(likelihood))


def anchor_mask(height: int, width: int) -> torch.Tensor:
    """height x width bool: True on the checkerboard half coded first (the anchors)."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (i + j) % 2 == 0


class CheckerboardContext(nn.Module):
    """Mean and scale of every non-anchor latent from the anchors around it, all channels at once."""

    def __init__(self, channels: int, hidden: int = 192):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, 2 * channels, 1),
        )

    def forward(self, symbols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N x C x h x w latents minus medians (only the anchors are read) -> (mean, scale), each N x C x h x w."""
        n, _, h, w = symbols.shape
        mask = anchor_mask(h, w).to(symbols.dtype)
        out = self.net(torch.cat([symbols * mask, mask.expand(n, 1, h, w)], dim=1))
        mean, log_scale = out.chunk(2, dim=1)
        return mean, log_scale.exp().clamp(SCALE_MIN, SCALE_MAX)


def gaussian_bits(v: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits of each value of ``v`` under a Gaussian integrated over [v - 1/2, v + 1/2] (GaussianConditional's form)."""
    dist = torch.distributions.Normal(torch.zeros((), dtype=v.dtype), torch.ones((), dtype=v.dtype))
    values = (v - mean).abs()
    likelihood = dist.cdf((0.5 - values) / scale) - dist.cdf((-0.5 - values) / scale)
    return -torch.log2(likelihood.clamp_min(1e-9))


def latent_rate(
    eb, context: CheckerboardContext | None, v: torch.Tensor, v_hat: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-image bits of latents ``v`` (N x C x h x w, minus the medians; the interval likelihood, no
    rounding) under the factorized prior, or, with a context model, the prior's on the anchors and the
    Gaussian's on the rest given the coded anchors ``v_hat``."""
    n, c, h, w = v.shape
    medians = eb.quantiles[:, 0, 1].view(1, -1, 1, 1).to(v.dtype)
    flat = (v + medians).transpose(0, 1).reshape(c, 1, -1)
    bits = latent_bits(eb, flat).reshape(c, n, h, w).transpose(0, 1)
    if context is not None:
        mean, scale = context(v_hat)
        bits = torch.where(anchor_mask(h, w).to(v.device), bits, gaussian_bits(v, mean, scale))
    return bits.sum(dim=(1, 2, 3))


def gaussian_tables() -> tuple[torch.Tensor, list[list[int]], list[int], list[int]]:
    """(scale levels, CDFs, lengths, offsets) for every (scale level, mean bin), scale-major.

    Built like GaussianConditional.update: each table covers the central 1 - TAIL_MASS of a Gaussian
    with mean (bin + 1/2) / MEAN_BINS - 1/2, quantised to CompressAI's 16-bit CDFs."""
    from compressai._CXX import pmf_to_quantized_cdf

    scales = torch.logspace(math.log10(SCALE_MIN), math.log10(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    multiplier = -normal.icdf(torch.tensor(TAIL_MASS / 2, dtype=torch.float64)).item()
    cdfs, lengths, offsets = [], [], []
    for scale in scales.tolist():
        center = math.ceil(scale * multiplier) + 1
        k = torch.arange(-center, center + 1, dtype=torch.float64)
        for b in range(MEAN_BINS):
            mean = (b + 0.5) / MEAN_BINS - 0.5
            pmf = normal.cdf((k + 0.5 - mean) / scale) - normal.cdf((k - 0.5 - mean) / scale)
            tail = max(1.0 - pmf.sum().item(), 0.0)
            cdf = pmf_to_quantized_cdf([*pmf.tolist(), tail], 16)
            cdfs.append(cdf)
            lengths.append(len(cdf))
            offsets.append(-center)
    return scales, cdfs, lengths, offsets


@dataclass(frozen=True)
class Refinement:
    """Encoder-side latent refinement: ``steps`` Adam steps (lr ``lr``, cosine decay) per image on
    bits + lambda * 255^2 * MSE, lambda = the model's rd_lambda * ``lambda_scale``. steps=0: off."""

    steps: int = 0
    lr: float = 0.02
    lambda_scale: float = 1.0

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.lambda_scale <= 0:
            raise UserError(f"refinement needs steps >= 0, lr > 0 and lambda_scale > 0; got {self}")

    @property
    def tag(self) -> str:
        """A name for output folders and tables ("" when off)."""
        return f"refine{self.steps}x{self.lambda_scale:g}" if self.steps else ""


class Codec:
    """A trained entropy-coded AutoEncoder, ready to write and read files. CPU, float64."""

    def __init__(
        self,
        model: AutoEncoder,
        cfg: Config,
        source: str = "model",
        refine: Refinement = Refinement(),
        context: CheckerboardContext | None = None,
    ):
        if cfg.entropy_model != "factorized" or model.entropy_bottleneck is None:
            raise UserError(
                f"{source} has entropy_model={cfg.entropy_model!r}: not a codec; "
                "train one with entropy_model=factorized (e.g. init_from=<AE run>)"
            )
        self.cfg, self.source, self.refine = cfg, source, refine
        self._model32 = self._context32 = None  # float32 copies for refinement, made on first use
        self.stride = 32 // cfg.latent_size
        self.model = model.to("cpu", torch.float64).eval().requires_grad_(False)
        self.context = None if context is None else context.to("cpu", torch.float64).eval().requires_grad_(False)
        eb = self.model.entropy_bottleneck
        fit_tails(eb)  # CDF ranges where the densities put their tail mass (training's aux loss lags)
        eb.update(force=True)  # CDF tables from the loaded weights (computed in float64)
        self.medians = eb.quantiles[:, 0, 1].detach().clone()  # per channel, float64
        # One table list for the coder: the prior's per-channel CDFs, then the context model's Gaussians.
        self.cdf = eb._quantized_cdf.tolist()
        self.cdf_lengths = eb._cdf_length.reshape(-1).tolist()
        self.offsets = eb._offset.reshape(-1).tolist()
        if self.context is not None:
            self._scales, cdfs, lengths, offsets = gaussian_tables()
            self.cdf += cdfs
            self.cdf_lengths += lengths
            self.offsets += offsets
        from compressai import ans

        self._encoder, self._decoder = ans.RansEncoder(), ans.RansDecoder()
        self.model_id = self._identity()

    def _identity(self) -> bytes:
        h = hashlib.sha256(f"cifarae-codec-v{VERSION}".encode())
        h.update(json.dumps({k: getattr(self.cfg, k) for k in ARCH_KEYS}, sort_keys=True).encode())
        state = self.model.state_dict()
        if self.context is not None:
            h.update(f"checkerboard:{self.context.hidden}:{SCALE_MIN}:{SCALE_MAX}:{SCALE_LEVELS}:{MEAN_BINS}".encode())
            state.update({f"context.{k}": v for k, v in self.context.state_dict().items()})
        for name, t in sorted(state.items()):
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(_tensor_bytes(t))
        return h.digest()[:MODEL_ID_BYTES]

    # ---- geometry
    def latent_hw(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.stride), -(-width // self.stride)

    def num_streams(self, height: int, width: int) -> int:
        lh, lw = self.latent_hw(height, width)
        return -(-self.model.latent_shape[0] * lh * lw // SLICE_SYMBOLS)

    # ---- analysis: images -> integer symbols
    @torch.no_grad()
    def symbols(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W uint8 -> N x C x h x w int64 symbols (round(y - median))."""
        _, _, height, width = images.shape
        lh, lw = self.latent_hw(height, width)
        x = images.to(torch.float64).div(255)
        x = F.pad(x, (0, lw * self.stride - width, 0, lh * self.stride - height), mode="replicate")
        y = self.model.encode(x)
        if self.refine.steps:
            y = self.refined(x, y, height, width)
        return torch.round(y - self.medians.view(1, -1, 1, 1)).to(torch.int64)

    def refined(self, x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Latents moved by ``self.refine.steps`` Adam steps on each image's own rate-distortion loss.

        float32 for speed: only the encoder runs it, and the file stores the rounded result. The
        decoder sees round(y - median) + median with a straight-through gradient, as in training
        (ste_decoder); the rate is the entropy model's interval likelihood at y (``latent_rate``). The
        loss is a sum over images, so each image's latents move as if it were alone in the batch.
        """
        if self._model32 is None:
            self._model32 = copy.deepcopy(self.model).float()
            self._context32 = copy.deepcopy(self.context).float() if self.context is not None else None
        model, r = self._model32, self.refine
        medians = self.medians.float().view(1, -1, 1, 1)
        target = x.float()[:, :, :height, :width]
        scale = self.cfg.rd_lambda * r.lambda_scale * 255**2 / target[0].numel()
        y = y.float().clone().requires_grad_(True)
        opt = torch.optim.Adam([y], lr=r.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, r.steps)
        with torch.enable_grad():
            for _ in range(r.steps):
                y_hat = y + (torch.round(y - medians) + medians - y).detach()
                x_hat = model.decode(y_hat)[:, :, :height, :width]
                sq_err = (x_hat - target).pow(2).sum()
                bits = latent_rate(model.entropy_bottleneck, self._context32, y - medians, y_hat - medians)
                loss = bits.sum() / (height * width) + scale * sq_err
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        return y.detach().to(torch.float64)

    # ---- synthesis: integer symbols -> image (the one decode path: CPU, float64, one image at a time)
    @torch.no_grad()
    def synthesize(self, symbols: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """C x h x w int symbols -> 3 x height x width uint8."""
        y_hat = symbols.to(torch.float64).unsqueeze(0) + self.medians.view(1, -1, 1, 1)
        x_hat = self.model.decode(y_hat)[0, :, :height, :width]
        return to_uint8(x_hat)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The model's reconstruction (no entropy coder in the loop): what a file decodes to."""
        _, _, height, width = images.shape
        return torch.stack([self.synthesize(s, height, width) for s in self.symbols(images)])

    # ---- entropy coding
    def _order(self, lh: int, lw: int) -> tuple[torch.Tensor, int]:
        """(flat C x h x w positions in coding order, number of anchors): channel by channel, the
        anchors first when there is a context model (without one every position is an anchor)."""
        c = self.model.latent_shape[0]
        first = anchor_mask(lh, lw).reshape(-1) if self.context is not None else torch.ones(lh * lw, dtype=torch.bool)
        grid = torch.arange(c * lh * lw).view(c, lh * lw)
        return torch.cat([grid[:, first].reshape(-1), grid[:, ~first].reshape(-1)]), c * int(first.sum())

    def _conditionals(self, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C x h x w symbols (non-anchors ignored) -> (round(mean), table index) per position, from the
        context model in float64 on this one image: the encoder and the decoder run exactly this."""
        with torch.no_grad():
            mean, scale = self.context(anchors.to(torch.float64).unsqueeze(0))
        if not torch.isfinite(mean).all():  # only forged anchors get here: real latents are small
            raise UserError("corrupt entropy-coded stream (context out of range)")
        shift = torch.round(mean[0].clamp(-MAX_SYMBOL, MAX_SYMBOL))
        mean_bin = ((mean[0] - shift + 0.5) * MEAN_BINS).floor().clamp(0, MEAN_BINS - 1)
        level = torch.bucketize(scale[0], self._scales).clamp(max=SCALE_LEVELS - 1)  # the next level up
        table = self.model.latent_shape[0] + level * MEAN_BINS + mean_bin.long()
        return shift.long(), table

    def _slices(self, n: int) -> list[slice]:
        return [slice(i, min(i + SLICE_SYMBOLS, n)) for i in range(0, n, SLICE_SYMBOLS)]

    def _coded(self, symbols: torch.Tensor) -> tuple[list[int], list[int]]:
        """One image's C x h x w symbols -> (values to code, their table indexes), in coding order."""
        c, lh, lw = symbols.shape
        order, n_anchors = self._order(lh, lw)
        values = symbols.reshape(-1)[order]
        tables = order // (lh * lw)  # a latent's channel is its prior's table
        if self.context is not None:
            shift, table = (t.reshape(-1)[order[n_anchors:]] for t in self._conditionals(symbols))
            values[n_anchors:] -= shift
            tables[n_anchors:] = table
        return values.tolist(), tables.tolist()

    def encode_symbols(self, symbols: torch.Tensor) -> list[bytes]:
        values, tables = self._coded(symbols)
        if max(values) >= MAX_SYMBOL or min(values) <= -MAX_SYMBOL:
            raise UserError("latent out of the entropy coder's range")
        return [
            self._encoder.encode_with_indexes(values[s], tables[s], self.cdf, self.cdf_lengths, self.offsets)
            for s in self._slices(len(values))
        ]

    def decode_symbols(self, streams: list[bytes], lh: int, lw: int) -> torch.Tensor:
        c = self.model.latent_shape[0]
        order, n_anchors = self._order(lh, lw)
        tables = (order // (lh * lw)).tolist()
        symbols = torch.zeros(c * lh * lw, dtype=torch.int64)
        values, shift = [], None
        for s, stream in zip(self._slices(len(order)), streams):
            # CompressAI's rANS decoder does not bounds-check its input. On a forged stream its
            # read-ahead is bounded by 1092 bytes per symbol + 120 per stream byte: pad with zeros.
            self._decoder.set_stream(stream + bytes(1092 * (s.stop - s.start) + 120 * len(stream) + 64))
            # A slice may hold the last anchors and the first conditionals: the anchors come first.
            for part in (slice(s.start, min(s.stop, n_anchors)), slice(max(s.start, n_anchors), s.stop)):
                if part.start >= part.stop:
                    continue
                if part.start >= n_anchors and shift is None:
                    symbols[order[:n_anchors]] = torch.tensor(values, dtype=torch.int64)
                    conditionals = self._conditionals(symbols.view(c, lh, lw))
                    shift, table = (t.reshape(-1)[order[n_anchors:]] for t in conditionals)
                    tables[n_anchors:] = table.tolist()
                decoded = self._decoder.decode_stream(tables[part], self.cdf, self.cdf_lengths, self.offsets)
                if max(decoded) >= MAX_SYMBOL or min(decoded) <= -MAX_SYMBOL:
                    raise UserError("corrupt entropy-coded stream (latent out of range)")
                values.extend(decoded)
            # The coder is deterministic: a genuine stream is exactly the re-encoding of its symbols.
            again = self._encoder.encode_with_indexes(values[s], tables[s], self.cdf, self.cdf_lengths, self.offsets)
            if again != stream:
                raise UserError("corrupt entropy-coded stream (it does not re-encode to itself)")
        coded = torch.tensor(values, dtype=torch.int64)
        if shift is not None:
            coded[n_anchors:] += shift
            if coded.abs().max() >= MAX_SYMBOL:
                raise UserError("corrupt entropy-coded stream (latent out of range)")
        symbols[order] = coded
        return symbols.view(c, lh, lw)

    # ---- files
    def compress(self, images: torch.Tensor, batch_size: int = 256) -> list[bytes]:
        """N x 3 x H x W uint8 (one size) -> one file's bytes per image."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"expected N x 3 x H x W uint8 images, got {tuple(images.shape)} {images.dtype}")
        _, _, height, width = images.shape
        if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
            raise UserError(f"image size {width}x{height} is outside 1..{MAX_SIDE} per side, {MAX_PIXELS} pixels")
        out = []
        for start in range(0, len(images), batch_size):
            for sym in self.symbols(images[start : start + batch_size]):
                out.append(pack(width, height, self.model_id, self.encode_symbols(sym)))
        return out

    def parse(self, data: bytes) -> Parsed:
        """Parse and check a file against this model (num_streams needs the size, read first)."""
        first = parse(data, num_streams=1)  # checks magic, version, checksum, size
        parsed = parse(data, self.num_streams(first.height, first.width))
        if parsed.model_id != self.model_id:
            raise UserError(
                f"file was written by model {parsed.model_id.hex()}, but {self.source} is model "
                f"{self.model_id.hex()}; decompress with the --model that compressed it"
            )
        return parsed

    def decompress(self, data: bytes) -> torch.Tensor:
        """One file's bytes -> 3 x H x W uint8. Raises UserError on anything but a valid file."""
        parsed = self.parse(data)
        lh, lw = self.latent_hw(parsed.height, parsed.width)
        return self.synthesize(self.decode_symbols(parsed.streams, lh, lw), parsed.height, parsed.width)

    def describe(self) -> str:
        c, s = self.model.latent_shape[0], self.cfg.latent_size
        prior = "factorized prior" + (" + checkerboard context" if self.context is not None else "")
        latent = f"latent {c}x{s}x{s} per 32x32, stride {self.stride}"
        return f"{self.source} (model id {self.model_id.hex()}, {latent}, {prior})"


@torch.no_grad()
def _latents(model: AutoEncoder, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model.encode(images[i : i + batch_size].float() / 255) for i in range(0, len(images), batch_size)]
    )


def fit_densities(eb, y_hat: torch.Tensor, steps: int = 600, lr: float = 1e-2) -> None:
    """Fit the prior's densities to coded latents ``y_hat`` (C x 1 x N): Adam (cosine) on their mean code
    length over random batches of 16,384 positions. Medians and CDF tails are left to the caller."""
    opt = torch.optim.Adam([*eb.matrices, *eb.biases, *eb.factors], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(0, y_hat.shape[2], (min(16384, y_hat.shape[2]),), generator=gen)
            loss = latent_bits(eb, y_hat[:, :, idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()


def fit_entropy_model(model: AutoEncoder, images: torch.Tensor, steps: int = 600, lr: float = 1e-2) -> dict:
    """Refit the factorized prior to the trained encoder's quantised latents (transforms frozen).

    A short CPU run leaves the EntropyBottleneck's densities far from the latents they code
    (they start 10 units wide and move ~lr per step). This minimises the real code length,
    -log2 p(round(y - median) + median), over ``images`` (use the training split), then sets the
    CDF tails by bisection. Medians stay as trained, so the quantised latents do not change.
    """
    eb = model.entropy_bottleneck
    medians = eb.quantiles[:, 0, 1].detach().clone()
    y = _latents(model, images).float()
    y_hat = (torch.round(y - medians.view(1, -1, 1, 1)) + medians.view(1, -1, 1, 1)).transpose(0, 1)
    y_hat = y_hat.reshape(y_hat.shape[0], 1, -1)  # C x 1 x N, EntropyBottleneck's layout
    with torch.no_grad():
        before = latent_bits(eb, y_hat).mean().item()
    fit_densities(eb, y_hat, steps, lr)
    with torch.no_grad():
        fit_tails(eb)  # CDF tails where the fitted densities put tail_mass
        eb.quantiles[:, 0, 1] = medians
        after = latent_bits(eb, y_hat).mean().item()
    c, n = y.shape[1], y[0].numel()
    return {
        "images": len(images),
        "steps": steps,
        "bits_per_latent_before": before,
        "bits_per_latent_after": after,
        "bpp_before": before * n / (images.shape[2] * images.shape[3]),
        "bpp_after": after * n / (images.shape[2] * images.shape[3]),
        "latent_channels": c,
    }


def fit_context(
    model: AutoEncoder, images: torch.Tensor, hidden: int = 192, epochs: int = 6, batch_size: int = 256, lr=2e-3
) -> tuple[CheckerboardContext, dict]:
    """Fit a checkerboard context model to a trained codec's quantised latents (everything else frozen).

    Adam with a one-cycle schedule on the estimated code length (``latent_rate``) of ``images``'
    symbols (use the training split); seeded, so a rerun gives the same weights.
    """
    eb = model.entropy_bottleneck
    medians = eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
    symbols = torch.round(_latents(model, images) - medians)
    torch.manual_seed(0)
    context = CheckerboardContext(symbols.shape[1], hidden)
    steps_per_epoch = max(len(symbols) // batch_size, 1)
    opt = torch.optim.Adam(context.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(0)
    pixels = images.shape[2] * images.shape[3]

    def bpp(ctx):
        with torch.no_grad():
            return sum(latent_rate(eb, ctx, s, s).sum().item() for s in symbols.split(1000)) / len(symbols) / pixels

    before = bpp(None)
    with torch.enable_grad():
        for _ in tqdm(range(epochs), desc="context epochs", unit="epoch", leave=False):
            perm = torch.randperm(len(symbols), generator=gen)
            for k in range(steps_per_epoch):
                batch = symbols[perm[k * batch_size : (k + 1) * batch_size]]
                loss = latent_rate(eb, context, batch, batch).mean() / pixels
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
    context.eval()
    stats = {"images": len(images), "epochs": epochs, "hidden": hidden, "bpp_before": before, "bpp_after": bpp(context)}
    return context, stats


def load_codec_checkpoint(path: str | Path, which: str = "best") -> tuple[dict, Config, AutoEncoder]:
    """(checkpoint, config, AutoEncoder with its inference weights) of a codec run; anything else is refused."""
    ckpt = checkpoint.load(path, which)
    cfg = checkpoint.checkpoint_config(ckpt)
    if cfg.task != "ae":
        raise UserError(f"{ckpt['path']} is a {cfg.task} checkpoint, not a codec")
    if cfg.entropy_model == "none":
        raise UserError(f"{ckpt['path']} is a plain autoencoder (entropy_model=none), not a codec")
    model = AutoEncoder(cfg)
    checkpoint.load_weights(model, checkpoint.inference_state(ckpt), ckpt["path"])
    return ckpt, cfg, model


def training_images(source: str | Path, cfg: Config, count: int, cache_dir: Path | None = None) -> torch.Tensor:
    """A stratified subset of ``count`` images of the run's training split (all of it for 0) to fit priors on."""
    dataset = data_lib.load(source, cfg.val_size, cfg.split_seed, cache_dir)
    images, labels = dataset.images["train"], dataset.labels["train"]
    return images[data_lib.stratified_subset(labels, count, cfg.seed)] if 0 < count < len(images) else images


def load_codec(path: str | Path, which: str = "best", refine: Refinement = Refinement()) -> Codec:
    """A codec from a run directory or checkpoint file (EMA weights when the run kept them).

    A run directory with a ``context.pt`` (written by src/codec_context.py: a refitted prior and a
    context model) uses it, else one with a ``codec.pt`` (src/codec_fit.py: the refitted prior).
    """
    if which == "best" and Path(path).is_dir():
        which = next((n for n in ("context", "codec") if (Path(path) / f"{n}.pt").is_file()), which)
    ckpt, cfg, model = load_codec_checkpoint(path, which)
    context = None
    if "context" in ckpt:
        hidden = (ckpt.get("context_fit") or {}).get("hidden")
        if not isinstance(hidden, int) or hidden < 1:
            raise UserError(f"{ckpt['path']} holds a context model without its width; rerun src/codec_context.py")
        context = CheckerboardContext(model.latent_shape[0], hidden)
        checkpoint.load_weights(context, ckpt["context"], ckpt["path"])
    return Codec(model, cfg, source=str(ckpt["path"]), refine=refine, context=context)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    return 8 * num_bytes / (height * width)
