"""The learned image codec: an AutoEncoder with a mean-scale hyperprior, turned into real files with measured bits.

One home per concept, laid out as CompressAI lays out its own:
    hyperprior.py         the entropy model: CompressAI's EntropyBottleneck and GaussianConditional
                          behind a hyper-encoder/decoder, with per-level gain units (variable rate),
                          an optional checkerboard context (and sub-position steps within it), and
                          their fixed-point form (ExactNetwork)
    hyperprior_codec.py   HyperpriorCodec: images <-> .cae files at a chosen quality level (rANS)
    format.py             the versioned .cae container (magic and version, varints, model tag, CRC, limits)
    images.py             image files in and out (read_image, png_bytes, to_uint8)
    refinement.py         encoder-side latent refinement (settings and the loop)
    shipped.py            the models/ folder: export, checksums, lookup by model id
    loading.py            codecs from disk (load_codec_checkpoint, load_codec) and a run's init_from

The names below are re-exported so that ``from cifarae.codec import X`` works. They are copies of
module constants: to change one at run time (a test cutting smaller stream slices, say) set it on its
own module, e.g. ``cifarae.codec.format.SLICE_SYMBOLS``.
"""

from .format import (
    CRC_BYTES,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    MAX_SYMBOL,
    MODEL_ID_BYTES,
    MODEL_TAG_BYTES,
    SLICE_SYMBOLS,
    SUFFIX,
    VERSION,
    Parsed,
    bits_per_pixel,
    get_varint,
    model_tag,
    pack,
    parse,
    put_varint,
)
from .hyperprior_codec import HyperpriorCodec
from .images import png_bytes, read_image, to_uint8
from .loading import load_codec, load_codec_checkpoint
from .refinement import NO_REFINEMENT, Refinement

__all__ = [
    "CRC_BYTES",
    "MAGIC",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_SYMBOL",
    "MODEL_ID_BYTES",
    "MODEL_TAG_BYTES",
    "NO_REFINEMENT",
    "SLICE_SYMBOLS",
    "SUFFIX",
    "VERSION",
    "HyperpriorCodec",
    "Parsed",
    "Refinement",
    "bits_per_pixel",
    "get_varint",
    "load_codec",
    "load_codec_checkpoint",
    "model_tag",
    "pack",
    "parse",
    "png_bytes",
    "put_varint",
    "read_image",
    "to_uint8",
]
