"""HyperpriorCodec: the v2 codec, images <-> .cae files (format.py, version 5) at a chosen quality level.

Encoding: image -> [0, 1] float64 -> replicate-pad to a multiple of the stride -> encoder -> y ->
y_g = y * gain[q] -> h_a -> hyper-symbols round(z - median); the
hyper-symbols -> h_s in fixed point (ExactNetwork) -> integer (mean, log-scale) -> latent symbols
round(y_g - mean) at the integer scale indexes; all in one rANS stream (CompressAI's BufferedRansEncoder,
with the EntropyBottleneck's tables for the hyper-symbols and the GaussianConditional's for the latent)
-> file. With a checkerboard context the latent is coded in two segments, anchors then non-anchors, and
the non-anchors' (mean, log-scale) come from the context, in fixed point too, over the decoded anchors; with
the sub-position context in eight, each pass's four sub-position groups in turn (hyperprior.coding_steps).
Decoding inverts it, and the synthesis transform runs on the CPU in float64, one image at a time: its
8-bit output does not depend on the batch size, the encoder's device or the thread count.

One stream, not one per entropy model: each rANS stream ends in a flushed state, and on a 32 x 32
image two more streams and their sizes cost ~14 bytes (0.11 bpp, measured), format version 2's layout.
The image's symbols (hyper-symbols, then latent symbols) are cut into slices of at most SLICE_SYMBOLS,
one stream each; a 32 x 32 image is one slice. CompressAI's rANS decoder does not bounds-check its
input, so each slice is decoded from a copy padded with zeros by the most a forged stream could read
ahead (1092 bytes per symbol + 120 per stream byte), and re-encoded to check it.

Encoder-side refinement (``refine``, off by default) moves each image's gained latents y_g by a few
Adam steps on the training loss (bits + lambda * 255^2 * MSE, at its level's lambda) before coding, and
keeps the refined file only where it costs less than the plain one; the format and the decoder are unchanged.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Generator

import torch
import torch.nn.functional as F

from ..config import Config
from ..errors import UserError
from ..models import AutoEncoder
from . import format as fmt
from .format import MAX_SYMBOL, MODEL_ID_BYTES, Parsed, model_tag, pack, parse
from .hyperprior import FRACTION_BITS, ExactNetwork, anchor_mask, coding_steps, subposition_groups
from .images import to_uint8
from .refinement import NO_REFINEMENT, Refinement

ARCH_KEYS = (
    "arch", "widths", "latent_size", "latent_channels", "skip_channels", "decoder_widths", "upsample",
    "entropy_model", "hyper_channels", "rd_lambdas",
)  # fmt: skip


CONTEXTS = {  # describe()'s words for each context
    "none": "", "checkerboard": ", checkerboard context", "subpositions": ", checkerboard and sub-position context"
}  # fmt: skip

# The model's identity, salted with the codec's name: it does not change with the container's version.
MODEL_ID_SALT = b"cifarae-codec-v2"


class _PaddedStream(threading.local):
    """A zeroed buffer, kept per thread, that holds one stream followed by its read-ahead bound of zeros: allocating
    the ~14 MB a 32 x 32 image's bound needs on every image took a third of decoding."""

    def __init__(self):  # run once in each thread that uses it
        self.buffer = bytearray()

    def __call__(self, stream: bytes, symbols: int) -> bytearray:
        size = len(stream) + 1092 * symbols + 120 * len(stream) + 64
        if len(self.buffer) < size:  # longer is fine: it is more zeros
            self.buffer = bytearray(size)
        self.buffer[: len(stream)] = stream
        return self.buffer

    def clear(self, stream: bytes) -> None:
        self.buffer[: len(stream)] = bytes(len(stream))  # zeros again beyond the next, maybe shorter, stream


_padded = _PaddedStream()


def _coder_tables(entropy_model) -> tuple[list, list, list]:
    """(CDFs, CDF lengths, offsets) as the rANS coder takes them; converted once per codec, where
    CompressAI's own compress() converts them on every call."""
    return entropy_model.quantized_cdf.tolist(), entropy_model.cdf_length.tolist(), entropy_model.offset.tolist()


def _used_tables(indexes: list[int], tables: tuple[list, list, list]) -> tuple[list[int], list, list, list]:
    """(indexes into the CDFs they use, those CDFs, lengths, offsets): the coder converts every CDF it is passed on
    each call (the latent's 64, 200k values, take ~2 ms), and codes the same bits from any list holding the same
    CDFs."""
    used = sorted(set(indexes))
    position = {index: k for k, index in enumerate(used)}
    cdfs, lengths, offsets = tables
    renumbered = [position[i] for i in indexes]
    return renumbered, [cdfs[i] for i in used], [lengths[i] for i in used], [offsets[i] for i in used]


class HyperpriorCodec:
    """A trained AutoEncoder with entropy_model=hyperprior, exported (its coder tables built). CPU, float64."""

    def __init__(self, model: AutoEncoder, cfg: Config, source: str = "model", refine: Refinement = NO_REFINEMENT):
        if model.latent_codec is None:
            raise UserError(f"{source} has entropy_model={cfg.entropy_model!r}, not a hyperprior codec")
        lc = model.latent_codec
        if lc.gaussian_conditional.quantized_cdf.numel() == 0:
            raise UserError(f"{source} has no coder tables; export it first (src/codec_export.py)")
        self.cfg, self.source, self.refine = cfg, source, refine
        self.model = model.to("cpu", torch.float64).eval().requires_grad_(False)
        self.lc = lc
        self.stride = 32 // cfg.latent_size
        self.levels = lc.levels
        self.hyper = ExactNetwork(lc.h_s)
        if lc.context is not None:  # anchors' values at FRACTION_BITS in; then (hyper, context) at FRACTION_BITS
            self.context = ExactNetwork([lc.context.context], in_bits=FRACTION_BITS)
            self.fuse = ExactNetwork(lc.context.fuse, in_bits=FRACTION_BITS)
        self.subposition = None
        if lc.subposition_contexts is not None:  # per pass and step: (context, fuse), as the checkerboard's
            self.subposition = [
                [(ExactNetwork([sc.context], in_bits=FRACTION_BITS), ExactNetwork(sc.fuse, in_bits=FRACTION_BITS))
                 for sc in contexts]
                for contexts in lc.subposition_contexts
            ]  # fmt: skip
        self.medians = lc.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1).clone()
        self.scale_codes = lc.scale_codes[:-1].contiguous()  # index = how many of these the log-scale exceeds
        self.z_tables = _coder_tables(lc.entropy_bottleneck)
        self.y_tables = _coder_tables(lc.gaussian_conditional)
        self.model_id = self._identity()
        self._trainable = None  # the float32 copy that refinement differentiates, made on first use
        self._step_masks: dict[tuple[int, int], list[torch.Tensor]] = {}  # coding_steps by latent size

    def _identity(self) -> bytes:
        h = hashlib.sha256(MODEL_ID_SALT)
        h.update(json.dumps({k: getattr(self.cfg, k) for k in ARCH_KEYS}, sort_keys=True).encode())
        for name, t in sorted(self.model.state_dict().items()):
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.digest()[:MODEL_ID_BYTES]

    # ---- geometry
    def latent_hw(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.stride), -(-width // self.stride)

    def hyper_hw(self, height: int, width: int) -> tuple[int, int]:
        lh, lw = self.latent_hw(height, width)
        return -(-lh // 2), -(-lw // 2)

    def num_symbols(self, height: int, width: int) -> tuple[int, int]:
        """(hyper-symbols, latent symbols) of an image: coded in this order, one sequence."""
        hz, wz = self.hyper_hw(height, width)
        lh, lw = self.latent_hw(height, width)
        return self.medians.shape[1] * hz * wz, self.model.latent_shape[0] * lh * lw

    def _steps(self, lh: int, lw: int) -> list[torch.Tensor]:
        if (lh, lw) not in self._step_masks:
            channels, kind = self.model.latent_shape[0], self.lc.context_kind
            self._step_masks[lh, lw] = coding_steps(channels, lh, lw, kind, self.lc.folded)
        return self._step_masks[lh, lw]

    def _segments(self, height: int, width: int) -> list[int]:
        """Bounds of the symbol sequence's segments, each coded with what the ones before it decode to: [0, hyper,
        latent]; with a context [0, hyper, anchors, non-anchors], or each pass's sub-position groups."""
        num_hyper, _ = self.num_symbols(height, width)
        bounds = [0, num_hyper]
        for step in self._steps(*self.latent_hw(height, width)):
            bounds.append(bounds[-1] + int(step.sum()))
        return bounds

    def _latent_order(self, lh: int, lw: int) -> torch.Tensor:
        """The latent's C x h x w positions (flat) in coding order: step by step, each in C x h x w order."""
        flat = torch.arange(self.model.latent_shape[0] * lh * lw)
        return torch.cat([flat[step.reshape(-1)] for step in self._steps(lh, lw)])

    def _slices(self, height: int, width: int) -> list[slice]:
        n = sum(self.num_symbols(height, width))
        return [slice(i, min(i + fmt.SLICE_SYMBOLS, n)) for i in range(0, n, fmt.SLICE_SYMBOLS)]

    def num_streams(self, height: int, width: int) -> int:
        return len(self._slices(height, width))

    def check_quality(self, quality: int) -> int:
        if not 0 <= quality < self.levels:
            raise UserError(f"quality {quality} is outside this model's levels 0..{self.levels - 1}")
        return quality

    # ---- the exact side information: hyper-symbols (and anchors) -> (means, scale indexes)
    def hyper_params(self, z_symbols: torch.Tensor, lh: int, lw: int) -> torch.Tensor:
        """The hyperprior's (means, log-scales) of every latent position, N x 2C x h x w: integers at
        2**FRACTION_BITS. Computed once per image and shared by both of a context's segments."""
        return self.hyper(z_symbols)[:, :, :lh, :lw]

    def step_params(self, params: torch.Tensor) -> Generator[torch.Tensor, torch.Tensor, None]:
        """The latent's (means, log-scales), N x 2C x h x w at 2**FRACTION_BITS, step by step (coding_steps): yields
        what holds on the next step's values (only there: elsewhere they may be stale), then takes the symbols decoded
        so far (N x C x h x w, zero beyond; only the steps before the next are read) and yields the next step's. Each
        step's work is done once, and only at the step's pass's positions."""
        if self.lc.context is None:
            yield params
            return
        c = self.model.latent_shape[0]
        anchors = anchor_mask(*params.shape[-2:])[0, 0].bool()  # the context's networks run only where they count

        def corrected(params, anchors_hat):  # the non-anchors' parameters from the anchors' symbols
            return params + self.fuse(torch.cat([params, self.context(anchors_hat, at=~anchors)], 1), at=~anchors)

        if self.subposition is None:  # the checkerboard
            y = yield params
            yield corrected(params, (y.to(torch.float64) * 2**FRACTION_BITS + params[:, :c]) * anchors)
            return
        # HyperpriorLatentCodec._subposition_parameters in fixed point: each pass's sub-position groups in turn
        folded = self.lc.folded

        def run_pass(p, params, positions, seen):  # (only ``positions``' parameters are computed, and used)
            out, decoded = params.clone(), torch.zeros_like(params[:, :c])
            for g, group in enumerate(subposition_groups(c, folded)):
                if g:
                    context, fuse = self.subposition[p][g - 1]
                    step = torch.cat([out[:, group], out[:, c + group]], 1)
                    features = context(seen + decoded[:, c - folded :], at=positions)
                    step = step + fuse(torch.cat([step, features], 1), at=positions)
                    out[:, group], out[:, c + group] = step.split(len(group), 1)
                y = yield out
                decoded[:, group] = (y[:, group].to(torch.float64) * 2**FRACTION_BITS + out[:, group]) * positions
            return decoded

        anchors_hat = yield from run_pass(0, params, anchors, 0)
        yield from run_pass(1, corrected(params, anchors_hat), ~anchors, anchors_hat[:, c - folded :])

    def means_and_indexes(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scale indexes) of (means, log-scales) at 2**FRACTION_BITS: integer comparisons, exact."""
        c = self.model.latent_shape[0]
        means = params[:, :c] / 2**FRACTION_BITS  # exact: an integer over a power of two
        codes = params[:, c:].to(torch.int64)
        return means, torch.bucketize(codes, self.scale_codes).to(torch.int32)

    def conditionals(
        self, params: torch.Tensor, y_symbols: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scale indexes) of every latent position from ``hyper_params``. With a context, each step's need
        the symbols of the steps before it (``y_symbols``, N x C x h x w: nothing else is read); without them, the
        hyperprior's."""
        if y_symbols is None:
            return self.means_and_indexes(params)
        return self.means_and_indexes(self._stepped(params, lambda step, current: y_symbols))

    def _stepped(self, params: torch.Tensor, symbols_after: Callable) -> torch.Tensor:
        """Every position's (means, log-scales) from its own step, ``symbols_after(step mask, parameters)`` giving
        the symbols decoded once that step is (N x C x h x w)."""
        steps = self._steps(*params.shape[-2:])
        final, stepper = torch.empty_like(params), self.step_params(params)
        current = next(stepper)
        for k, step in enumerate(steps):
            on_step = step.repeat(2, 1, 1).unsqueeze(0)  # the step's means and log-scales
            final = torch.where(on_step, current, final)
            if k + 1 < len(steps):
                current = stepper.send(symbols_after(step, current))
        return final

    # ---- analysis: images -> (hyper-symbols, latent symbols, the latent's scale indexes)
    @torch.no_grad()
    def symbols(
        self, images: torch.Tensor, quality: int, refine: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(hyper-symbols, latent symbols, the latent's scale indexes) of each image; ``refine``: of its
        latents after ``self.refine``'s steps."""
        _, _, height, width = images.shape
        lh, lw = self.latent_hw(height, width)
        x = images.to(torch.float64).div(255)
        x = F.pad(x, (0, lw * self.stride - width, 0, lh * self.stride - height), mode="replicate")
        q = torch.full((len(x),), quality, dtype=torch.long)
        y_g = self.model.encode(x) * self.lc.gains(q)
        if refine and self.refine.steps:
            y_g = self.refined(y_g, x[:, :, :height, :width], quality)
        z_symbols = torch.round(self.lc.h_a(y_g) - self.medians)
        params = self.hyper_params(z_symbols, lh, lw)  # exact: the same for an image alone or in a batch
        y_symbols = torch.zeros_like(y_g)

        def symbols_after(step: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
            nonlocal y_symbols  # each step's symbols, as soon as its means are known
            means = self.means_and_indexes(current)[0]
            y_symbols = torch.where(step.unsqueeze(0), torch.round(y_g - means), y_symbols)
            return y_symbols

        final = self._stepped(params, symbols_after)
        means, indexes = self.means_and_indexes(final)
        return z_symbols.to(torch.int64), torch.round(y_g - means).to(torch.int64), indexes

    def refined(self, y_g: torch.Tensor, target: torch.Tensor, quality: int) -> torch.Tensor:
        """Gained latents moved by ``self.refine`` on each image's own rate + lambda * 255^2 * MSE, the
        training loss (noisy rate, straight-through decoder), with the decoder and entropy models fixed.
        One image at a time, seeded: an image gives the same file alone or in any batch (the rate's noise is
        drawn per batch, and the context's float convolutions vary in the last bits with the batch size)."""
        if self._trainable is None:
            self._trainable = copy.deepcopy(self.model).float().eval()
            self._trainable.latent_codec.train()  # the entropy models' noisy (differentiable) rate
        model = self._trainable
        lam = self.cfg.level_lambdas[quality] * self.refine.lambda_scale * 255**2
        q = torch.full((1,), quality, dtype=torch.long)
        gain = model.latent_codec.gains(q)
        height, width = target.shape[-2:]
        out = []
        for y_one, target_one in zip(y_g.split(1), target.float().split(1)):

            def loss(y_g: torch.Tensor, step: int, target=target_one) -> torch.Tensor:
                y_hat, likelihoods = model.latent_codec(y_g / gain, q)
                sq_err = (model.decode(y_hat)[:, :, :height, :width] - target).pow(2).sum()
                return -torch.log2(likelihoods).sum() / (height * width) + lam / target.numel() * sq_err

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                out.append(self.refine.optimize(y_one, loss))
        return torch.cat(out)

    # ---- synthesis: the one decode path
    @torch.no_grad()
    def synthesize(self, y_symbols: torch.Tensor, means: torch.Tensor, quality: int, height: int, width: int):
        """One image's C x h x w latent symbols -> 3 x height x width uint8."""
        q = torch.tensor([quality])
        y_hat = (y_symbols.to(torch.float64).unsqueeze(0) + means) / self.lc.gains(q)
        return to_uint8(self.model.decode(y_hat)[0, :, :height, :width])

    def reconstruct(self, images: torch.Tensor, quality: int) -> torch.Tensor:
        """What the plain (unrefined) files of ``images`` decode to, without the entropy coder."""
        _, _, height, width = images.shape
        lh, lw = self.latent_hw(height, width)
        z, y, _ = self.symbols(images, quality)
        out = []
        for zi, yi in zip(z, y):
            means, _ = self.conditionals(self.hyper_params(zi.unsqueeze(0), lh, lw), yi.unsqueeze(0))
            out.append(self.synthesize(yi, means, quality, height, width))
        return torch.stack(out)

    # ---- entropy coding of one image
    def _hyper_indexes(self, height: int, width: int) -> list[int]:
        """The hyper-symbols' CDF indexes: each symbol's channel (the EntropyBottleneck has one per channel)."""
        hz, wz = self.hyper_hw(height, width)
        return torch.arange(self.medians.shape[1]).repeat_interleave(hz * wz).tolist()

    def _parts(self, s: slice, bounds: list[int]) -> list[tuple[int, slice]]:
        """Slice ``s`` cut at the segments' bounds: (segment, part) pairs."""
        return [
            (k, slice(max(s.start, lo), min(s.stop, hi)))
            for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
            if max(s.start, lo) < min(s.stop, hi)
        ]

    def _encode_slice(self, symbols: list[int], indexes: list[int], bounds: list[int], s: slice) -> bytes:
        from compressai.ans import BufferedRansEncoder  # here: importing compressai imports torchvision (~2 s)

        encoder = BufferedRansEncoder()
        hyper, latent = slice(s.start, min(s.stop, bounds[1])), slice(max(s.start, bounds[1]), s.stop)
        for part, tables in ((hyper, self.z_tables), (latent, self.y_tables)):  # the latent's steps in one call
            if part.start < part.stop:
                encoder.encode_with_indexes(symbols[part], *_used_tables(indexes[part], tables))
        return encoder.flush()

    def encode_symbols(
        self, z: torch.Tensor, y: torch.Tensor, y_indexes: torch.Tensor, height: int, width: int
    ) -> list[bytes]:
        """One image's symbols (and the latent's scale indexes, from ``symbols``) -> its slices' streams."""
        lh, lw = self.latent_hw(height, width)
        if y.abs().max() >= MAX_SYMBOL or z.abs().max() >= MAX_SYMBOL:
            raise UserError("latent out of the entropy coder's range")
        order = self._latent_order(lh, lw)
        symbols = z.reshape(-1).tolist() + y.reshape(-1)[order].tolist()
        indexes = self._hyper_indexes(height, width) + y_indexes.reshape(-1)[order].tolist()
        bounds = self._segments(height, width)
        return [self._encode_slice(symbols, indexes, bounds, s) for s in self._slices(height, width)]

    def decode_symbols(self, streams: list[bytes], height: int, width: int):
        """(latent symbols C x h x w, means 1 x C x h x w) of one image's streams; checks every slice.
        Each segment's indexes come from the segments before it (step_params): the hyper-symbols give the first
        step's, and each step's symbols the next's."""
        from compressai.ans import RansDecoder

        lh, lw = self.latent_hw(height, width)
        hz, wz = self.hyper_hw(height, width)
        bounds = self._segments(height, width)
        num_hyper = bounds[1]
        order = self._latent_order(lh, lw)
        steps = self._steps(lh, lw)
        symbols, indexes = [], self._hyper_indexes(height, width)
        y_known = torch.zeros(len(order), dtype=torch.float64)  # the latent symbols decoded so far, zero beyond
        for s, stream in zip(self._slices(height, width), streams):
            decoder = RansDecoder()
            decoder.set_stream(_padded(stream, s.stop - s.start))
            _padded.clear(stream)
            for k, part in self._parts(s, bounds):
                if part.start == bounds[k] and k > 0:  # a new segment (step k - 1): its indexes, from what is decoded
                    if k == 1:
                        z = torch.tensor(symbols, dtype=torch.float64).view(1, -1, hz, wz)
                        params = self.hyper_params(z, lh, lw)
                        stepper, at = self.step_params(params), 0
                        current, final = next(stepper), torch.empty_like(params)
                    while at < k - 1:  # ``current`` is step ``at``'s; past any empty step (a one-value latent)
                        current, at = stepper.send(y_known.view(1, -1, lh, lw).clone()), at + 1
                    final = torch.where(steps[k - 1].repeat(2, 1, 1).unsqueeze(0), current, final)
                    y_indexes = self.means_and_indexes(current)[1]
                    indexes += y_indexes.reshape(-1)[order[bounds[k] - num_hyper : bounds[k + 1] - num_hyper]].tolist()
                tables = self.z_tables if k == 0 else self.y_tables
                decoded = decoder.decode_stream(*_used_tables(indexes[part], tables))
                if max(map(abs, decoded)) >= MAX_SYMBOL:
                    raise UserError("corrupt entropy-coded stream (symbol out of range)")
                if k > 0:
                    y_known[order[part.start - num_hyper : part.stop - num_hyper]] = torch.tensor(decoded).double()
                symbols += decoded
            if self._encode_slice(symbols, indexes, bounds, s) != stream:
                raise UserError("corrupt entropy-coded stream (it does not re-encode to itself)")
        return y_known.view(-1, lh, lw), self.means_and_indexes(final)[0]

    # ---- files
    def compress(self, images: torch.Tensor, quality: int, batch_size: int = 256) -> list[bytes]:
        """N x 3 x H x W uint8 (one size) -> one file's bytes per image, at quality level ``quality``."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"expected N x 3 x H x W uint8 images, got {tuple(images.shape)} {images.dtype}")
        self.check_quality(quality)
        _, _, height, width = images.shape
        fmt.check_size(height, width)
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            files = self._files(batch, quality, refine=False)
            if self.refine.steps:
                # Refinement descends the training loss (noisy rate, straight-through decoder), which at low
                # rates can make the real file cost more: per image, keep the cheaper file (plain on a tie).
                refined = self._files(batch, quality, refine=True)
                lam = self.cfg.level_lambdas[quality] * self.refine.lambda_scale
                files = [
                    min(pair, key=lambda data, image=image: self.rd_cost(data, image, lam))
                    for pair, image in zip(zip(files, refined), batch)
                ]
            out += files
        return out

    def _files(self, images: torch.Tensor, quality: int, refine: bool) -> list[bytes]:
        height, width = images.shape[-2:]
        return [
            pack(width, height, self.model_id, self.encode_symbols(z, y, y_indexes, height, width), quality)
            for z, y, y_indexes in zip(*self.symbols(images, quality, refine))
        ]

    def rd_cost(self, data: bytes, image: torch.Tensor, rd_lambda: float) -> float:
        """What refinement minimises, measured on the real file: its bits per pixel + rd_lambda * 255^2 * MSE
        of what it decodes to (``image``: 3 x H x W uint8)."""
        mse = (self.decompress(data).double() - image.double()).div(255).pow(2).mean().item()
        return 8 * len(data) / image[0].numel() + rd_lambda * 255**2 * mse

    def parse(self, data: bytes) -> Parsed:
        first = parse(data)  # magic, version, checksum, size
        parsed = parse(data, self.num_streams(first.height, first.width))
        if parsed.model_tag != model_tag(self.model_id):
            raise UserError(
                f"file was written by a model whose id starts with {parsed.model_tag.hex()}, but {self.source} is "
                f"model {self.model_id.hex()}; decompress with the --model that compressed it"
            )
        if parsed.quality >= self.levels:
            raise UserError(f"corrupt header: quality {parsed.quality} (this model has {self.levels} levels)")
        return parsed

    def decompress(self, data: bytes) -> torch.Tensor:
        """One file's bytes -> 3 x H x W uint8. Raises UserError on anything but a valid file."""
        parsed = self.parse(data)
        y, means = self.decode_symbols(parsed.streams, parsed.height, parsed.width)
        return self.synthesize(y, means, parsed.quality, parsed.height, parsed.width)

    def describe(self) -> str:
        c, s = self.model.latent_shape[0], self.cfg.latent_size
        return (
            f"{self.source} (model id {self.model_id.hex()}, latent {c}x{s}x{s} per 32x32, stride {self.stride}, "
            f"mean-scale hyperprior{CONTEXTS[self.lc.context_kind]}, "
            f"{self.levels} quality levels"
            + (f", encoder-side refinement {self.refine.tag})" if self.refine.steps else ")")
        )
