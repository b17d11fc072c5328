"""Every use of CompressAI's private API, in one place.

The codec needs four things CompressAI computes but does not publish: the factorized prior's
cumulative logits and interval likelihood (EntropyBottleneck._logits_cumulative, ._likelihood), the
coder's tables built by ``update()`` (._quantized_cdf, ._cdf_length, ._offset), its medians
(._get_medians) and the C++ PMF -> 16-bit CDF quantiser (compressai._CXX.pmf_to_quantized_cdf).
This is the only module in the repository that names them: a CompressAI upgrade that moves one of
them breaks here, and nowhere else. Everything else uses these functions and CompressAI's public API
(EntropyBottleneck's parameters, ``quantiles``, ``target``, ``update``, ``likelihood_lower_bound``;
``compressai.ans``). Written against compressai 1.2.8.
"""

from __future__ import annotations

import torch


def cumulative_logits(eb, x: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """The prior's logit of P(value <= x), per channel; ``x`` is C x 1 x N (EntropyBottleneck's layout)."""
    return eb._logits_cumulative(x, stop_gradient=stop_gradient)


def likelihood(eb, v: torch.Tensor) -> torch.Tensor:
    """P(v - 1/2 < value <= v + 1/2) under the prior, for ``v`` C x 1 x N; differentiable in ``v`` and the prior's
    parameters. Not clamped: callers apply ``eb.likelihood_lower_bound``."""
    p, _, _ = eb._likelihood(v)
    return p


def medians(eb) -> torch.Tensor:
    """The prior's per-channel medians, C x 1 x 1 (a view of ``eb.quantiles``: not detached)."""
    return eb._get_medians()


def quantized_cdf(eb) -> tuple[list[list[int]], list[int], list[int]]:
    """(CDFs, lengths, offsets), one per channel: the rANS coder's tables as ``eb.update()`` last built them."""
    return eb._quantized_cdf.tolist(), eb._cdf_length.reshape(-1).tolist(), eb._offset.reshape(-1).tolist()


def pmf_to_quantized_cdf(pmf: list[float], precision: int = 16) -> list[int]:
    """A probability mass function (its last entry the tail mass) -> CompressAI's quantised CDF of
    ``precision`` bits, every symbol given a nonzero frequency (the C++ routine ``update()`` uses)."""
    from compressai._CXX import pmf_to_quantized_cdf as cxx

    return cxx(pmf, precision)
