"""The learned image codec: an entropy-coded AutoEncoder turned into real files with measured bits.

One home per concept:
    format.py             the versioned .cae container (magic, version, varints, model id, CRC, limits)
    images.py             image files in and out (read_image, png_bytes, to_uint8)
    compressai_adapter.py the only module that touches CompressAI's private API
    entropy.py            code lengths under the prior (and context model); refitting the prior
    context.py            the checkerboard context model and its Gaussian coding tables
    refinement.py         encoder-side latent refinement, with a pluggable objective
    facade.py             Codec: images <-> files
    fitting.py            fitting a context model; the training images priors are fitted on
    loading.py            codec runs from disk (load_codec_checkpoint, load_codec)

The names below are re-exported so that ``from cifarae.codec import X`` keeps working. They are
copies of module constants: to change one at run time (a test cutting smaller stream slices, say)
set it on its own module, e.g. ``cifarae.codec.format.SLICE_SYMBOLS``.
"""

from .context import (
    MEAN_BINS,
    SCALE_LEVELS,
    SCALE_MAX,
    SCALE_MIN,
    TAIL_MASS,
    CheckerboardContext,
    anchor_mask,
    gaussian_bits,
    gaussian_tables,
)
from .entropy import encode_latents, fit_densities, fit_entropy_model, fit_tails, latent_bits, latent_rate
from .facade import ARCH_KEYS, Codec
from .fitting import fit_context, training_images
from .format import (
    CRC_BYTES,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    MAX_SYMBOL,
    MODEL_ID_BYTES,
    SLICE_SYMBOLS,
    SUFFIX,
    VERSION,
    Parsed,
    bits_per_pixel,
    get_varint,
    pack,
    parse,
    put_varint,
)
from .images import png_bytes, read_image, to_uint8
from .loading import load_codec, load_codec_checkpoint
from .refinement import Objective, Refinement, RefinementStep, rate_distortion

__all__ = [
    "ARCH_KEYS",
    "CRC_BYTES",
    "MAGIC",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_SYMBOL",
    "MEAN_BINS",
    "MODEL_ID_BYTES",
    "SCALE_LEVELS",
    "SCALE_MAX",
    "SCALE_MIN",
    "SLICE_SYMBOLS",
    "SUFFIX",
    "TAIL_MASS",
    "VERSION",
    "CheckerboardContext",
    "Codec",
    "Objective",
    "Parsed",
    "Refinement",
    "RefinementStep",
    "anchor_mask",
    "bits_per_pixel",
    "encode_latents",
    "fit_context",
    "fit_densities",
    "fit_entropy_model",
    "fit_tails",
    "gaussian_bits",
    "gaussian_tables",
    "get_varint",
    "latent_bits",
    "latent_rate",
    "load_codec",
    "load_codec_checkpoint",
    "pack",
    "parse",
    "png_bytes",
    "put_varint",
    "rate_distortion",
    "read_image",
    "to_uint8",
    "training_images",
]
