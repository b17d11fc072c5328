"""The .cae container: magic, version, size, model id, quality level, entropy-coded streams, checksum.

File format, version 3 (integers big-endian; varints are unsigned LEB128):

    field        bytes  notes
    magic        3      b"CAE"
    version      1      3
    width        1-3    varint, 1..65535
    height       1-3    varint, 1..65535
    model id     6      first 6 bytes of SHA-256 over the model's architecture, weights and CDF tables
    quality      1      the quality level the image was coded at
    stream sizes varint each, for every stream but the last (the last runs up to the checksum)
    streams      ...    rANS streams, one per slice of at most SLICE_SYMBOLS symbols of the
                        image's sequence: the hyper-latent's symbols, then the latent's
    crc32        4      zlib CRC-32 of every byte before it

The shipped model codes a 32 x 32 image in one stream: 17 bytes of header + checksum (0.13 bpp).
Older versions are refused with a one-line "made by an older format" error that says where they
decode: version 1 was the factorized-prior codec (v1), removed after commit cdeb663; version 2 was
this codec with one stream per entropy model (three on a 32 x 32 image, ~14 bytes more).
This module knows bytes only; what the streams hold is the codec's business (hyperprior_codec.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import UserError

MAGIC = b"CAE"
VERSION = 3  # the hyperprior codec (hyperprior_codec.py), one stream per slice
# Formats this decoder no longer reads, and where they can still be decoded.
OLDER_VERSIONS = {
    1: "the factorized-prior codec v1; decode it with a checkout of commit cdeb663",
    2: "the hyperprior codec's three-stream files; decode it with a checkout of commit 925282e",
}
MODEL_ID_BYTES = 6
CRC_BYTES = 4
MAX_SIDE = 65535
MAX_PIXELS = 1024 * 1024  # decoding runs in float64: ~10 GB at this size
# One rANS stream per slice: bounds the decoder's read-ahead padding; a 32 x 32 image (14,336 symbols
# with the shipped model) is one slice. The codec reads this module attribute each time it cuts or
# counts slices (tests set it lower to cut small images into many slices).
SLICE_SYMBOLS = 16384
# CompressAI's rANS coder loops forever on |symbol| >= 2**28 (its bypass shift wraps): stay well inside.
MAX_SYMBOL = 2**24
SUFFIX = ".cae"


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
    quality: int


def pack(width: int, height: int, model_id: bytes, streams: list[bytes], quality: int) -> bytes:
    head = MAGIC + bytes([VERSION]) + put_varint(width) + put_varint(height) + model_id + bytes([quality])
    head += b"".join(put_varint(len(s)) for s in streams[:-1])
    body = head + b"".join(streams)
    return body + struct.pack(">I", zlib.crc32(body))


def version_of(data: bytes) -> int:
    """The format version of a file (after checking its magic)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UserError("not a byte string")
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        raise UserError("not a cifarae codec file (bad magic; foreign file?)")
    if len(data) < len(MAGIC) + 1:
        raise UserError("truncated file (no format version)")
    return data[len(MAGIC)]


def parse(data: bytes, num_streams: int | None = None) -> Parsed:
    """Check and split a file. ``num_streams``: how many the model expects (None: one)."""
    found = version_of(data)
    data = bytes(data)
    if found in OLDER_VERSIONS:
        raise UserError(f"made by an older format: version {found}, {OLDER_VERSIONS[found]}")
    if found != VERSION:
        raise UserError(f"unsupported format version {found} (this decoder reads version {VERSION})")
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
    if pos >= len(body):
        raise UserError("truncated header (quality)")
    quality, pos = body[pos], pos + 1
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
    return Parsed(width, height, model_id, streams, len(data) - sum(map(len, streams)), quality)


def check_size(height: int, width: int) -> None:
    """Refuse an image size the container cannot describe (or the decoder could not afford)."""
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise UserError(f"image size {width}x{height} is outside 1..{MAX_SIDE} per side, {MAX_PIXELS} pixels")


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    return 8 * num_bytes / (height * width)
