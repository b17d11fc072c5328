"""The Codec: a trained entropy-coded AutoEncoder turned into real files with measured bits.

Encoding: image -> [0, 1] float64 -> replicate-pad to a multiple of the stride -> encoder ->
latent y (optionally refined, refinement.py) -> integer symbols round(y - median_c) -> rANS
(CompressAI's coder with the EntropyBottleneck's quantised CDF tables, plus the context model's
Gaussian tables when there is one, context.py) -> file (format.py). Decoding inverts it: file ->
checks -> symbols -> y_hat = symbols + median_c -> decoder -> crop -> 8-bit image.

Bit-exactness: the decoder always runs on the CPU in float64, one image at a time, from the
integer symbols stored in the file, so its 8-bit output does not depend on the batch size, the
device the encoder ran on, or the thread count (float64 rounding noise is ~1e-16, far below the
half-step of 8-bit rounding). The rate-distortion evaluator measures exactly this decode.
"""

from __future__ import annotations

import copy
import hashlib
import json

import torch
import torch.nn.functional as F

from ..config import Config
from ..errors import UserError
from ..models import AutoEncoder
from . import compressai_adapter as cai
from . import format as fmt
from .context import CheckerboardContext, anchor_mask, conditionals, gaussian_tables, table_signature
from .entropy import fit_tails
from .format import MAX_SYMBOL, MODEL_ID_BYTES, VERSION, Parsed, pack, parse
from .images import to_uint8
from .refinement import NO_REFINEMENT, Refinement

ARCH_KEYS = ("arch", "widths", "latent_size", "latent_channels", "upsample", "entropy_model")


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


class Codec:
    """A trained entropy-coded AutoEncoder, ready to write and read files. CPU, float64."""

    def __init__(
        self,
        model: AutoEncoder,
        cfg: Config,
        source: str = "model",
        refine: Refinement = NO_REFINEMENT,
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
        self.cdf, self.cdf_lengths, self.offsets = cai.quantized_cdf(eb)
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
            h.update(table_signature(self.context).encode())
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
        return -(-self.model.latent_shape[0] * lh * lw // fmt.SLICE_SYMBOLS)

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
        """Latents ``y`` of padded images ``x`` after ``self.refine`` (Refinement.run) on float32 copies of
        the model: only the encoder runs it, and the file stores the rounded result."""
        if self._model32 is None:
            self._model32 = copy.deepcopy(self.model).float()
            self._context32 = copy.deepcopy(self.context).float() if self.context is not None else None
        medians = self.medians.float().view(1, -1, 1, 1)
        target = x.float()[:, :, :height, :width]
        return self.refine.run(self._model32, self._context32, medians, target, y, self.cfg.rd_lambda)

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
        """(round(mean), table index) per position of one image's C x h x w symbols (context.conditionals)."""
        return conditionals(self.context, anchors, self._scales, self.model.latent_shape[0])

    def _slices(self, n: int) -> list[slice]:
        return [slice(i, min(i + fmt.SLICE_SYMBOLS, n)) for i in range(0, n, fmt.SLICE_SYMBOLS)]

    def coded(self, symbols: torch.Tensor) -> tuple[list[int], list[int]]:
        """One image's C x h x w symbols -> (values to code, their indexes into ``cdf``), in coding order.
        A value v with table i costs -log2((cdf[i][k + 1] - cdf[i][k]) / 2**16) bits, k = v - offsets[i]."""
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
        values, tables = self.coded(symbols)
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
                    cond = self._conditionals(symbols.view(c, lh, lw))
                    shift, table = (t.reshape(-1)[order[n_anchors:]] for t in cond)
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
        fmt.check_size(height, width)
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
