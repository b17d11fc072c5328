"""The codec's entropy model, v2: a mean-scale hyperprior with gain units (one model, many rates), and
optionally a checkerboard context.

Built from CompressAI's public entropy models (Ballé et al. 2018, Minnen et al. 2018):

    y  (the AutoEncoder's latent) --x gain[q]--> y_g --h_a--> z --EntropyBottleneck--> z_hat
    z_hat --h_s--> (mean, scale) of each y_g value --GaussianConditional--> y_g_hat --/ gain[q]--> decoder

``gain[q]`` is a learned per-channel gain for each quality level q (Cui et al. 2021, "asymmetric
gained" units): a larger gain quantises the latent more finely, so one set of transforms covers the
whole rate range, trained with a rate-distortion weight ``rd_lambdas[q]`` per level.

Checkerboard context (``context="checkerboard"``, He et al. 2021): the latent positions with i + j even,
the anchors, are coded first with the hyperprior's (mean, scale); the others then get a correction computed
from the decoded anchors around them (a masked 5 x 5 convolution, CompressAI's CheckerboardMaskedConv2d)
and the hyperprior's parameters (a pointwise network). Two decoding passes, not one per position.

Sub-position context (``context="subpositions"``): the checkerboard, and within each of its passes the
folded skip latent (the last ``folded`` channels: a latent at twice the side, space-to-depth) coded one
sub-position of its 2 x 2 blocks after another, each corrected from what is decoded of it so far (a 3 x 3
convolution and a pointwise network per step, ``SubpositionContext``). Eight steps; the main latent's
channels are coded with the first sub-position. Fitted on the frozen shipped model, a larger form of it saved
7.7-8.9% of the bits at every level (experiments/codec/group_context_probe.py).

Exact decoding. The decoder must rebuild exactly the (mean, scale index) the encoder used, or rANS
decodes garbage. Floats computed by h_s differ with thread count, batch size and device, so coding
never uses them: ``ExactNetwork`` runs h_s (and the context) in fixed point (integer weights and activations,
held in float64, whose sums of integers below 2**53 are exact in any order), and the scale index is
an integer comparison of its output against integer thresholds. The entropy coder's tables are
built once when a model is exported (``export``) and shipped in its state dict, never recomputed
on the machine that decodes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# GaussianConditional's scale table: 64 log-spaced scales from 0.11 to 256 (CompressAI's defaults),
# defined by integer codes of log(scale) at ``FRACTION_BITS`` so that indexes are integer comparisons.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
WEIGHT_BITS = 12  # fixed-point fraction bits of h_s's weights
FRACTION_BITS = 12  # ... and of its activations and outputs
TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")  # sized by export()
EXACT_LIMIT = 2.0**52  # |integer| sums below this are exact in float64


def log_scale_codes() -> list[int]:
    """The scale table as integer codes round(log(scale) * 2**FRACTION_BITS), ascending."""
    lo, hi = math.log(SCALE_MIN), math.log(SCALE_MAX)
    return [round((lo + (hi - lo) * i / (SCALE_LEVELS - 1)) * 2**FRACTION_BITS) for i in range(SCALE_LEVELS)]


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def anchor_mask(height: int, width: int) -> torch.Tensor:
    """1 x 1 x height x width: 1 at the checkerboard's anchors (i + j even), coded first."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((i + j) % 2 == 0).to(torch.float32).view(1, 1, height, width)


class CheckerboardContext(nn.Module):
    """(means, log-scales) of the non-anchors, corrected from the decoded anchors around them."""

    def __init__(self, channels: int):
        super().__init__()
        from compressai.layers import CheckerboardMaskedConv2d

        c, c2 = channels, 2 * channels
        # C features from the anchors (5 x 5, of which the 12 anchor taps are live): the most of context.pt.
        self.context = CheckerboardMaskedConv2d(c, c, 5, padding=2)
        self.fuse = nn.Sequential(
            nn.Conv2d(c2 + c, c2, 1), nn.ReLU(), nn.Conv2d(c2, c2, 1), nn.ReLU(), nn.Conv2d(c2, c2, 1)
        )  # fmt: skip
        # The correction starts at zero: a context model begins as its hyperprior (and fine-tunes from one).
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, anchors_hat: torch.Tensor, hyper_params: torch.Tensor) -> torch.Tensor:
        """anchors_hat: the decoded latent, zero off the anchors; hyper_params: h_s's (means, log-scales)."""
        delta = self.fuse(torch.cat([hyper_params, self.context(anchors_hat)], dim=1))
        return hyper_params + delta * (1 - anchor_mask(*anchors_hat.shape[-2:]).to(delta))


class SubpositionContext(nn.Module):
    """One step's (means, log-scales), corrected from what is decoded of the folded skip latent so far."""

    FEATURES, HIDDEN = 32, 96  # small: the shipped model's files have ~0.8 MB to spare (shipped.py)

    def __init__(self, folded: int, step_channels: int):
        super().__init__()
        c2 = 2 * step_channels
        self.context = nn.Conv2d(folded, self.FEATURES, 3, padding=1)
        self.fuse = nn.Sequential(
            nn.Conv2d(c2 + self.FEATURES, self.HIDDEN, 1), nn.ReLU(), nn.Conv2d(self.HIDDEN, self.HIDDEN, 1),
            nn.ReLU(), nn.Conv2d(self.HIDDEN, c2, 1),
        )  # fmt: skip
        nn.init.zeros_(self.fuse[-1].weight)  # starts as no correction (and fine-tunes from a model without it)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, seen: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """seen: the folded latent decoded so far (zero elsewhere); params: this step's (means, log-scales)."""
        return params + self.fuse(torch.cat([params, self.context(seen)], dim=1))


def subposition_groups(channels: int, folded: int) -> list[torch.Tensor]:
    """The channels coded in each step of a pass: the main latent's with the folded latent's first sub-position,
    then each other sub-position. pixel_unshuffle(2) puts sub-position s of channel c at folded channel 4c + s."""
    main = channels - folded
    sub = torch.arange(folded) % 4
    return [torch.cat([torch.arange(main), main + torch.nonzero(sub == 0).flatten()])] + [
        main + torch.nonzero(sub == s).flatten() for s in (1, 2, 3)
    ]


def coding_steps(channels: int, height: int, width: int, context: str, folded: int = 0) -> list[torch.Tensor]:
    """C x height x width bool masks, one per step in coding order: the values each step codes (and whose
    parameters it knows only then). One step; the checkerboard's anchors, then non-anchors; or within each, the
    sub-positions' groups."""
    if context == "none":
        return [torch.ones(channels, height, width, dtype=torch.bool)]
    anchors = anchor_mask(height, width)[0].bool().expand(channels, height, width)
    passes = [anchors, ~anchors]
    if context == "checkerboard":
        return passes
    steps = []
    for positions in passes:
        for group in subposition_groups(channels, folded):
            in_group = torch.zeros(channels, 1, 1, dtype=torch.bool)
            in_group[group] = True
            steps.append(positions & in_group)
    return steps


def gains_for_levels(log_gains: torch.Tensor, lambdas: list[float], new_lambdas: list[float]) -> torch.Tensor:
    """Log-gains for ``new_lambdas`` from a model trained at ``lambdas``: a level it has keeps its gains, a new
    one starts from the nearest level's, moved by the sqrt(lambda) rule the gains are initialised with."""
    rows = []
    for lam in new_lambdas:
        near = min(range(len(lambdas)), key=lambda i: abs(math.log(lam / lambdas[i])))
        rows.append(log_gains[near] + 0.5 * math.log(lam / lambdas[near]))
    return torch.stack(rows)


class HyperpriorLatentCodec(nn.Module):
    """Codes a C x h x w latent (any h, w) at one of ``levels`` qualities; hyper-latent at half its side."""

    def __init__(
        self, channels: int, hyper_channels: int, levels: int, lambdas: list[float], context: str = "none",
        folded: int = 0,
    ):  # fmt: skip
        """``folded``: how many of the last channels are a latent at twice the side, folded (the sub-position
        context codes them sub-position by sub-position)."""
        super().__init__()
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        n = hyper_channels
        self.channels, self.levels = channels, levels
        self.h_a = nn.Sequential(conv3(channels, n), nn.ReLU(), conv3(n, n, stride=2), nn.ReLU(), conv3(n, n))
        # h_s uses only what fixed point reproduces exactly: convolutions, ReLU and pixel shuffles.
        self.h_s = nn.Sequential(
            conv3(n, n), nn.ReLU(), nn.Conv2d(n, 4 * n, 1), nn.PixelShuffle(2), nn.ReLU(), conv3(n, 2 * channels)
        )
        # Gains start spread as sqrt(lambda): the MSE of uniform quantisation falls as 1/gain^2.
        ref = math.sqrt(max(lambdas) * min(lambdas))
        init = torch.tensor([0.5 * math.log(lam / ref) for lam in lambdas]).view(levels, 1).expand(levels, channels)
        self.log_gains = nn.Parameter(init.clone())
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None, scale_bound=SCALE_MIN)
        self.context_kind, self.folded = context, folded
        self.context = CheckerboardContext(channels) if context != "none" else None
        self.subposition_contexts = None
        if context == "subpositions":  # per pass, a context for each group after the first
            groups = subposition_groups(channels, folded)
            with torch.random.fork_rng(devices=[]):  # every other initial weight stays the checkerboard model's
                self.subposition_contexts = nn.ModuleList(
                    nn.ModuleList(SubpositionContext(folded, len(g)) for g in groups[1:]) for _ in range(2)
                )
        self.register_buffer("scale_codes", torch.tensor(log_scale_codes(), dtype=torch.int64))
        self.register_load_state_dict_pre_hook(self._size_coder_tables)

    def gains(self, quality: torch.Tensor) -> torch.Tensor:
        """N x C x 1 x 1 gains of each image's quality level."""
        return torch.exp(self.log_gains[quality])[:, :, None, None]

    def hyper_medians(self) -> torch.Tensor:
        """The hyper-prior's medians (1 x N x 1 x 1): h_s reads z_hat minus them, integers when coded."""
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def parameters_from(self, z_centered: torch.Tensor, y_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, log-scales) of y_g from the centred hyper-latent and, with a context, y_g's rounded anchors;
        in float (coding: ExactNetwork)."""
        params = self.h_s(z_centered)[:, :, : y_g.shape[-2], : y_g.shape[-1]]
        if self.subposition_contexts is not None:
            return self._subposition_parameters(params, y_g)
        if self.context is not None:
            from compressai.ops import quantize_ste

            means = params.chunk(2, dim=1)[0]
            anchors_hat = (quantize_ste(y_g - means) + means) * anchor_mask(*y_g.shape[-2:]).to(y_g)
            params = self.context(anchors_hat, params)
        means, log_scales = params.chunk(2, dim=1)
        return means, log_scales

    def _subposition_parameters(self, hyper: torch.Tensor, y_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sub-position context's (means, log-scales): each pass's groups in turn, each step reading the
        values the steps before it decoded (rounded, straight-through). HyperpriorCodec.conditionals in float."""
        from compressai.ops import quantize_ste

        c = self.channels
        groups = subposition_groups(c, self.folded)
        order = torch.cat(groups)
        unorder, sizes = torch.argsort(order), [len(g) for g in groups]
        anchors = anchor_mask(*y_g.shape[-2:]).to(y_g)
        y_groups = y_g[:, order].split(sizes, 1)

        def run_pass(p, params, positions, seen):
            """(params, decoded values) of one pass's positions, channels in order; ``seen``: the folded latent
            decoded before the pass."""
            means, log_scales = (t[:, order].split(sizes, 1) for t in params.chunk(2, dim=1))
            out, decoded = [], []
            for g, y_group in enumerate(y_groups):
                step = torch.cat([means[g], log_scales[g]], 1)
                if g:
                    so_far = torch.cat([*decoded, y_g.new_zeros(len(y_g), c - sum(sizes[:g]), *y_g.shape[-2:])], 1)
                    step = self.subposition_contexts[p][g - 1](seen + so_far[:, unorder][:, c - self.folded :], step)
                out.append(step)
                m = step.chunk(2, 1)[0]
                decoded.append((quantize_ste(y_group - m) + m) * positions)
            means, log_scales = (torch.cat([o.chunk(2, 1)[i] for o in out], 1)[:, unorder] for i in (0, 1))
            return torch.cat([means, log_scales], 1), torch.cat(decoded, 1)[:, unorder]

        anchor_params, anchors_hat = run_pass(0, hyper, anchors, 0)
        checkerboard = self.context(anchors_hat, hyper)  # the non-anchors' starting point, from every anchor
        other_params, _ = run_pass(1, checkerboard, 1 - anchors, anchors_hat[:, c - self.folded :])
        params = anchor_params * anchors + other_params * (1 - anchors)
        means, log_scales = params.chunk(2, dim=1)
        return means, log_scales

    def coding_parameters(self, y: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(gain, gained latent y_g, hyper-latent likelihoods, means, log-scales) of latents ``y`` at levels
        ``quality``: what forward() codes y_g with (in float; coding: ExactNetwork)."""
        gain = self.gains(quality)
        y_g = y * gain
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y_g))
        means, log_scales = self.parameters_from(z_hat - self.hyper_medians(), y_g)
        return gain, y_g, z_likelihoods, means, log_scales

    def forward(self, y: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat for the decoder, likelihoods of every coded value, flat). Training adds noise for the rate
        and feeds the decoder rounded values (straight-through); eval rounds both."""
        from compressai.ops import quantize_ste

        gain, y_g, z_likelihoods, means, log_scales = self.coding_parameters(y, quality)
        _, y_likelihoods = self.gaussian_conditional(y_g, torch.exp(log_scales), means)
        y_g_hat = quantize_ste(y_g - means) + means
        return y_g_hat / gain, torch.cat([y_likelihoods.reshape(-1), z_likelihoods.reshape(-1)])

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    @torch.no_grad()
    def export(self) -> None:
        """Build the coder's tables (stored in the state dict from then on): the hyper-prior's CDFs and
        the Gaussian tables of the integer scale table."""
        self.entropy_bottleneck.update(force=True)
        scales = torch.exp(self.scale_codes.double() / 2**FRACTION_BITS).tolist()
        self.gaussian_conditional.update_scale_table(scales, force=True)

    @staticmethod
    def _size_coder_tables(module, state_dict, prefix, *args) -> None:
        """Load-time hook: the coder's tables are buffers whose sizes export() set; size ours to the file's."""
        for name, buf in module.named_buffers():
            saved = state_dict.get(prefix + name)
            if saved is not None and buf.shape != saved.shape and "." in name and name.rsplit(".", 1)[1] in TABLES:
                owner, leaf = name.rsplit(".", 1)
                module.get_submodule(owner).register_buffer(leaf, torch.empty_like(saved, dtype=buf.dtype))


class ExactNetwork:
    """A network of convolutions, ReLUs and pixel shuffles in fixed point: the same integers on every
    machine, thread count and batch size (h_s, and the context's two parts).

    Weights become integers round(w * 2**WEIGHT_BITS) (a masked convolution's masked first), activations
    integers at 2**FRACTION_BITS; the input is integers at 2**in_bits. Every product and sum is of integers
    below 2**52, held in float64, hence exact whatever the order of summation (or the zero terms left out:
    a masked convolution's dead taps are dropped); rescaling is a floor of a division by a power of two, also
    exact. Convolutions are unfold + matrix product, so no device-specific algorithm (Winograd, FFT) can round
    anything.
    """

    def __init__(self, layers, in_bits: int = 0):
        self.layers, self.in_bits = [], in_bits
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                weight = layer.weight.detach() * getattr(layer, "mask", 1)
                w = torch.round(weight.double() * 2**WEIGHT_BITS).flatten(1)
                live = w.abs().sum(0) > 0  # unfold's rows that a nonzero weight reads
                taps = None if live.all() else torch.nonzero(live).flatten()
                b = layer.bias.detach().double()
                kernel = (layer.kernel_size[0], layer.stride[0], layer.padding[0])
                self.layers.append(("conv", w if taps is None else w[:, taps], taps, b, kernel))
            elif isinstance(layer, nn.ReLU):
                self.layers.append(("relu",))
            elif isinstance(layer, nn.PixelShuffle):
                self.layers.append(("shuffle", layer.upscale_factor))
            else:
                raise TypeError(f"layer {type(layer).__name__} has no exact fixed-point form")

    @staticmethod
    def _columns(a: torch.Tensor, kernel: tuple[int, int, int], taps: torch.Tensor | None) -> torch.Tensor:
        """N x C x H x W -> N x (C k k) x L, the rows of live taps only: a copy, exact."""
        k, stride, padding = kernel
        cols = a.flatten(2) if kernel == (1, 1, 0) else F.unfold(a, k, padding=padding, stride=stride)
        return cols if taps is None else cols[:, taps]

    @staticmethod
    def _product(cols: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, in_bits: int) -> torch.Tensor:
        """N x K x L columns at 2**in_bits -> N x Cout x L at 2**FRACTION_BITS."""
        b = torch.round(bias * 2.0 ** (in_bits + WEIGHT_BITS)).view(1, -1, 1)
        acc = w @ cols + b
        if acc.numel() and acc.abs().max() >= EXACT_LIMIT:  # only a forged stream gets here
            acc = acc.clamp(-EXACT_LIMIT / 2, EXACT_LIMIT / 2)
        return torch.floor(acc / 2.0 ** (in_bits + WEIGHT_BITS - FRACTION_BITS))

    def __call__(self, inputs: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        """Integers at 2**in_bits -> integers at 2**FRACTION_BITS (float64 tensors). ``at``, an H x W bool mask:
        the output there only, zero elsewhere, for a network whose layers after the first are pointwise (the
        context's parts: each position's output is its own column's, so computing no others changes none)."""
        a, bits = inputs.to(torch.float64), self.in_bits
        if at is not None:
            return self._at(a, at)
        for kind, *args in self.layers:
            if kind == "conv":
                w, taps, bias, (k, stride, padding) = args
                n, _, h, width = a.shape
                cols = self._columns(a, (k, stride, padding), taps)
                ho, wo = (h + 2 * padding - k) // stride + 1, (width + 2 * padding - k) // stride + 1
                a, bits = self._product(cols, w, bias, bits).view(n, len(w), ho, wo), FRACTION_BITS
            elif kind == "relu":
                a = a.clamp_min(0)
            else:
                a = F.pixel_shuffle(a, args[0])
        return a

    def _at(self, a: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        n, _, h, width = a.shape
        (kind, w, taps, bias, kernel), *rest = self.layers
        if kind != "conv" or kernel[1] != 1 or 2 * kernel[2] != kernel[0] - 1:
            raise ValueError("at= needs a same-size convolution first")
        keep = torch.nonzero(at.flatten()).flatten()
        x = self._product(self._columns(a, kernel, taps)[:, :, keep], w, bias, self.in_bits)
        for kind, *args in rest:
            if kind == "relu":
                x = x.clamp_min(0)
            elif kind == "conv" and args[3] == (1, 1, 0):
                w, taps, bias, _ = args
                x = self._product(x if taps is None else x[:, taps], w, bias, FRACTION_BITS)
            else:
                raise ValueError("at= needs pointwise layers after the first")
        out = x.new_zeros(n, x.shape[1], h * width)
        out[:, :, keep] = x
        return out.view(n, -1, h, width)
