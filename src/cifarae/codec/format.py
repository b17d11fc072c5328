"""The .cae container: magic and version, quality and size, model tag, entropy-coded streams, checksum.

File format, version 5 (integers big-endian; varints are unsigned LEB128):

    field        bytes  notes
    magic        1      0xC5: the high nibble 0xC is the magic, the low one the version (5)
    level        1      the quality level the image was coded at (low 7 bits); the high bit is set when the
                        image's size follows, clear for a 32 x 32 image (the size the codec is trained on)
    width        0/1-3  varint, 1..65535, only with the level byte's high bit (and never 32 x 32 then)
    height       0/1-3  varint, 1..65535, likewise
    model tag    2      the first 2 bytes of the model id (SHA-256 over the model's architecture, weights
                        and CDF tables); shipped models' tags are kept distinct (shipped.export)
    stream sizes varint each, for every stream but the last (the last runs up to the checksum): stored sizes
    streams      ...    rANS streams, one per slice of at most SLICE_SYMBOLS symbols of the
                        image's sequence: the hyper-latent's symbols, then the latent's; each stored without
                        the zero top bytes of its coder state (below)
    crc16        2      CRC-16/CCITT (binascii.crc_hqx, initial value 0xFFFF) of every byte before it

A stream is CompressAI's rANS output: whole 32-bit words, the first two the coder's final 64-bit state, low
word first and little-endian, so the state's top byte is the stream's byte 7. The state lies in [2^31, 2^63)
with a density near 1/x, so its top bytes are often zero: a stream leaves out up to three of them (bytes 7,
6, 5, from the top) and its stored length says how many, (-length) mod 4; the decoder puts them back. A
stored stream that keeps a zero byte it could have left out is refused, so each image has one file.

The shipped model codes a 32 x 32 image in one stream: 6 bytes of header and checksum (0.047 bpp), and the
stream 1.6 bytes shorter on average. Why so lean: on a 32 x 32 image every byte is 0.008 bpp, and the codec
is measured against AV1's payload alone (issue #26). A 16-bit CRC still catches every error burst up to 16
bits and all but 1 in 65,536 others; a forged checksum only reaches the entropy decoder, which refuses what
it cannot decode (fuzzed).
Older versions are refused with a one-line "made by an older format" error that says where they
decode: version 1 was the factorized-prior codec (v1), removed after commit cdeb663; version 2 was
this codec with one stream per entropy model (three on a 32 x 32 image); version 3 was this codec's
17-byte header; version 4 its 8-byte header (the size always written, the state's bytes all kept).
Versions 1-3 began with the three bytes b"CAE" and then the version.
This module knows bytes only; what the streams hold is the codec's business (hyperprior_codec.py).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from ..errors import UserError

MAGIC = 0xC0  # a file's first byte is MAGIC | VERSION
VERSION = 5  # the hyperprior codec (hyperprior_codec.py), one stream per slice, a 6-byte header
LEGACY_MAGIC = b"CAE"  # versions 1-3: these three bytes, then the version
LAST_LEGACY_VERSION = 3  # the one-byte magic starts at the version after it
# Formats this decoder no longer reads, and where they can still be decoded.
OLDER_VERSIONS = {
    1: "the factorized-prior codec v1; decode it with a checkout of commit cdeb663",
    2: "the hyperprior codec's three-stream files; decode it with a checkout of commit 925282e",
    3: "the hyperprior codec's 17-byte header; decode it with a checkout of commit cacd75c",
    4: "the hyperprior codec's 8-byte header; decode it with a checkout of commit b5ed400",
}
MODEL_ID_BYTES = 6  # a model's id (shipped.py, model.json)
MODEL_TAG_BYTES = 2  # what a file carries of it
CRC_BYTES = 2
MIN_BYTES = 1 + 1 + MODEL_TAG_BYTES + CRC_BYTES  # the shortest header: a 32 x 32 image's
DEFAULT_SIDE = 32  # an image of DEFAULT_SIDE x DEFAULT_SIDE stores no size
SIZE_FOLLOWS = 0x80  # the level byte's high bit: width and height follow
MAX_LEVELS = 0x80  # the level byte's other 7 bits
STATE_BYTES = 8  # a flushed rANS stream begins with the coder's 64-bit state
STATE_TOP = 7  # the state's top byte in the stream (low 32-bit word first, each little-endian)
WORD_BYTES = 4  # the coder writes 32-bit words: a stream's length says how many state bytes it left out
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
def model_tag(model_id: bytes) -> bytes:
    """What a file carries of the model id of the model that wrote it."""
    return model_id[:MODEL_TAG_BYTES]


def crc16(data: bytes) -> bytes:
    return binascii.crc_hqx(data, 0xFFFF).to_bytes(CRC_BYTES, "big")


@dataclass
class Parsed:
    width: int
    height: int
    model_tag: bytes
    streams: list[bytes]  # as the rANS coder wrote them (the state's zero bytes put back)
    header_bytes: int  # everything that is not stored stream payload: header + checksum
    quality: int


def drop_state_zeros(stream: bytes) -> bytes:
    """A flushed rANS stream without the zero top bytes of its state (at most WORD_BYTES - 1 of them)."""
    if len(stream) < STATE_BYTES or len(stream) % WORD_BYTES:
        raise ValueError(f"not a flushed rANS stream ({len(stream)} bytes)")
    zeros = 0
    while zeros < WORD_BYTES - 1 and not stream[STATE_TOP - zeros]:
        zeros += 1
    return stream[: STATE_BYTES - zeros] + stream[STATE_BYTES:]


def restore_state_zeros(stored: bytes) -> bytes:
    """drop_state_zeros undone: the stream as the rANS coder wrote it."""
    zeros = -len(stored) % WORD_BYTES
    if len(stored) < STATE_BYTES - zeros:
        raise UserError("corrupt file: empty or short entropy-coded stream")
    if zeros < WORD_BYTES - 1 and not stored[STATE_TOP - zeros]:  # a file the encoder never writes
        raise UserError("corrupt file: an entropy-coded stream keeps a zero state byte the format leaves out")
    return stored[: STATE_BYTES - zeros] + bytes(zeros) + stored[STATE_BYTES - zeros :]


def pack(width: int, height: int, model_id: bytes, streams: list[bytes], quality: int) -> bytes:
    if not 0 <= quality < MAX_LEVELS:
        raise ValueError(f"quality level {quality} is outside 0..{MAX_LEVELS - 1}")
    size = b"" if width == height == DEFAULT_SIDE else put_varint(width) + put_varint(height)
    head = bytes([MAGIC | VERSION, quality | (SIZE_FOLLOWS if size else 0)]) + size + model_tag(model_id)
    stored = [drop_state_zeros(s) for s in streams]
    head += b"".join(put_varint(len(s)) for s in stored[:-1])
    body = head + b"".join(stored)
    return body + crc16(body)


def version_of(data: bytes) -> int:
    """The format version of a file (after checking its magic)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UserError("not a byte string")
    data = bytes(data[:4])
    if data[:1] == LEGACY_MAGIC[:1]:  # versions 1-3
        if data[: len(LEGACY_MAGIC)] != LEGACY_MAGIC[: len(data)]:
            raise UserError("not a cifarae codec file (bad magic; foreign file?)")
        if len(data) <= len(LEGACY_MAGIC):
            raise UserError("truncated file (no format version)")
        return data[len(LEGACY_MAGIC)]
    if not data or data[0] & 0xF0 != MAGIC or data[0] & 0x0F <= LAST_LEGACY_VERSION:
        raise UserError("not a cifarae codec file (bad magic; foreign file?)")
    return data[0] & 0x0F


def parse(data: bytes, num_streams: int | None = None) -> Parsed:
    """Check and split a file. ``num_streams``: how many the model expects (it follows from the image's size); None
    reads the header's fixed fields only (size, model tag, quality) and leaves ``streams`` empty."""
    found = version_of(data)
    data = bytes(data)
    if found in OLDER_VERSIONS:
        raise UserError(f"made by an older format: version {found}, {OLDER_VERSIONS[found]}")
    if found != VERSION:
        raise UserError(f"unsupported format version {found} (this decoder reads version {VERSION})")
    if len(data) < MIN_BYTES:
        raise UserError(f"truncated file ({len(data)} bytes is shorter than any header)")
    body, crc = data[:-CRC_BYTES], data[-CRC_BYTES:]
    if crc16(body) != crc:
        raise UserError("checksum mismatch: the file is truncated or corrupt")
    level, pos = body[1], 2
    quality = level & (MAX_LEVELS - 1)
    width = height = DEFAULT_SIDE
    if level & SIZE_FOLLOWS:
        width, pos = get_varint(body, pos, "width", MAX_SIDE)
        height, pos = get_varint(body, pos, "height", MAX_SIDE)
        if not width or not height or width * height > MAX_PIXELS or width == height == DEFAULT_SIDE:
            raise UserError(f"corrupt header: image size {width}x{height}")
    tag, pos = body[pos : pos + MODEL_TAG_BYTES], pos + MODEL_TAG_BYTES
    if len(tag) != MODEL_TAG_BYTES:
        raise UserError("truncated header (model tag)")
    if num_streams is None:
        return Parsed(width, height, tag, [], pos + CRC_BYTES, quality)
    sizes = []
    for i in range(num_streams - 1):
        size, pos = get_varint(body, pos, f"stream {i} size", len(body))
        sizes.append(size)
    if pos + sum(sizes) > len(body):
        raise UserError("corrupt header: stream sizes exceed the file")
    stored = []
    for size in sizes:
        stored.append(body[pos : pos + size])
        pos += size
    stored.append(body[pos:])
    streams = [restore_state_zeros(s) for s in stored]
    return Parsed(width, height, tag, streams, len(data) - sum(map(len, stored)), quality)


def check_size(height: int, width: int) -> None:
    """Refuse an image size the container cannot describe (or the decoder could not afford)."""
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise UserError(f"image size {width}x{height} is outside 1..{MAX_SIDE} per side, {MAX_PIXELS} pixels")


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    return 8 * num_bytes / (height * width)
