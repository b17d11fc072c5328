"""The codec: a mean-scale hyperprior with quality levels, its files and CLI, bit-exact decoding, error
handling, the shipped model and the RD evaluation."""

from __future__ import annotations

import binascii
import copy
import importlib.util
import io
import json
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import synth
import torch
import torch.nn.functional as F
from conftest import assert_one_line_error, run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from cifarae import checkpoint, rd
from cifarae import codec as lib
from cifarae.codec import Refinement, load_codec
from cifarae.codec import format as fmt
from cifarae.codec.hyperprior import ExactNetwork, anchor_mask
from cifarae.codec.hyperprior_codec import HyperpriorCodec
from cifarae.codec.loading import MAY_START_FRESH, init_state
from cifarae.codec.shipped import (
    DEFAULT_MODEL,
    MANIFEST,
    MAX_FILE_BYTES,
    MAX_MODEL_BYTES,
    default_model,
    export,
    load_shipped,
    models_dir,
    read_manifest,
)
from cifarae.config import Config, load_config
from cifarae.errors import UserError
from cifarae.models import AutoEncoder, Classifier

V2 = [
    "widths=[8,16,16,16]",
    "latent_size=8",
    "entropy_model=hyperprior",
    "latent_channels=8",
    "skip_channels=4",
    "hyper_channels=16",
    "context=checkerboard",
    "rd_lambdas=[0.004,0.03,0.2]",
    "precision=fp32",
    "epochs=1",
    "batch_size=32",
    "val_size=100",
]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str):
    """A script (src/codec.py) as a module named ``name``, loaded by path: src/ is on pytest's pythonpath,
    where a bare ``import codec`` would be the entry script, not the library cifarae.codec."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codec_cli = load_script(REPO / "src" / "codec.py", "codec_cli")


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory, synth_cache):
    """A tiny codec with three quality levels, trained for one epoch through the real entry point."""
    run = tmp_path_factory.mktemp("v2") / "run"
    run_script("train_ae.py", "--data", synth_cache, "--out", run, *V2, "wandb=false")
    return run


@pytest.fixture(scope="module")
def shipped(v2_run, tmp_path_factory):
    """The run exported as a shipped model, in a models/ folder of its own."""
    models = tmp_path_factory.mktemp("models")
    export(v2_run, models / "codec-v2", recipe="tests")
    return models


@pytest.fixture
def use_models(shipped, monkeypatch):
    monkeypatch.setenv("CIFARAE_MODELS", str(shipped))
    return shipped


@pytest.fixture(scope="module")
def v2(shipped):
    return load_shipped(shipped / "codec-v2")


@pytest.fixture(scope="module")
def other_model(v2_run, tmp_path_factory):
    """The same architecture with one weight changed: another model id."""
    ckpt = checkpoint.load(v2_run)
    state = dict(checkpoint.inference_state(ckpt))
    key = "decoder.layers.0.0.weight"
    state[key] = state[key] + 1e-3
    ckpt["model"], ckpt["ema_model"] = state, None
    path = tmp_path_factory.mktemp("other") / "other.pt"
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, path)
    return path


@pytest.fixture(scope="module")
def images():
    x, _ = synth.make_images(1, seed=3)  # 10 images, one per class
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def random_codec(cfg: Config) -> HyperpriorCodec:
    """An untrained codec of ``cfg`` with its coder tables built: the same code paths as a trained one."""
    torch.manual_seed(0)
    model = AutoEncoder(cfg).eval()
    model.latent_codec.export()
    return HyperpriorCodec(model, cfg, source="random-init")


def save_png(path, image: torch.Tensor):
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return path


def load_png(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        codec_cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]


def reseal(body: bytes) -> bytes:
    """A body of the current format with its checksum."""
    return body + fmt.crc16(body)


def reseal_crc32(body: bytes) -> bytes:
    """A body of formats 1-3 with their checksum, CRC-32."""
    return body + struct.pack(">I", zlib.crc32(body))


# ---------------------------------------------------------------------------- round trips
def test_every_level_round_trips_to_the_models_reconstruction_and_rate_rises_with_level(v2, images):
    sizes = []
    for level in range(v2.levels):
        files = v2.compress(images, level)
        decoded = torch.stack([v2.decompress(f) for f in files])
        assert torch.equal(decoded, v2.reconstruct(images, level))
        assert all(fmt.parse(f, v2.num_streams(32, 32)).quality == level for f in files)
        sizes.append(sum(map(len, files)))
    assert sizes[0] < sizes[-1], sizes


def test_batch_size_and_threads_do_not_change_a_single_bit(v2, images):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [v2.compress(images[i : i + 1], 1)[0] for i in range(len(images))]
        decoded_one = [v2.decompress(f) for f in one]
        torch.set_num_threads(2)
        batched = v2.compress(images, 1, batch_size=len(images))
        decoded_two = [v2.decompress(f) for f in batched]
    finally:
        torch.set_num_threads(threads)
    assert one == batched
    assert all(torch.equal(a, b) for a, b in zip(decoded_one, decoded_two))


def test_a_32x32_image_is_one_stream(v2, images):
    assert v2.num_streams(32, 32) == 1 and len(v2.parse(v2.compress(images[:1], 0)[0]).streams) == 1


def test_many_stream_slices_round_trip_and_truncations_are_refused(v2, images, monkeypatch):
    """Slices cut inside the hyper-latent and the latent, one of them holding the end of the first and
    the start of the second: each a stream of its own, all decoded."""
    monkeypatch.setattr(fmt, "SLICE_SYMBOLS", 100)
    num_hyper, _ = v2.num_symbols(32, 32)
    assert num_hyper % 100, "no slice would hold both the hyper-latent's and the latent's symbols"
    x = images[:2]
    files = v2.compress(x, 1)
    assert v2.num_streams(32, 32) > 10 and len(v2.parse(files[0]).streams) == v2.num_streams(32, 32)
    assert torch.equal(torch.stack([v2.decompress(f) for f in files]), v2.reconstruct(x, 1))
    for n in range(0, len(files[0]), 7):
        with pytest.raises(UserError):
            v2.decompress(files[0][:n])


def test_cli_codes_many_images_into_a_folder_by_their_stems(tmp_path, capsys, v2, v2_run, images):
    pngs = [save_png(tmp_path / f"img{i}.png", img) for i, img in enumerate(images[:3])]
    code, out, err = cli(capsys, "compress", *pngs, "-o", tmp_path / "cae", "--model", v2_run, "--quality", "2")
    assert code == 0, err
    files = sorted((tmp_path / "cae").glob("*.cae"))
    assert [f.stem for f in files] == [p.stem for p in pngs] and "bpp" in out
    code, _, err = cli(capsys, "decompress", *files, "-o", tmp_path / "out", "--model", v2_run)
    assert code == 0, err
    decoded = torch.stack([load_png(tmp_path / "out" / f"{p.stem}.png") for p in pngs])
    assert torch.equal(decoded, load_codec(v2_run).reconstruct(images[:3], 2))
    (tmp_path / "b").mkdir()
    twin = save_png(tmp_path / "b" / "img0.png", images[5])
    code, _, err = cli(capsys, "compress", pngs[0], twin, "-o", tmp_path / "clash", "--model", v2_run)
    assert_user_error(code, err, "would both be written to", "rename one")


def test_exact_hyper_synthesis_is_batch_invariant_integer_and_close_to_the_float_network(v2):
    lc = v2.lc
    z = torch.randint(-6, 7, (5, lc.entropy_bottleneck.channels, 3, 4), generator=torch.Generator().manual_seed(0))
    exact = v2.hyper(z)[:, :, :6, :8]
    assert torch.equal(exact, torch.floor(exact))  # integers at 2**FRACTION_BITS
    assert torch.equal(exact[2:3], v2.hyper(z[2:3])[:, :, :6, :8])
    with torch.no_grad():
        floating = lc.h_s(z.double())[:, :, :6, :8] * 2**12
    assert (exact - floating).abs().max() < 2**12 * 0.01  # within 0.01 of the float network


def test_exact_context_reads_only_the_anchors_and_matches_the_float_context(v2):
    """The checkerboard context in fixed point: integers, the same for an image alone or in a batch, the
    hyperprior's parameters kept at the anchors, the non-anchors' symbols never read, and means within 0.05 of
    the float context's (the training network's)."""
    lc, c = v2.lc, v2.model.latent_shape[0]
    gen = torch.Generator().manual_seed(1)
    z = torch.randint(-4, 5, (3, lc.entropy_bottleneck.channels, 4, 4), generator=gen).double()
    y = torch.randint(-8, 9, (3, c, 8, 8), generator=gen).double()
    anchors = anchor_mask(8, 8).bool().expand_as(y)
    params = v2.hyper_params(z, 8, 8)
    means, indexes = v2.conditionals(params, y)
    hyper_means, hyper_indexes = v2.conditionals(params)
    assert torch.equal(means[anchors], hyper_means[anchors]) and torch.equal(indexes[anchors], hyper_indexes[anchors])
    assert not torch.equal(means, hyper_means)  # the trained context moves the non-anchors
    assert torch.equal(means * 2**12, torch.floor(means * 2**12))
    assert torch.equal(means[1:2], v2.conditionals(v2.hyper_params(z[1:2], 8, 8), y[1:2])[0])
    scrambled = torch.where(anchors, y, torch.randint(-50, 50, y.shape, generator=gen).double())
    scrambled_means, scrambled_indexes = v2.conditionals(params, scrambled)
    assert torch.equal(scrambled_means, means) and torch.equal(scrambled_indexes, indexes)
    with torch.no_grad():
        hyper = v2.hyper(z)[:, :, :8, :8] / 2**12
        floating = lc.context((y + hyper[:, :c]) * anchors, hyper)
    assert (means - floating[:, :c]).abs().max() < 0.05


def test_only_convolutions_relu_and_pixel_shuffle_have_an_exact_form():
    with pytest.raises(TypeError, match="GELU"):
        ExactNetwork(torch.nn.Sequential(torch.nn.GELU()))


def test_exact_network_drops_dead_taps_and_computes_only_the_positions_asked_for():
    """A masked convolution in fixed point equals the integer convolution it stands for, with its dead taps left out;
    ``at=`` gives the same integers at its positions and zero elsewhere."""
    from compressai.layers import CheckerboardMaskedConv2d

    torch.manual_seed(0)
    masked = CheckerboardMaskedConv2d(6, 5, 5, padding=2)
    layers = [masked, nn.ReLU(), nn.Conv2d(5, 4, 1)]
    with torch.no_grad():
        layers[2].weight[:, 1] = 0  # a dead input channel: a pointwise layer's dead tap
    net = ExactNetwork(layers, in_bits=12)
    assert [len(args[1]) for kind, *args in net.layers if kind == "conv"] == [6 * 12, 4]  # 12 of 25 taps live; 4 of 5
    x = torch.randint(-(2**14), 2**14, (2, 6, 7, 9)).double()
    w = torch.round(masked.weight.detach().double() * masked.mask * 2**12)
    b = torch.round(masked.bias.detach().double() * 2**24).view(1, -1, 1, 1)
    reference = torch.floor((F.conv2d(x, w, padding=2) + b) / 2**12)  # integers below 2**53: exact
    assert torch.equal(ExactNetwork([masked], in_bits=12)(x), reference)
    full = net(x)
    at = torch.rand(7, 9) < 0.4
    part = net(x, at=at)
    assert torch.equal(part[..., at], full[..., at]) and not part[..., ~at].any()
    assert not net(x, at=torch.zeros(7, 9, dtype=torch.bool)).any()  # no positions: nothing to compute
    with pytest.raises(ValueError, match="pointwise"):
        ExactNetwork([nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 3, padding=1)])(x[:, :2], at=at)


def test_the_coder_writes_the_same_bits_from_the_cdfs_the_symbols_use(v2):
    """Each call passes the rANS coder only the CDFs its indexes use (renumbered): the stream is the one the whole
    table gives, and it decodes back."""
    from compressai.ans import BufferedRansEncoder, RansDecoder

    from cifarae.codec.hyperprior_codec import _used_tables

    gen = torch.Generator().manual_seed(3)
    indexes = torch.randint(10, 30, (500,), generator=gen).tolist()
    symbols = torch.randint(-20, 21, (500,), generator=gen).tolist()  # some beyond the CDFs: the bypass code
    used = _used_tables(indexes, v2.y_tables)
    streams = []
    for call in ((indexes, *v2.y_tables), used):
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, *call)
        streams.append(encoder.flush())
    assert streams[0] == streams[1]
    decoder = RansDecoder()
    decoder.set_stream(streams[1] + bytes(64))
    assert decoder.decode_stream(*used) == symbols
    assert len(used[1]) == len(set(indexes)) < len(v2.y_tables[0])


def test_a_stream_is_decoded_from_its_bytes_then_only_zeros_whatever_came_before():
    """The decoder's read-ahead buffer is reused: after a longer stream, a shorter one is followed by zeros, at least
    as many as a forged stream could read past it."""
    from cifarae.codec.hyperprior_codec import _padded

    _padded(bytes(range(1, 200)), 10)
    _padded.clear(bytes(range(1, 200)))
    buffer = _padded(b"\x07\x08", 3)
    assert buffer[:2] == b"\x07\x08" and not any(buffer[2:]) and len(buffer) >= 2 + 1092 * 3 + 120 * 2 + 64
    _padded.clear(b"\x07\x08")
    assert not any(_padded.buffer)


@pytest.mark.parametrize("height,width", [(1, 1), (3, 5), (31, 33), (17, 64), (45, 7), (37, 51)])
def test_odd_sizes_round_trip(v2, height, width):
    gen = torch.Generator().manual_seed(height * 100 + width)
    x = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8, generator=gen)
    decoded = torch.stack([v2.decompress(f) for f in v2.compress(x, 2)])
    assert decoded.shape == x.shape
    assert torch.equal(decoded, v2.reconstruct(x, 2))


def test_cli_odd_sized_jpeg_and_single_output_file(tmp_path, capsys, v2, v2_run, images):
    src = tmp_path / "odd.jpg"
    Image.fromarray(np.tile(images[0].permute(1, 2, 0).numpy(), (2, 2, 1))[:45, :37]).save(src, quality=90)
    code, _, err = cli(capsys, "compress", src, "-o", tmp_path / "odd.cae", "--model", v2_run, "--quality", "0")
    assert code == 0, err
    code, _, err = cli(capsys, "decompress", tmp_path / "odd.cae", "-o", tmp_path / "odd.png", "--model", v2_run)
    assert code == 0, err
    out = load_png(tmp_path / "odd.png")
    assert out.shape == (3, 45, 37)
    from_run = load_codec(v2_run)
    assert torch.equal(out, from_run.reconstruct(lib.read_image(src).unsqueeze(0), 0)[0])


def test_cli_works_without_model_and_finds_the_model_by_its_id(tmp_path, capsys, use_models, images):
    png = save_png(tmp_path / "a.png", images[0])
    code, out, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae", "--quality", "2")
    assert code == 0, err
    assert (tmp_path / "a.cae").read_bytes()[0] == fmt.MAGIC | fmt.VERSION == 0xC5
    code, out, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a_out.png")
    assert code == 0, err
    v2 = load_shipped(use_models / "codec-v2")
    assert torch.equal(load_png(tmp_path / "a_out.png"), v2.reconstruct(images[:1], 2)[0])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "b.cae", "--quality", "9")
    assert_user_error(code, err, "quality 9")


def test_unknown_model_id_and_tampered_weights_are_one_line_errors(
    tmp_path, capsys, use_models, v2, images, monkeypatch
):
    parsed = fmt.parse(v2.compress(images[:1], 0)[0], v2.num_streams(32, 32))
    other_id = bytes([v2.model_id[0] ^ 0xFF]) + bytes(5)
    other = fmt.pack(32, 32, other_id, parsed.streams, 0)  # a well-formed file from another model
    (tmp_path / "other.cae").write_bytes(other)
    code, _, err = cli(capsys, "decompress", tmp_path / "other.cae", "-o", tmp_path / "o")
    assert_user_error(code, err, "not among the shipped models", other_id[:2].hex(), "--model")
    monkeypatch.setitem(lib.shipped.RETIRED_MODELS, other_id.hex(), "abc1234")
    code, _, err = cli(capsys, "decompress", tmp_path / "other.cae", "-o", tmp_path / "o")
    assert_user_error(code, err, f"model {other_id.hex()}", "shipped before the current one", "commit abc1234")

    folder = tmp_path / "tampered"
    folder.mkdir()
    for f in (use_models / "codec-v2").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    blob = bytearray((folder / "decoder.pt").read_bytes())
    blob[-100] ^= 1
    (folder / "decoder.pt").write_bytes(bytes(blob))
    png = save_png(tmp_path / "a.png", images[0])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "t.cae", "--model", folder)
    assert_user_error(code, err, "does not match its checksum")


def test_a_run_and_its_export_are_the_same_codec_up_to_float16_weights(v2_run, v2, images):
    from_run = load_codec(v2_run)
    assert isinstance(from_run, HyperpriorCodec)
    a, b = from_run.reconstruct(images, 1).double(), v2.reconstruct(images, 1).double()
    assert rd.psnr(((a - b) / 255).pow(2).mean().item()) > 30


def test_shipped_manifest_records_checksums_model_id_and_small_files(shipped, v2):
    manifest = json.loads((shipped / "codec-v2" / MANIFEST).read_text())
    assert manifest["model_id"] == v2.model_id.hex()
    assert set(manifest["files"]) == {"encoder.pt", "decoder.pt", "entropy.pt", "context.pt"}
    context = torch.load(shipped / "codec-v2" / "context.pt", weights_only=True)
    assert context and all(k.startswith("latent_codec.context.") for k in context)
    # the masked convolution's 0/1 mask is not shipped: loading takes it from the layer's constructor
    assert not any(k.endswith(".mask") for k in context)
    mask = v2.lc.context.context.mask
    assert mask.shape == v2.lc.context.context.weight.shape and 0 < mask.mean() < 0.5
    assert torch.equal(mask, type(v2.lc.context.context)(2, 2, 5, padding=2).mask[:1, :1].expand_as(mask).to(mask))
    state = torch.load(shipped / "codec-v2" / "decoder.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


# ---------------------------------------------------------------------------- bytes
def test_bpp_counts_the_real_bytes_of_the_files(tmp_path, v2, images):
    curve, stats = rd.hyperprior_curve(v2, images, tmp_path / "files")
    for level in range(v2.levels):
        paths = sorted((tmp_path / "files" / f"q{level}").glob("*.cae"))
        sizes = [p.stat().st_size for p in paths]
        assert len(sizes) == len(images) and list(curve.file_bytes[level]) == sizes
        files = [p.read_bytes() for p in paths]
        headers = [v2.parse(f).header_bytes for f in files]
        assert list(curve.payload_bytes[level]) == [s - h for s, h in zip(sizes, headers)]
        assert curve.points()[level]["bpp"] == pytest.approx(8 * np.mean(sizes) / (32 * 32))
        decoded = torch.stack([v2.decompress(f) for f in files]).double()
        mse = (decoded - images.double()).div(255).pow(2).flatten(1).mean(1)
        assert stats[level]["mse"] == pytest.approx(mse.mean().item())
        assert stats[level]["encode_img_per_s"] > 0 and stats[level]["decode_peak_rss_mb"] > 0


def test_header_layout(v2, images):
    data = v2.compress(images[:1], 2)[0]
    assert data[0] == 0xC5 and lib.VERSION == 5  # magic nibble, version nibble
    assert data[1] == 2  # the quality level; the high bit clear: a 32 x 32 image, no size written
    assert data[2:4] == v2.model_id[:2] == lib.model_tag(v2.model_id)
    parsed = v2.parse(data)
    assert fmt.restore_state_zeros(data[4:-2]) == parsed.streams[0]  # one stream, so no stream sizes
    assert parsed.header_bytes == 4 + 2  # 0.047 bpp on a 32 x 32 image
    assert int.from_bytes(data[-2:], "big") == binascii.crc_hqx(data[:-2], 0xFFFF)


def test_another_size_is_written_after_the_level_byte(v2, images):
    x = torch.randint(0, 256, (1, 3, 24, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = v2.compress(x, 2)[0]
    assert data[1] == 0x80 | 2 and data[2:4] == bytes([40, 24])  # the high bit, then varint width, height
    parsed = v2.parse(data)
    assert (parsed.width, parsed.height, parsed.quality) == (40, 24, 2)
    assert torch.equal(v2.decompress(data), v2.reconstruct(x, 2)[0])
    # 32 x 32 is never written out: each image has one file
    spelled = v2.compress(images[:1], 2)[0]
    spelled = reseal(spelled[:1] + bytes([0x80 | 2, 32, 32]) + spelled[2:-2])
    with pytest.raises(UserError, match="corrupt header: image size 32x32"):
        v2.decompress(spelled)


def test_the_header_parses_alone_whatever_the_streams_hold():
    """Until the size is known, so is not the number of streams: the header is read without them (two streams whose
    bytes, read as one, would look like a stream that keeps a zero state byte)."""
    first, second = bytes([1, 1, 1, 1, 1, 1, 0, 1]), bytes([1, 1, 1, 1, 1, 1, 1, 0])  # the second's top byte is zero
    data = fmt.pack(64, 40, bytes(6), [first, second], 1)
    header = fmt.parse(data)
    assert (header.width, header.height, header.quality, header.streams) == (64, 40, 1, [])
    assert fmt.parse(data, 2).streams == [first, second]
    # magic, level, two size varints, tag, one stream size, the streams less the zero byte left out, CRC
    assert len(data) == 1 + 1 + 2 + 2 + 1 + len(first) + len(second) - 1 + 2


def test_streams_leave_out_their_rans_states_zero_top_bytes_and_say_how_many_by_their_length(v2, images):
    """The coder's stream begins with its 64-bit state (low word first); a file stores it without the state's
    zero top bytes (up to three), and (-length) mod 4 says how many to put back."""
    left_out = []
    for level in range(v2.levels):
        for data in v2.compress(images, level):
            coded, stored = v2.parse(data).streams[0], data[4:-2]
            zeros = len(coded) - len(stored)
            assert len(coded) % 4 == 0 and zeros == -len(stored) % 4
            assert coded == stored[: 8 - zeros] + bytes(zeros) + stored[8 - zeros :]
            assert zeros == 3 or coded[7 - zeros] != 0  # every zero top byte left out
            left_out.append(zeros)
    assert set(left_out) == {0, 1, 2, 3}, left_out  # the state's top bytes are zero often (its density is ~1/x)
    # a file that keeps a zero byte it could have left out is one the encoder never writes: refused
    data = next(d for d in v2.compress(images, 1) if 0 < -len(d[4:-2]) % 4)
    zeros = -len(data[4:-2]) % 4
    kept = reseal(data[: 4 + 8 - zeros] + b"\x00" + data[4 + 8 - zeros : -2])
    with pytest.raises(UserError, match="keeps a zero state byte"):
        v2.decompress(kept)


# ---------------------------------------------------------------------------- bad files
def test_truncated_corrupt_foreign_and_versioned_files_are_refused(v2, images):
    data = v2.compress(images[:1], 1)[0]
    for n in range(len(data)):
        with pytest.raises(UserError, match="truncated|corrupt|magic|checksum"):
            v2.decompress(data[:n])
    for pos in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= bit
            with pytest.raises(UserError):
                v2.decompress(bytes(bad))
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    for foreign in (b"", b"C", b"CA", b"CB\x03", png.getvalue(), b"\x00" * 64, b"CAE" + b"\x00" * 40, b"\xc4" * 40):
        with pytest.raises(UserError):
            v2.decompress(foreign)
    for foreign in (png.getvalue(), bytes([0xC3]) + data[1:]):  # versions 1-3 never had the one-byte magic
        with pytest.raises(UserError, match="bad magic"):
            v2.decompress(foreign)
    newer = reseal(bytes([lib.MAGIC | (lib.VERSION + 1)]) + data[1:-2])
    with pytest.raises(UserError, match=f"unsupported format version {lib.VERSION + 1}"):
        v2.decompress(newer)


def v1_file(width: int = 32, height: int = 32) -> bytes:
    """A file of the removed v1 format (the factorized-prior codec): magic, version 1, width, height,
    model id, one rANS stream, CRC-32; no quality byte."""
    return reseal_crc32(b"CAE\x01" + lib.put_varint(width) + lib.put_varint(height) + bytes(6) + bytes(40))


def v2_file(model_id: bytes) -> bytes:
    """A file of format version 2 (this codec, one stream per entropy model): magic, version 2, width,
    height, model id, quality, the sizes of the first two of three streams, the streams, CRC-32."""
    head = b"CAE\x02" + bytes([32, 32]) + model_id + bytes([1]) + bytes([20, 30])
    return reseal_crc32(head + bytes(20 + 30 + 40))


def v3_file(model_id: bytes) -> bytes:
    """A file of format version 3 (this codec with a 17-byte header): magic, version 3, width, height, the
    6-byte model id, quality, one stream, CRC-32."""
    return reseal_crc32(b"CAE\x03" + bytes([32, 32]) + model_id + bytes([1]) + bytes(40))


def v4_file(model_id: bytes) -> bytes:
    """A file of format version 4 (this codec with an 8-byte header): 0xC4, width, height, the 2-byte model tag,
    quality, one stream with every state byte, CRC-16."""
    return reseal(bytes([0xC4, 32, 32]) + model_id[:2] + bytes([1]) + bytes(40))


@pytest.mark.parametrize("version, commit", [(1, "cdeb663"), (2, "925282e"), (3, "cacd75c"), (4, "b5ed400")])
def test_an_older_format_is_a_one_line_error(tmp_path, capsys, use_models, v2, version, commit):
    old = v1_file() if version == 1 else {2: v2_file, 3: v3_file, 4: v4_file}[version](v2.model_id)
    with pytest.raises(UserError, match=f"made by an older format: version {version}"):
        v2.decompress(old)
    (tmp_path / "old.cae").write_bytes(old)
    for model in ([], ["--model", use_models / "codec-v2"]):
        code, _, err = cli(capsys, "decompress", tmp_path / "old.cae", "-o", tmp_path / "o", *model)
        assert_user_error(code, err, "old.cae", "made by an older format", f"version {version}", commit)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_a_v1_run_or_config_is_a_one_line_error_and_old_configs_still_load(tmp_path, v2_run):
    with pytest.raises(UserError, match="factorized.*v1 codec.*hyperprior"):
        load_config(None, ["entropy_model=factorized"])
    ckpt = checkpoint.load(v2_run)
    ckpt["config"] = {**ckpt["config"], "entropy_model": "factorized"}
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, tmp_path / "v1.pt")
    with pytest.raises(UserError, match="v1 codec"):
        load_codec(tmp_path / "v1.pt")
    # ste_decoder, a v1 setting, is in the configs that earlier versions saved (the shipped model's too)
    ckpt["config"] = {**ckpt["config"], "entropy_model": "hyperprior", "ste_decoder": True}
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, tmp_path / "old.pt")
    assert load_codec(tmp_path / "old.pt").model_id == load_codec(v2_run).model_id
    with pytest.raises(UserError, match="unknown config key 'ste_decoder'"):
        load_config(None, ["ste_decoder=true"])  # but a new config may not set it


def test_wrong_model_is_refused_by_identity(tmp_path, capsys, v2, other_model, images):
    other = load_codec(other_model)
    assert other.model_id != v2.model_id
    with pytest.raises(UserError, match="written by a model whose id starts with"):
        other.decompress(v2.compress(images[:1], 1)[0])
    path = tmp_path / "a.cae"
    path.write_bytes(v2.compress(images[:1], 1)[0])
    code, _, err = cli(capsys, "decompress", path, "-o", tmp_path / "out", "--model", other_model)
    assert_user_error(code, err, "a.cae", "written by a model", "--model")
    assert not list((tmp_path / "out").glob("*.png"))


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, v2_run, images):
    bad = tmp_path / "bad.cae"
    bad.write_bytes(bytes([fmt.MAGIC | fmt.VERSION]) + b"\x07" * 30)
    code, _, err = cli(capsys, "decompress", bad, "-o", tmp_path / "out", "--model", v2_run)
    assert_user_error(code, err, "bad.cae", "checksum")
    assert not list((tmp_path / "out").glob("*"))
    code, _, err = cli(capsys, "compress", tmp_path / "missing.png", "-o", tmp_path / "c", "--model", v2_run)
    assert_user_error(code, err, "missing.png")
    notimg = tmp_path / "notimage.png"
    notimg.write_bytes(b"hello")
    code, _, err = cli(capsys, "compress", notimg, "-o", tmp_path / "c", "--model", v2_run)
    assert_user_error(code, err, "cannot read image")
    code, _, err = cli(capsys, "compress", notimg, "-o", tmp_path / "c", "--model", tmp_path / "nothing")
    assert_user_error(code, err, "does not exist")


def test_a_codec_fine_tunes_from_another_with_more_levels_and_a_context_added(tmp_path):
    """init_from a codec without a context and with fewer levels: its levels keep their gains, a new level
    starts from its nearest level's gains moved by sqrt(lambda ratio), the context starts as the identity, so
    the new model codes the old levels exactly as the old one did; the old coder tables are not carried."""
    cfg = load_config(None, [a for a in V2 if not a.startswith("context")])
    torch.manual_seed(0)
    old = AutoEncoder(cfg).eval()
    old.latent_codec.export()
    path = tmp_path / "old.pt"
    checkpoint.save_atomic(checkpoint.new(cfg, None, old.state_dict()), path)
    new_cfg = load_config(None, [*V2, "rd_lambdas=[0.001,0.004,0.03,0.2]", f"init_from={path}"])
    state, _ = init_state(path, new_cfg)
    assert not any(k.endswith("_quantized_cdf") for k in state)
    new = AutoEncoder(new_cfg).eval()
    checkpoint.load_weights(new, state, str(path), may_lack="latent_codec.")
    gains = new.latent_codec.log_gains.detach()
    assert torch.equal(gains[1:], old.latent_codec.log_gains.detach())
    assert torch.allclose(gains[0], gains[1] + 0.5 * math.log(0.001 / 0.004))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for old_level in range(3):
            q = torch.full((2,), old_level)
            (a, lik_a), (b, lik_b) = old(x, q), new(x, q + 1)
            assert torch.equal(a, b) and torch.equal(lik_a, lik_b)


def assert_starts_as_and_learns(model: AutoEncoder, reference: AutoEncoder, zero_convs: list[nn.Conv2d]) -> None:
    """``model`` (an analysis change, built after ``reference`` from the same seed) holds every weight of ``reference``
    unchanged and encodes as it does; one training step gives its zero-initialised convolutions a gradient."""
    # from one seed, with the change or not, every other weight starts the same: an A/B differs by the change alone
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in reference.state_dict().items())
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode(x), reference.eval().encode(x))
    model.train()
    reconstruction, likelihoods = model(x, torch.tensor([0, 1, 2, 0]))
    ((reconstruction - x).pow(2).mean() - likelihoods.log2().mean() * 1e-3).backward()
    assert all(conv.weight.grad.abs().sum() > 0 for conv in zero_convs)  # they learn; the new path opens from there


def test_analysis_blocks_start_as_the_identity_on_a_trained_codec_learn_and_ship_in_their_own_file(tmp_path):
    """init_from a codec without analysis blocks: the blocks start as the identity (the model encodes as the old
    one did), the backbone stays the classifier's, a training step moves them, and an export ships them in
    analysis.pt and codes with them."""
    cfg = load_config(None, V2)
    torch.manual_seed(0)
    old = AutoEncoder(cfg).eval()
    path = tmp_path / "old.pt"
    checkpoint.save_atomic(checkpoint.new(cfg, None, old.state_dict()), path)
    new_cfg = load_config(None, [*V2, "analysis_blocks=1", f"init_from={path}"])
    torch.manual_seed(0)
    new = AutoEncoder(new_cfg)
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())  # built last: same start
    checkpoint.load_weights(new, init_state(path, new_cfg)[0], str(path), may_lack=MAY_START_FRESH)
    assert len(new.latent_blocks) == len(new.skip_blocks) == 1
    clf = Classifier(Config(task="clf", widths=cfg.widths))
    assert new.backbone.state_dict().keys() == clf.backbone.state_dict().keys()
    assert_starts_as_and_learns(new, old, [new.latent_blocks[0].branch[-1], new.skip_blocks[0].branch[-1]])

    with torch.no_grad():
        new.latent_blocks[0].branch[-1].weight.normal_(0, 0.1)  # as if trained: the blocks now change the latent
    new.eval()
    run = tmp_path / "run.pt"
    checkpoint.save_atomic(checkpoint.new(new_cfg, None, new.state_dict()), run)
    export(run, tmp_path / "model", recipe="tests")
    blocks_file = torch.load(tmp_path / "model" / "analysis.pt", weights_only=True)
    assert {k.split(".")[0] for k in blocks_file} == {"latent_blocks", "skip_blocks"}
    codec = load_shipped(tmp_path / "model")
    shipped_conv, trained_conv = codec.model.latent_blocks[0].branch[-1], new.latent_blocks[0].branch[-1]
    assert torch.equal(shipped_conv.weight.float(), trained_conv.weight.half().float())  # float16, as shipped
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(codec.decompress(codec.compress(image, 1)[0]), codec.reconstruct(image, 1)[0])
    with pytest.raises(UserError, match="analysis_blocks"):
        load_config(overrides=["analysis_blocks=-1"])
    # the blocks' BatchNorms take the config's settings, as the backbone's do
    tuned = AutoEncoder(load_config(None, [*V2, "analysis_blocks=1", "bn_momentum=0.5", "bn_eps=0.001"]))
    norms = [m for m in [*tuned.latent_blocks.modules(), *tuned.skip_blocks.modules()] if isinstance(m, nn.BatchNorm2d)]
    assert norms and all((m.momentum, m.eps) == (0.5, 0.001) for m in norms)


def test_train_only_decoder_moves_the_decoder_alone_and_keeps_every_files_bits(
    v2_run, v2, synth_cache, images, tmp_path
):
    """train_only=decoder, a trained codec's decoder trained on alone: only decoder weights move, every other
    tensor (BatchNorm statistics included) stays, so the new model writes the old one's streams at every level,
    under its own model tag; it needs a trained codec (init_from)."""
    run = tmp_path / "decoder"
    overrides = ["wandb=false", "train_only=decoder", f"init_from={v2_run}", "lr=0.01"]
    run_script("train_ae.py", "--data", synth_cache, "--out", run, *V2, *overrides)
    before, after = checkpoint.load(v2_run)["model"], checkpoint.load(run / "last.pt")["model"]
    assert before.keys() == after.keys()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("decoder.") and not k.endswith(("running_mean", "running_var")) for k in moved)
    assert any(k.endswith(".weight") and after[k].ndim == 4 for k in moved)  # its convolutions train
    export(run, tmp_path / "model", recipe="tests")
    trained = load_shipped(tmp_path / "model")
    assert trained.model_id != v2.model_id
    for q in range(3):
        old, new = v2.compress(images, q), trained.compress(images, q)
        assert [v2.parse(f).streams for f in old] == [trained.parse(f).streams for f in new]
        assert not torch.equal(trained.decompress(new[0]), v2.decompress(old[0]))  # the same bits, decoded anew
    model = AutoEncoder(load_config(None, [*V2, "train_only=decoder", f"init_from={v2_run}"])).train()
    assert not any(m.training for m in model.modules())  # BatchNorm statistics stay as joint training left them
    with pytest.raises(UserError, match="needs entropy_model=hyperprior and init_from"):
        load_config(None, [*V2, "train_only=decoder"])
    with pytest.raises(UserError, match="must be decoder"):
        load_config(None, [*V2, "train_only=encoder", f"init_from={v2_run}"])


def test_analysis_width_sets_the_blocks_inner_width_and_ships_with_the_model(tmp_path):
    """analysis_width: the blocks' inner width is that fraction of their channels (a quarter by default); wider
    blocks still start as the identity from the same seed, and a shipped model is rebuilt at its width."""
    torch.manual_seed(0)
    narrow = AutoEncoder(load_config(None, [*V2, "analysis_blocks=1"])).eval()
    cfg = load_config(None, [*V2, "analysis_blocks=1", "analysis_width=1"])
    torch.manual_seed(0)
    wide = AutoEncoder(cfg).eval()
    inner = [
        (b[0].branch[0].out_channels, b[0].branch[-1].out_channels) for b in (wide.latent_blocks, wide.skip_blocks)
    ]
    assert inner == [(16, 16), (16, 16)]  # V2's widths[3] and widths[1] are 16: the branch as wide as its input
    assert [b[0].branch[0].out_channels for b in (narrow.latent_blocks, narrow.skip_blocks)] == [4, 4]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(wide.encode(x), narrow.encode(x))  # both blocks start as the identity
        wide.latent_blocks[0].branch[-1].weight.normal_(0, 0.1)  # as if trained
    run = tmp_path / "run.pt"
    checkpoint.save_atomic(checkpoint.new(cfg, None, wide.state_dict()), run)
    export(run, tmp_path / "model", recipe="tests")
    codec = load_shipped(tmp_path / "model")
    assert codec.model.latent_blocks[0].branch[1].num_features == 16
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(codec.decompress(codec.compress(image, 1)[0]), codec.reconstruct(image, 1)[0])
    for bad in ("0", "-0.5", "8"):
        with pytest.raises(UserError, match="analysis_width"):
            load_config(overrides=[f"analysis_width={bad}"])


def test_a_skip_from_the_stem_starts_as_the_model_without_it_learns_and_ships_in_the_analysis_file(tmp_path):
    """skip_from_stem: from one seed every other initial weight is the model's without it, and it starts at zero (the
    same latents); a training step moves it; the latent then depends on the stem's full-resolution features; an
    export ships it in analysis.pt, and the files decode to what the model reconstructs."""
    torch.manual_seed(0)
    plain = AutoEncoder(load_config(None, V2)).eval()
    cfg = load_config(None, [*V2, "skip_from_stem=true"])
    torch.manual_seed(0)
    model = AutoEncoder(cfg)
    assert set(model.state_dict()) - set(plain.state_dict()) == {"stem_to_skip.weight"}
    assert_starts_as_and_learns(model, plain, [model.stem_to_skip])

    model.eval()
    without = copy.deepcopy(model)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        model.stem_to_skip.weight.normal_(0, 0.1)  # as if trained
        moved = model.encode(x) - without.encode(x)
    c = cfg.latent_channels
    assert moved[:, :c].abs().max() == 0 and moved[:, c:].abs().max() > 0  # the skip latent alone reads the stem
    run = tmp_path / "run.pt"
    checkpoint.save_atomic(checkpoint.new(cfg, None, model.state_dict()), run)
    export(run, tmp_path / "model", recipe="tests")
    assert set(torch.load(tmp_path / "model" / "analysis.pt", weights_only=True)) == {"stem_to_skip.weight"}
    codec = load_shipped(tmp_path / "model")
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(codec.decompress(codec.compress(image, 1)[0]), codec.reconstruct(image, 1)[0])
    with pytest.raises(UserError, match="skip_from_stem"):
        load_config(overrides=["skip_from_stem=true"])  # no skip latent to feed


def subposition_codec(tmp_path) -> tuple[HyperpriorCodec, AutoEncoder]:
    """A V2 codec with context=subpositions, its contexts' last layers drawn at random (as if trained: at zero
    they would correct nothing), exported and loaded as a shipped model; and the float model."""
    cfg = load_config(None, [*V2, "context=subpositions"])
    torch.manual_seed(0)
    model = AutoEncoder(cfg).eval()
    with torch.no_grad():
        for contexts in model.latent_codec.subposition_contexts:
            for context in contexts:
                context.fuse[-1].weight.normal_(0, 0.1)
        model.latent_codec.context.fuse[-1].weight.normal_(0, 0.1)
    run = tmp_path / "run.pt"
    checkpoint.save_atomic(checkpoint.new(cfg, None, model.state_dict()), run)
    export(run, tmp_path / "model", recipe="tests")
    return load_shipped(tmp_path / "model"), model


def test_the_subposition_context_starts_as_the_checkerboard_model_learns_and_ships_in_the_context_file(tmp_path):
    """context=subpositions: from one seed every other weight is the checkerboard model's and it starts as no
    correction (the same parameters); a training step gives it a gradient; an export ships it in context.pt."""
    torch.manual_seed(0)
    plain = AutoEncoder(load_config(None, V2)).eval()
    torch.manual_seed(0)
    model = AutoEncoder(load_config(None, [*V2, "context=subpositions"]))
    lc = model.latent_codec
    assert all(
        k.startswith("latent_codec.subposition_contexts.") for k in set(model.state_dict()) - set(plain.state_dict())
    )
    x = torch.rand(4, 3, 32, 32)
    q = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        y_g = model.eval().encode(x) * lc.gains(q)
        z = torch.round(lc.h_a(y_g) - lc.hyper_medians())
        assert all(
            torch.equal(a, b) for a, b in zip(lc.parameters_from(z, y_g), plain.latent_codec.parameters_from(z, y_g))
        )
    assert_starts_as_and_learns(model, plain, [c.fuse[-1] for contexts in lc.subposition_contexts for c in contexts])
    codec, _ = subposition_codec(tmp_path)
    shipped_context = torch.load(tmp_path / "model" / "context.pt", weights_only=True)
    assert any(k.startswith("latent_codec.subposition_contexts.") for k in shipped_context)
    assert "sub-position context" in codec.describe()


def test_the_subposition_context_codes_bit_exactly_in_eight_steps_each_from_the_steps_before(tmp_path):
    """Files decode to what the model reconstructs, at every level and odd sizes (one with no non-anchors), and an
    image gives the same file alone or in a batch; each of the eight steps' (means, scale indexes) read only the
    symbols of the steps before it; and they are within 0.05 of the float network's (the training one's)."""
    codec, model = subposition_codec(tmp_path)
    gen = torch.Generator().manual_seed(4)
    for size, level in (((32, 32), 0), ((32, 32), 2), ((17, 45), 1), ((3, 2), 1)):  # 3 x 2: a 1 x 1 latent
        x = torch.randint(0, 256, (3, 3, *size), dtype=torch.uint8, generator=gen)
        files = codec.compress(x, level)
        assert files[1] == codec.compress(x[1:2], level)[0]
        assert torch.equal(torch.stack([codec.decompress(f) for f in files]), codec.reconstruct(x, level))
    c = model.latent_shape[0]
    z = torch.randint(-3, 4, (2, model.latent_codec.entropy_bottleneck.channels, 4, 4), generator=gen).double()
    y = torch.randint(-6, 7, (2, c, 8, 8), generator=gen).double()
    params = codec.hyper_params(z, 8, 8)
    means, indexes = codec.conditionals(params, y)
    steps = codec._steps(8, 8)
    assert len(steps) == 8
    decoded = torch.zeros_like(steps[0])
    for step in steps:  # anything not decoded yet, scrambled, leaves this step's parameters as they were
        scrambled = torch.where(decoded, y, torch.randint(-50, 50, y.shape, generator=gen).double())
        scrambled_means, scrambled_indexes = codec.conditionals(params, scrambled)
        assert torch.equal(scrambled_means[:, step], means[:, step])
        assert torch.equal(scrambled_indexes[:, step], indexes[:, step])
        decoded |= step
    assert not torch.equal(means, codec.conditionals(params, y.flip(0))[0])  # the steps do read the symbols
    lc = model.latent_codec
    with torch.no_grad():  # the float network on the same values: y_g = symbols + means
        float_means, _ = lc.parameters_from(z.float(), (y + means).float())
    assert (means - float_means.double()).abs().max() < 0.05


def test_the_subposition_context_needs_a_skip_latent_at_twice_the_side():
    with pytest.raises(UserError, match="context=subpositions needs skip_channels"):
        load_config(overrides=["entropy_model=hyperprior", "context=subpositions"])
    with pytest.raises(UserError, match="twice the latent's side"):
        AutoEncoder(load_config(None, [*V2, "context=subpositions", "latent_size=16"]))


def test_an_export_over_the_size_limits_is_refused_unless_a_probe_asks(v2_run, tmp_path, monkeypatch, capsys):
    """A folder over the limits keeps no manifest: it is no model, and train_codec exports again on the next run.
    --no-size-limits (a probe's model, heads.sh) writes it anyway, marked in model.json as not one to ship."""
    import codec_export

    argv = ["--run", str(v2_run), "--out", str(tmp_path / "model")]
    monkeypatch.setattr(lib.shipped, "MAX_FILE_BYTES", 1000)
    with pytest.raises(SystemExit) as stop:
        codec_export.main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code != 0 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert "allowed per file" in err and not (tmp_path / "model" / MANIFEST).exists()
    with pytest.raises(UserError, match="not a shipped codec"):
        load_shipped(tmp_path / "model")
    codec_export.main([*argv, "--no-size-limits"])  # a probe's model: written, and marked as not one to ship
    assert json.loads((tmp_path / "model" / MANIFEST).read_text())["over_size_limits"] is True
    assert load_shipped(tmp_path / "model").levels == 3
    monkeypatch.setattr(lib.shipped, "MAX_FILE_BYTES", MAX_FILE_BYTES)
    codec_export.main(argv)
    assert load_shipped(tmp_path / "model").levels == 3
    assert "over_size_limits" not in json.loads((tmp_path / "model" / MANIFEST).read_text())


def test_an_export_whose_model_tag_another_model_has_is_a_one_line_error(v2_run, v2, use_models, tmp_path, monkeypatch):
    """Files carry 2 bytes of the model id: a new model with a shipped or retired model's tag is refused."""
    out = tmp_path / "model"
    export(v2_run, out, recipe="tests")  # the shipped model itself again: its own tag is no clash
    same_tag = v2.model_id[:2].hex() + "0" * 8
    assert same_tag != v2.model_id.hex()
    monkeypatch.setitem(lib.shipped.RETIRED_MODELS, same_tag, "abc1234")
    with pytest.raises(UserError, match=f"tag {v2.model_id[:2].hex()} of model {same_tag}.*another seed"):
        export(v2_run, out, recipe="tests")
    assert not (out / MANIFEST).exists()


def test_plain_autoencoder_is_not_a_codec(tmp_path, v2_run):
    ckpt = checkpoint.load(v2_run)
    ckpt["config"] = {**ckpt["config"], "entropy_model": "none", "skip_channels": 0, "context": "none"}
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith(("latent_codec.", "to_skip."))}
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, tmp_path / "ae.pt")
    with pytest.raises(UserError, match="not a codec"):
        load_codec(tmp_path / "ae.pt")


# ---------------------------------------------------------------------------- fuzzing
@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(v2, data):
    magic = bytes([fmt.MAGIC | fmt.VERSION])
    for blob in (data, magic + data, reseal(magic + data)):
        try:
            out = v2.decompress(blob)
        except UserError:
            continue
        assert out.dtype == torch.uint8 and out.ndim == 3


@FUZZ
@given(st.data())
def test_fuzz_mutated_files(v2, images, data):
    """Flip, insert and delete bytes of a real file, maybe forge its checksum: a UserError or a valid decode."""
    original = v2.compress(images[:1], 1)[0]
    expected = v2.decompress(original)
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(blob) - 1))
        if op == "flip":
            blob[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            blob.insert(pos, data.draw(st.integers(0, 255)))
        elif len(blob) > 1:
            del blob[pos]
    resealed = data.draw(st.booleans())  # a forged checksum reaches the entropy decoder
    blob = reseal(bytes(blob[:-2])) if resealed else bytes(blob)
    try:
        out = v2.decompress(blob)
    except UserError:
        return
    if blob == original:
        assert torch.equal(out, expected)
    else:
        assert resealed and out.dtype == torch.uint8 and out.shape[0] == 3  # forged but self-consistent


@FUZZ
@given(st.integers(0, 2**28 - 1))
def test_varint_round_trip(value):
    enc = lib.put_varint(value)
    assert lib.get_varint(enc + b"\x00", 0, "v", 2**28) == (value, len(enc))


# ---------------------------------------------------------------------------- evaluation
def test_jpeg_scan_bytes_and_interpolation(images):
    coded = rd.pillow_roundtrip(images[:1], "JPEG", 30)
    data = coded.files[0]
    scan = rd.jpeg_scan_bytes(data)
    assert coded.payload_bytes[0] == scan and coded.file_bytes[0] == len(data)
    sos = data.index(b"\xff\xda")
    header_len = int.from_bytes(data[sos + 2 : sos + 4], "big")
    assert scan == len(data) - (sos + 2 + header_len) - 2  # up to the EOI marker
    ours = [{"bpp": 0.5, "psnr": 25}, {"bpp": 1.5, "psnr": 31}, {"bpp": 2.5, "psnr": 34}]
    assert rd.interpolate(ours, 1.0) == pytest.approx(28)
    assert rd.interpolate(ours, 3.0) is None


def boxes(data: bytes) -> dict[bytes, int]:
    """An ISO BMFF file's top-level boxes by hand: type -> total size (headers included; 32-bit sizes only)."""
    out, pos = {}, 0
    while pos < len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        out[data[pos + 4 : pos + 8]] = out.get(data[pos + 4 : pos + 8], 0) + size
        pos += size
    assert pos == len(data)
    return out


def test_pillow_roundtrip_counts_whole_files_and_payloads(images):
    for kind, quality in (("JPEG", 30), ("WEBP", 50), ("AVIF", 50)):
        coded = rd.pillow_roundtrip(images, kind, quality)
        assert coded.decoded.shape == images.shape and coded.decoded.dtype == torch.uint8, kind
        assert list(coded.file_bytes) == [len(f) for f in coded.files]
        assert (0 < coded.payload_bytes).all() and (coded.payload_bytes < coded.file_bytes).all(), kind
        # What Pillow decodes the files to, and near the source at these qualities.
        again = torch.stack([lib.read_image(io.BytesIO(f)) for f in coded.files])
        assert torch.equal(coded.decoded, again), kind
        assert (coded.decoded.float() - images.float()).abs().mean() < 40, kind
    jpeg = rd.pillow_roundtrip(images, "JPEG", 30)
    assert list(jpeg.payload_bytes) == [rd.jpeg_scan_bytes(f) for f in jpeg.files]
    avif = rd.pillow_roundtrip(images, "AVIF", 50)
    for data, payload in zip(avif.files, avif.payload_bytes):
        found = boxes(data)
        assert found[b"mdat"] - 8 == payload and {b"ftyp", b"meta"} <= set(found)
    # The encoder settings: AVIF at 4:4:4 keeps chroma that 4:2:0 would blur away (a 1-pixel colour checkerboard).
    checker = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    checker[0, 0, ::2, ::2] = checker[0, 0, 1::2, 1::2] = 255
    checker[0, 2, 1::2, ::2] = checker[0, 2, ::2, 1::2] = 255
    err = (rd.pillow_roundtrip(checker, "AVIF", 90).decoded.float() - checker.float()).abs().mean()
    assert err < 20
    with pytest.raises(ValueError, match="unsupported format"):
        rd.pillow_roundtrip(images[:1], "PNG", 90)


def test_no_module_touches_compressai_private_names():
    """CompressAI through its public API only: no underscored attribute of its modules, no compressai._*."""
    pattern = re.compile(
        r"\._(logits_cumulative|likelihood|quantized_cdf|CXX|cdf_length|offset|get_medians|standardized_cumulative|"
        r"pmf_to_quantized_cdf|build_indexes)\b|compressai\._"
    )
    hits = [
        f"{path.relative_to(REPO)}:{i}"
        for top in ("src", "jobs", "bench", "experiments")
        for path in sorted((REPO / top).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, hits


def test_bd_rate_of_a_curve_against_itself_and_against_twice_its_bits():
    curve = [{"bpp": b, "psnr": 20 + 6 * np.log2(b)} for b in (0.5, 1, 2, 4)]
    assert rd.bd_rate(curve, curve) == pytest.approx(0, abs=1e-9)
    double = [{"bpp": 2 * p["bpp"], "psnr": p["psnr"]} for p in curve]
    assert rd.bd_rate(curve, double) == pytest.approx(-50, abs=1e-6)
    assert rd.bd_rate(curve, [{"bpp": 1, "psnr": 90}, {"bpp": 2, "psnr": 95}]) is None


def test_bd_rate_within_a_psnr_range_averages_over_that_range_alone():
    ours = [{"bpp": b, "psnr": 20 + 6 * np.log2(b)} for b in (0.5, 1, 2, 4)]  # 14 to 32 dB
    # the reference's log-rate exceeds ours by 0.05 per dB above 14 dB: its lead grows with the PSNR
    reference = [{"bpp": p["bpp"] * np.exp(0.05 * (p["psnr"] - 14)), "psnr": p["psnr"]} for p in ours]
    low, high = rd.bd_rate(ours, reference, within=(14, 20)), rd.bd_rate(ours, reference, within=(26, 40))
    assert low == pytest.approx(100 * (np.exp(-0.05 * 3) - 1), abs=1e-6)
    assert high == pytest.approx(100 * (np.exp(-0.05 * 15) - 1), abs=1e-6)  # clipped to 32 dB, where ours ends
    assert rd.bd_rate(ours, reference) == pytest.approx(100 * (np.exp(-0.05 * 9) - 1), abs=1e-6)
    assert rd.bd_rate(ours, reference, within=(40, 50)) is None


def test_rd_eval_measures_every_level_against_avif_webp_and_jpeg_with_bootstrap(tmp_path, synth_cache, shipped):
    out = tmp_path / "rd"
    run_script(
        "rd_eval.py", "--data", synth_cache, "--model", shipped / "codec-v2", "--out", out,
        "--splits", "test", "--limit", "20", "--resamples", "50", "--refine-steps", "3", "--refine-lambda-scale", "0.5",
    )  # fmt: skip
    result = json.loads((out / "rd.json").read_text())
    test = result["splits"]["test"]
    assert test["num_images"] == 20 and len(test["curves"]["cae"]) == 3 and len(test["curves"]["cae_refined"]) == 3
    files = list((out / "files" / "test" / "q2").glob("*.cae"))
    assert len(files) == 20 and result["file_format"] == files[0].read_bytes()[0] & 0x0F  # the version it wrote
    assert len(list((out / "files" / "test" / "refine3x0.5" / "q2").glob("*.cae"))) == 20
    payload = {p["quality"]: p["bpp"] for p in test["curves"]["avif_payload"]}
    whole = {p["quality"]: p["bpp"] for p in test["curves"]["avif_file"]}
    assert all(payload[q] < whole[q] for q in payload)
    assert set(test["comparisons"]) == {
        "avif_payload", "avif_file", "webp", "jpeg_scan", "refined_vs_plain", "refined_vs_avif_payload"
    }  # fmt: skip
    assert result["refinement"] == {"tag": "refine3x0.5", "steps": 3, "lr": 0.02, "lambda_scale": 0.5}
    assert "bd_rate_pct" in test["comparisons"]["webp"]
    assert (out / "rd_test.png").is_file() and list((out / "baselines").glob("avif-*.npz"))
    wandb_files = list((out / "wandb").glob("offline-run-*/*.wandb"))
    assert wandb_files and b"rd/points" in wandb_files[0].read_bytes()
    assert b"vs_avif_payload/test/bd_rate_pct" in wandb_files[0].read_bytes()
    proc = run_script("rd_eval.py", "--data", synth_cache, "--model", tmp_path / "nothing", "--out", out, check=False)
    assert_one_line_error(proc, "does not exist")


# ---------------------------------------------------------------------------- the model
def test_bad_rate_levels_are_a_one_line_config_error():
    with pytest.raises(UserError, match="rd_lambdas"):
        load_config(None, ["entropy_model=hyperprior", "rd_lambdas=[0.01,-1]"])
    assert len(Config(entropy_model="hyperprior", rd_lambdas=[0.01] * 128).check().level_lambdas) == 128
    with pytest.raises(UserError, match="at most 128"):  # a file stores the level in 7 bits
        Config(entropy_model="hyperprior", rd_lambdas=[0.01] * 129).check()
    for weights in ("[1]", "[1,0]"):  # one per level, each positive
        with pytest.raises(UserError, match="rd_level_weights"):
            load_config(None, ["entropy_model=hyperprior", "rd_lambdas=[0.01,0.1]", f"rd_level_weights={weights}"])


@pytest.mark.parametrize("weights", [[], [1.0, 3.0], [3.0, 1.0]])
def test_training_draws_each_level_as_often_as_its_weight_says(weights):
    from cifarae.tasks import AutoencoderTask

    drawn = []

    def model(x, quality):  # records the levels the loss trains; no entropy model, so the loss stops at distortion
        drawn.append(quality)
        return x, None

    cfg = Config(entropy_model="hyperprior", rd_lambdas=[0.01, 0.1], rd_level_weights=weights).check()
    torch.manual_seed(0)
    AutoencoderTask(cfg).loss(model, torch.rand(8000, 3, 2, 2), None)
    share = drawn[0].float().mean().item()  # how often the second level is drawn
    expected = weights[1] / sum(weights) if weights else 0.5
    assert drawn[0].shape == (8000,) and abs(share - expected) < 0.02


def test_the_model_picks_each_images_level_and_the_gain_scales_its_latent():
    cfg = load_config(None, V2)
    model = AutoEncoder(cfg).eval()
    x = torch.rand(2, 3, 32, 32)
    low, _ = model(x, torch.tensor([0, 0]))
    high, _ = model(x, torch.tensor([2, 2]))
    mixed, _ = model(x, torch.tensor([0, 2]))
    assert torch.allclose(mixed[0], low[0], atol=1e-6) and torch.allclose(mixed[1], high[1], atol=1e-6)
    gains = model.latent_codec.gains(torch.tensor([0, 2]))
    assert (gains[1] > gains[0]).all()


def test_entropy_model_stays_fp32_under_bf16_autocast():
    """bf16 in the entropy model rounds its CDF differences (a wrong, even infinite, rate): it runs in fp32."""
    torch.manual_seed(0)
    model = AutoEncoder(load_config(None, V2)).eval()
    y = 3 * torch.randn(2, *model.latent_shape)
    model.encode = lambda x: y  # the same latents with and without autocast
    x = torch.rand(2, 3, 32, 32)
    _, reference = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat, likelihoods = model(x)
    assert likelihoods.dtype == torch.float32 and x_hat.shape == (2, 3, 32, 32)
    assert torch.equal(likelihoods, reference)


def test_the_decoder_trains_on_the_rounded_latents_the_coder_will_send():
    """In training the decoder gets round(y_g - mean) + mean (over the gain), as after decoding a file,
    with the encoder still receiving gradients; the rate sees noisy latents."""
    torch.manual_seed(0)
    model = AutoEncoder(load_config(None, V2)).train()
    lc, seen = model.latent_codec, {}
    parameters_from, decode = lc.parameters_from, model.decode

    def spy_parameters(*args):
        seen["means"], log_scales = parameters_from(*args)
        return seen["means"], log_scales

    def spy_decode(y_hat):
        seen["y_hat"] = y_hat
        return decode(y_hat)

    lc.parameters_from, model.decode = spy_parameters, spy_decode
    quality = torch.tensor([0, 2, 1, 2])
    x = torch.rand(4, 3, 32, 32)
    x_hat, likelihoods = model(x, quality)
    symbols = seen["y_hat"] * lc.gains(quality) - seen["means"]
    assert torch.allclose(symbols, symbols.round(), atol=1e-4)
    x_hat.square().mean().backward()
    assert model.to_latent.weight.grad.abs().sum() > 0  # straight-through: the encoder still learns
    with torch.no_grad():  # the rate sees fresh noise at each step; evaluation rounds, the same each time
        assert not torch.equal(model(x, quality)[1], model(x, quality)[1])
        model.eval()
        assert torch.equal(model(x, quality)[1], model(x, quality)[1])


def test_a_wider_decoder_leaves_the_backbone_as_the_classifiers_and_round_trips():
    cfg = Config(entropy_model="hyperprior", latent_channels=8, hyper_channels=16, decoder_widths=[16, 24, 32, 32])
    codec = random_codec(cfg.check())
    assert codec.model.decoder.layers[-1].in_channels == 16  # the last stage has decoder_widths[0] channels
    clf = Classifier(Config(task="clf"))
    assert {k: v.shape for k, v in codec.model.backbone.state_dict().items()} == {
        k: v.shape for k, v in clf.backbone.state_dict().items()
    }
    image = torch.randint(0, 256, (1, 3, 20, 28), dtype=torch.uint8)
    decoded = codec.decompress(codec.compress(image, 0)[0])
    assert decoded.shape[-2:] == (20, 28)
    with pytest.raises(UserError, match="decoder_widths"):
        load_config(overrides=["decoder_widths=[16,32]"])


@pytest.mark.parametrize("latent_size", [4, 8, 16])
def test_a_skip_latent_keeps_the_classifiers_backbone_carries_detail_and_round_trips(latent_size):
    small = dict(widths=[8, 16, 32, 32], latent_size=latent_size, latent_channels=4, hyper_channels=8)
    cfg = Config(entropy_model="hyperprior", skip_channels=3, **small).check()
    codec = random_codec(cfg)
    model = codec.model.float()
    fold = 16 // latent_size  # block 1's output is 16x16 for every latent size here
    assert model.latent_shape == (4 + 3 * fold**2, latent_size, latent_size)
    clf = Classifier(Config(task="clf", widths=small["widths"], latent_size=latent_size))
    assert {k: v.shape for k, v in model.backbone.state_dict().items()} == {
        k: v.shape for k, v in clf.backbone.state_dict().items()
    }
    x = torch.rand(2, 3, 32, 32)
    y = model.encode(x)
    assert y.shape == (2, *model.latent_shape)
    skip_only = y.clone()
    skip_only[:, 4:] += 1.0  # the folded skip channels reach the decoder
    assert not torch.allclose(model.decode(y), model.decode(skip_only))
    codec.model.double()
    image = torch.randint(0, 256, (1, 3, 20, 24), dtype=torch.uint8)
    decoded = codec.decompress(codec.compress(image, 0)[0])
    assert torch.equal(decoded, codec.reconstruct(image, 0)[0])
    with pytest.raises(UserError, match="skip_channels"):
        load_config(overrides=["skip_channels=4"])  # a plain autoencoder has no entropy model to code it


def test_pack_checkpoint_ships_the_same_codec_without_training_state_and_a_backbone_alone(v2_run, tmp_path, images):
    packed, backbone = tmp_path / "packed.pt", tmp_path / "backbone.pt"
    run_script("../experiments/gpu/pack_checkpoint.py", v2_run, packed)
    ckpt = checkpoint.load(packed)
    assert set(ckpt) <= {*checkpoint.RUN_KEYS, "model", "ema_model", "path"}  # no optimizer, no scheduler
    full, slim = load_codec(v2_run), load_codec(packed)
    assert slim.model_id == full.model_id
    assert slim.compress(images[:2], 1) == full.compress(images[:2], 1)

    run_script("../experiments/gpu/pack_checkpoint.py", v2_run, backbone, "--only-prefix", "backbone.")
    assert all(k.startswith("backbone.") for k in checkpoint.load(backbone)["model"])
    proc = run_script("../experiments/gpu/pack_checkpoint.py", tmp_path / "missing", tmp_path / "x.pt", check=False)
    assert_one_line_error(proc, "does not exist")


def test_a_codec_run_records_its_validation_rate_each_epoch_and_keeps_its_lowest_rd_loss(v2_run):
    history = json.loads((v2_run / "history.json").read_text())
    assert history and all(0 < h["val_bpp_estimate"] < 64 for h in history)  # 64: a float32 per pixel
    for h in history:  # rate + lambda * 255^2 * MSE at the middle level (lambda 0.03), the level validated
        assert h["val_rd_loss"] == pytest.approx(h["val_bpp_estimate"] + 255**2 * 0.03 * h["val_mse"])
    from cifarae.tasks import AutoencoderTask

    codec_task, ae_task = AutoencoderTask(load_config(None, V2)), AutoencoderTask(load_config(None, []))
    assert (codec_task.monitor, codec_task.monitor_mode) == ("rd_loss", "min")  # what picks best.pt
    assert (ae_task.monitor, ae_task.monitor_mode) == ("psnr", "max")


# ---------------------------------------------------------------------------- the shipped model, refinement
def test_the_shipped_model_works_right_after_setup(tmp_path, capsys, images, monkeypatch):
    """models/codec-v2 is in the repository: small files whose checksums hold, found with no --model."""
    monkeypatch.delenv("CIFARAE_MODELS", raising=False)
    folder = models_dir() / DEFAULT_MODEL
    sizes = [(folder / name).stat().st_size for name in read_manifest(folder)["files"]]
    assert max(sizes) <= MAX_FILE_BYTES and sum(sizes) <= MAX_MODEL_BYTES, sizes
    png = save_png(tmp_path / "a.png", images[3])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae")
    assert code == 0, err
    code, _, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a_out.png")
    assert code == 0, err
    shipped_codec = load_shipped(folder)
    expected = shipped_codec.reconstruct(images[3:4], shipped_codec.levels // 2)[0]
    assert torch.equal(load_png(tmp_path / "a_out.png"), expected)
    # the README's usage line and the CLI's help state the shipped model's quality range
    top = shipped_codec.levels - 1
    assert f"[--quality 0-{top}]" in (REPO / "README.md").read_text()
    assert f"quality levels 0 (smallest files) .. {top})" in " ".join((REPO / "src" / "codec.py").read_text().split())


def rd_cost(codec: HyperpriorCodec, images: torch.Tensor, files: list[bytes], quality: int) -> torch.Tensor:
    """Per image, what refinement minimises, measured on real files: bpp + lambda * 255^2 * MSE."""
    decoded = torch.stack([codec.decompress(f) for f in files]).double()
    mse = (decoded - images.double()).div(255).pow(2).flatten(1).mean(1)
    bpp = torch.tensor([8 * len(f) / images[0, 0].numel() for f in files], dtype=torch.float64)
    return bpp + codec.cfg.rd_lambdas[quality] * 255**2 * mse


def test_refinement_never_costs_more_than_plain_on_the_shipped_model_and_its_files_decode(images, monkeypatch):
    """Encoder-side refinement on the trained, shipped model: each image's file is the cheaper (bits +
    lambda * MSE, from the real files) of its plain and its refined file, so it never costs more than the
    plain one, and it costs less where refinement pays; the files decode with the plain model (same model
    id, same decoder), and the same images give the same files."""
    monkeypatch.delenv("CIFARAE_MODELS", raising=False)
    plain = default_model()
    refined = default_model(Refinement(steps=20))
    assert refined.model_id == plain.model_id
    batch = images[:8]
    for quality in (1, plain.levels - 1):
        files = refined.compress(batch, quality)
        assert refined.compress(batch, quality) == files
        plain_files, refined_only = plain.compress(batch, quality), refined._files(batch, quality, refine=True)
        cost_plain = rd_cost(plain, batch, plain_files, quality)
        cost_refined = rd_cost(plain, batch, refined_only, quality)
        kept = [p if cp <= cr else r for p, r, cp, cr in zip(plain_files, refined_only, cost_plain, cost_refined)]
        assert files == kept
        assert (rd_cost(plain, batch, files, quality) <= cost_plain).all()
        if quality == 1:  # where refinement alone would cost more, the plain file is kept
            assert (cost_refined > cost_plain).any()
        else:
            assert (cost_refined < cost_plain).all()
    # at a smaller lambda it trades quality for bits: fewer bytes than refining at the level's own lambda
    fewer = default_model(Refinement(steps=20, lambda_scale=0.3))
    top = plain.levels - 1
    assert sum(map(len, fewer.compress(batch, top))) < sum(map(len, refined.compress(batch, top)))


def test_refinement_settings_batch_sizes_and_odd_sizes(tmp_path, capsys, v2_run, images):
    """The same images refine to the same files in any batch size, at any size, and decode with the plain
    model; bad settings are one-line errors."""
    refined = load_codec(v2_run, refine=Refinement(steps=8))
    one = [refined.compress(images[i : i + 1], 1)[0] for i in range(4)]
    assert refined.compress(images[:4], 1, batch_size=4) == one
    odd = torch.randint(0, 256, (2, 3, 19, 27), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    plain = load_codec(v2_run)
    assert [plain.decompress(f).shape for f in refined.compress(odd, 1)] == [(3, 19, 27)] * 2
    for bad in ({"steps": -1}, {"lr": 0}, {"lambda_scale": 0}):
        with pytest.raises(UserError, match="refinement needs"):
            Refinement(**bad)
    png = save_png(tmp_path / "a.png", images[0])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae", "--model", v2_run, "--refine-steps", "-1")
    assert_user_error(code, err, "refinement needs steps >= 0")
    assert not (tmp_path / "a.cae").exists()


def test_cli_refines_with_the_shipped_model(tmp_path, capsys, images, monkeypatch):
    monkeypatch.delenv("CIFARAE_MODELS", raising=False)
    png = save_png(tmp_path / "a.png", images[5])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae", "--quality", "4", "--refine-steps", "5")
    assert code == 0, err
    refined = default_model(Refinement(steps=5))
    assert (tmp_path / "a.cae").read_bytes() == refined.compress(images[5:6], 4)[0]
    assert (tmp_path / "a.cae").read_bytes() != default_model().compress(images[5:6], 4)[0]
    code, _, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a_out.png")
    assert code == 0, err


def test_photos_probe_codes_odd_sized_photos_against_avif_webp_and_jpeg(tmp_path, shipped, images):
    """experiments/generalisation/photos.py: photos of other sizes than 32x32, every level and reference."""
    tiles = torch.cat([torch.cat(list(images[i : i + 2]), dim=2) for i in (0, 2)], dim=1)  # 3 x 64 x 64
    paths = [save_png(tmp_path / "a.png", tiles[:, :45, :61]), save_png(tmp_path / "b.png", tiles[:, :64, :37])]
    out = tmp_path / "photos"
    run_script("../experiments/generalisation/photos.py", "--photos", *paths, "--out", out,
               "--model", shipped / "codec-v2")  # fmt: skip
    result = json.loads((out / "photos.json").read_text())
    assert [(p["photo"], p["width"], p["height"]) for p in result["photos"]] == [("a.png", 61, 45), ("b.png", 37, 64)]
    for photo in result["photos"]:
        assert [p["level"] for p in photo["curves"]["cae"]] == [0, 1, 2]
        assert {"avif", "webp", "jpeg"} <= set(photo["curves"]) and set(photo["bd_rate_pct"]) == {
            "avif",
            "webp",
            "jpeg",
        }
        rates = [p["bpp"] for p in photo["curves"]["cae"]]
        assert rates == sorted(rates)
    assert (out / "photos_rd.png").is_file()


def test_a_one_level_codec_takes_rd_lambda_for_its_level_and_refines(images):
    small = dict(widths=[8, 16, 16, 16], latent_channels=4, hyper_channels=8)
    cfg = Config(entropy_model="hyperprior", rd_lambda=0.02, **small)
    assert cfg.level_lambdas == [0.02] and Config(rd_lambdas=[0.1, 0.3]).level_lambdas == [0.1, 0.3]
    plain = random_codec(cfg.check())
    assert plain.levels == 1
    refined = HyperpriorCodec(plain.model, cfg, source="random-init", refine=Refinement(steps=2))
    assert plain.decompress(refined.compress(images[:1], 0)[0]).shape == (3, 32, 32)
