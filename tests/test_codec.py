"""The image codec: files, CLI, bit-exact decoding, error handling, and the RD evaluation."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import synth
import torch
from conftest import TINY, assert_one_line_error, run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import codec_context
import codec_fit
import codec_init
from cifarae import checkpoint, rd
from cifarae import codec as lib
from cifarae import data as data_lib
from cifarae.codec import compressai_adapter
from cifarae.errors import UserError
from cifarae.models import AutoEncoder
from cifarae.tasks import reconstruct

CODEC = [*TINY, "entropy_model=factorized", "precision=no", "epochs=1", "rd_lambda=0.01", "lr=0.01"]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PROBES = "../experiments/codec/"  # run_script paths are relative to src/
REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str):
    """A script (src/codec.py, a probe under experiments/) as a module named ``name``, loaded by path: src/ is on
    pytest's pythonpath, where a bare ``import codec`` would be the entry script, not the library cifarae.codec."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codec_cli = load_script(REPO / "src" / "codec.py", "codec_cli")


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory, synth_cache):
    """A tiny codec trained for one epoch through the real entry point (a few seconds)."""
    run = tmp_path_factory.mktemp("codec") / "run"
    run_script("train_ae.py", "--data", synth_cache, "--out", run, *CODEC, "wandb=false")
    return run


@pytest.fixture(scope="module")
def codec(codec_run):
    return lib.load_codec(codec_run)


@pytest.fixture(scope="module")
def other_model(codec_run, tmp_path_factory):
    """The same architecture with one weight changed: another model id."""
    ckpt = checkpoint.load(codec_run)
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


# ---------------------------------------------------------------------------- round trips
def test_cli_round_trip_equals_the_models_reconstruction(tmp_path, capsys, codec, codec_run, images):
    pngs = [save_png(tmp_path / f"img{i}.png", img) for i, img in enumerate(images[:4])]
    code, out, err = cli(capsys, "compress", *pngs, "-o", tmp_path / "cae", "--model", codec_run)
    assert code == 0, err
    files = sorted((tmp_path / "cae").glob("*.cae"))
    assert [f.stem for f in files] == [p.stem for p in pngs]
    code, out, err = cli(capsys, "decompress", *files, "-o", tmp_path / "out", "--model", codec_run)
    assert code == 0, err
    decoded = torch.stack([load_png(tmp_path / "out" / f"{p.stem}.png") for p in pngs])
    assert torch.equal(decoded, codec.reconstruct(images[:4]))
    # ... which is the autoencoder's own eval-mode forward pass (float32, batched), to within
    # float rounding of the last 8-bit step.
    model = codec_cli_model(codec_run)
    with torch.no_grad():
        forward = (reconstruct(model, images[:4].float() / 255) * 255).round().to(torch.uint8)
    diff = (decoded.int() - forward.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


def codec_cli_model(run):
    ckpt = checkpoint.load(run)
    model = AutoEncoder(checkpoint.checkpoint_config(ckpt))
    checkpoint.load_weights(model, checkpoint.inference_state(ckpt), "run")
    return model.eval()


def test_batch_size_and_threads_do_not_change_a_single_bit(codec, images):
    x = images[:8]
    batched = codec.compress(x, batch_size=8)
    single = [codec.compress(x[i : i + 1])[0] for i in range(8)]
    assert batched == single
    decoded = [codec.decompress(f) for f in batched]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = [codec.decompress(f) for f in batched]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(decoded, one_thread))
    assert torch.equal(torch.stack(decoded), codec.reconstruct(x))


@pytest.mark.parametrize("height,width", [(1, 1), (3, 5), (31, 33), (17, 64), (45, 7)])
def test_odd_sizes_round_trip(codec, height, width):
    gen = torch.Generator().manual_seed(height * 100 + width)
    x = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8, generator=gen)
    files = codec.compress(x)
    decoded = torch.stack([codec.decompress(f) for f in files])
    assert decoded.shape == x.shape
    assert torch.equal(decoded, codec.reconstruct(x))


def test_cli_odd_sized_jpeg_and_single_output_file(tmp_path, capsys, codec, codec_run, images):
    src = tmp_path / "odd.jpg"
    Image.fromarray(np.tile(images[0].permute(1, 2, 0).numpy(), (2, 2, 1))[:45, :37]).save(src, quality=90)
    code, _, err = cli(capsys, "compress", src, "-o", tmp_path / "odd.cae", "--model", codec_run)
    assert code == 0, err
    code, _, err = cli(capsys, "decompress", tmp_path / "odd.cae", "-o", tmp_path / "odd.png", "--model", codec_run)
    assert code == 0, err
    out = load_png(tmp_path / "odd.png")
    assert out.shape == (3, 45, 37)
    assert torch.equal(out, codec.reconstruct(lib.read_image(src).unsqueeze(0))[0])


# ---------------------------------------------------------------------------- bytes
def test_bpp_counts_the_real_bytes_of_the_files(tmp_path, codec, images):
    point = rd.codec_point(codec, images, tmp_path / "files")
    sizes = [p.stat().st_size for p in sorted((tmp_path / "files").glob("*.cae"))]
    assert len(sizes) == len(images)
    assert point["bpp"] == pytest.approx(8 * sum(sizes) / len(sizes) / (32 * 32))
    # 16 bytes of header + checksum at 32 x 32: magic 3, version 1, size 1 + 1, model id 6, CRC 4.
    assert point["header_bytes"] == 16
    assert point["bpp_payload"] == pytest.approx(8 * (sum(sizes) / len(sizes) - 16) / 1024)
    files = codec.compress(images)
    for data in files:
        parsed = codec.parse(data)
        assert parsed.header_bytes + sum(map(len, parsed.streams)) == len(data)
    mse = np.mean([(codec.decompress(f).double() - img.double()).pow(2).mean().item() / 255**2 for f, img in
                   zip(files, images)])  # fmt: skip
    assert point["mse"] == pytest.approx(mse)


def test_header_layout(codec, images):
    data = codec.compress(images[:1])[0]
    assert data[:3] == b"CAE" and data[3] == lib.VERSION
    assert data[4:6] == bytes([32, 32])  # varint width, height
    assert data[6:12] == codec.model_id
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


# ---------------------------------------------------------------------------- bad files
def test_truncated_corrupt_foreign_and_versioned_files_are_refused(codec, images):
    data = codec.compress(images[:1])[0]
    for n in range(len(data)):
        with pytest.raises(UserError, match="truncated|corrupt|magic|checksum"):
            codec.decompress(data[:n])
    for pos in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= bit
            with pytest.raises(UserError):
                codec.decompress(bytes(bad))
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    for foreign in (b"", b"CA", png.getvalue(), b"\x00" * 64, b"CAE" + b"\x00" * 40):
        with pytest.raises(UserError):
            codec.decompress(foreign)
    body = data[:3] + bytes([lib.VERSION + 1]) + data[4:-4]
    with pytest.raises(UserError, match="format version 2"):
        codec.decompress(body + struct.pack(">I", zlib.crc32(body)))


def test_wrong_model_is_refused_by_identity(tmp_path, capsys, codec, codec_run, other_model, images):
    other = lib.load_codec(other_model)
    assert other.model_id != codec.model_id
    with pytest.raises(UserError, match="written by model"):
        other.decompress(codec.compress(images[:1])[0])
    path = tmp_path / "a.cae"
    path.write_bytes(codec.compress(images[:1])[0])
    code, _, err = cli(capsys, "decompress", path, "-o", tmp_path / "out", "--model", other_model)
    assert_user_error(code, err, "a.cae", "written by model", "--model")
    assert not list((tmp_path / "out").glob("*.png"))


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, codec_run, images):
    bad = tmp_path / "bad.cae"
    bad.write_bytes(b"CAE\x01" + b"\x07" * 30)
    code, _, err = cli(capsys, "decompress", bad, "-o", tmp_path / "out", "--model", codec_run)
    assert_user_error(code, err, "bad.cae", "checksum")
    assert not list((tmp_path / "out").glob("*"))
    code, _, err = cli(capsys, "compress", tmp_path / "missing.png", "-o", tmp_path / "c", "--model", codec_run)
    assert_user_error(code, err, "missing.png")
    notimg = tmp_path / "notimage.png"
    notimg.write_bytes(b"hello")
    code, _, err = cli(capsys, "compress", notimg, "-o", tmp_path / "c", "--model", codec_run)
    assert_user_error(code, err, "cannot read image")
    code, _, err = cli(capsys, "compress", notimg, "-o", tmp_path / "c", "--model", tmp_path / "nothing")
    assert_user_error(code, err, "does not exist")


def test_plain_autoencoder_is_not_a_codec(tmp_path, codec_run):
    ckpt = checkpoint.load(codec_run)
    ckpt["config"]["entropy_model"] = "none"
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("entropy_bottleneck.")}
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, tmp_path / "ae.pt")
    with pytest.raises(UserError, match="not a codec"):
        lib.load_codec(tmp_path / "ae.pt")


def test_codec_fit_lowers_the_rate_and_is_used_by_the_run(tmp_path, capsys, codec_run, synth_cache, images):
    run = tmp_path / "run"
    shutil.copytree(codec_run, run)
    before = lib.load_codec(run)
    codec_fit.main(["--run", str(run), "--data", str(synth_cache), "--images", "200", "--steps", "30"])
    assert "estimated rate" in capsys.readouterr().out
    fitted = lib.load_codec(run)
    assert fitted.source.endswith("codec.pt") and fitted.model_id != before.model_id
    stats = checkpoint.load(run / "codec.pt")["codec_fit"]
    assert stats["bpp_after"] < stats["bpp_before"]
    # Medians stay: the quantised latents, hence the reconstruction, are unchanged.
    assert torch.equal(fitted.reconstruct(images), before.reconstruct(images))
    files = fitted.compress(images)
    assert torch.equal(torch.stack([fitted.decompress(f) for f in files]), before.reconstruct(images))
    with pytest.raises(UserError, match="written by model"):
        before.decompress(files[0])


# ---------------------------------------------------------------------------- fuzzing
def reseal(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(codec, data):
    for blob in (data, b"CAE\x01" + data, reseal(b"CAE\x01" + data)):
        try:
            out = codec.decompress(blob)
        except UserError:
            continue
        assert out.dtype == torch.uint8 and out.ndim == 3


@FUZZ
@given(st.data())
def test_fuzz_mutated_files(codec, images, data):
    mutate_and_decode(codec, images, data)


def mutate_and_decode(codec, images, data):
    """Flip, insert and delete bytes of a real file, maybe forge its checksum: a UserError or a valid decode."""
    original = codec.compress(images[:1])[0]
    expected = codec.decompress(original)
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
    blob = reseal(bytes(blob[:-4])) if resealed else bytes(blob)
    try:
        out = codec.decompress(blob)
    except UserError:
        return
    if blob == original:
        assert torch.equal(out, expected)
    else:
        assert resealed and out.dtype == torch.uint8  # a forged but self-consistent file: a valid decode


@FUZZ
@given(st.integers(0, 2**28 - 1))
def test_varint_round_trip(value):
    enc = lib.put_varint(value)
    assert lib.get_varint(enc + b"\x00", 0, "v", 2**28) == (value, len(enc))


# ---------------------------------------------------------------------------- evaluation
def test_jpeg_scan_bytes_and_floor_interpolation(images):
    coded = rd.pillow_roundtrip(images[:1], "JPEG", 30)
    data = coded.files[0]
    scan = rd.jpeg_scan_bytes(data)
    assert coded.payload_bytes[0] == scan and coded.file_bytes[0] == len(data)
    sos = data.index(b"\xff\xda")
    header_len = int.from_bytes(data[sos + 2 : sos + 4], "big")
    assert scan == len(data) - (sos + 2 + header_len) - 2  # up to the EOI marker
    ours = [{"bpp": 0.5, "psnr": 25}, {"bpp": 1.5, "psnr": 31}, {"bpp": 2.5, "psnr": 34}]
    webp = [{"bpp": 0.8, "psnr": 22}, {"bpp": 3.0, "psnr": 33}]
    jpeg = [{"bpp": 5, "bpp_scan": 0.5, "psnr": 20}, {"bpp": 6, "bpp_scan": 1.5, "psnr": 26}]
    assert rd.interpolate(ours, 1.0) == pytest.approx(28)
    assert rd.interpolate(ours, 3.0) is None
    result = rd.floors(ours, jpeg, webp)
    assert result["vs_jpeg_scan_only@1bpp"]["jpeg_scan_psnr"] == pytest.approx(23)
    assert result["all_pass"]
    with pytest.raises(UserError, match="75"):
        rd.baseline_points(images[:1], "JPEG", (75,))


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
    for fmt, quality in (("JPEG", 30), ("WEBP", 50), ("AVIF", 50)):
        coded = rd.pillow_roundtrip(images, fmt, quality)
        assert coded.decoded.shape == images.shape and coded.decoded.dtype == torch.uint8, fmt
        assert list(coded.file_bytes) == [len(f) for f in coded.files]
        assert (0 < coded.payload_bytes).all() and (coded.payload_bytes < coded.file_bytes).all(), fmt
        # What Pillow decodes the files to, and near the source at these qualities.
        again = torch.stack([lib.read_image(io.BytesIO(f)) for f in coded.files])
        assert torch.equal(coded.decoded, again), fmt
        assert (coded.decoded.float() - images.float()).abs().mean() < 40, fmt
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


def test_only_the_adapter_touches_compressai_private_names():
    pattern = re.compile(
        r"\._(logits_cumulative|likelihood|quantized_cdf|CXX|cdf_length|offset|get_medians)\b|compressai\._"
    )
    hits = [
        f"{path.relative_to(REPO)}:{i}"
        for top in ("src", "jobs", "bench", "experiments")
        for path in sorted((REPO / top).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and path.name != "compressai_adapter.py"
    ]
    assert not hits, hits


def test_rd_eval_script_writes_json_plot_and_wandb_table(tmp_path, synth_cache, codec_run, other_model):
    out = tmp_path / "rd"
    proc = run_script(
        "rd_eval.py", "--data", synth_cache, "--runs", codec_run, other_model, "--out", out, "--splits", "test",
        "--limit", "20",
    )  # fmt: skip
    assert "floors" in proc.stdout and "vs_webp@1bpp" in proc.stdout
    result = json.loads((out / "rd.json").read_text())
    points = result["points"]["test"]
    assert len(points["cae"]) == 2 and points["num_images"] == 20
    assert {p["quality"] for p in points["jpeg"]} == set(rd.JPEG_QUALITIES)
    assert {p["quality"] for p in points["webp"]} >= {5, 90}
    assert all(p["bpp_scan"] < p["bpp"] for p in points["jpeg"])
    for p in points["cae"]:
        assert p["bpp_payload"] < p["bpp"] and p["encode_img_per_s"] > 0 and p["decode_peak_rss_mb"] > 0
    assert set(result["floors"]["test"]) >= {"vs_webp@1bpp", "vs_webp@2bpp", "vs_jpeg_scan_only@1bpp", "all_pass"}
    assert (out / "rd_test.png").stat().st_size > 1000
    assert len(list((out / "files" / codec_run.name / "test").glob("*.cae"))) == 20
    wandb_files = list((out / "wandb").glob("offline-run-*/*.wandb"))
    assert wandb_files and b"rd/points" in wandb_files[0].read_bytes()


def test_rd_eval_reuses_points_of_models_already_measured(tmp_path, synth_cache, codec_run, other_model):
    common = ["--data", synth_cache, "--splits", "test", "--limit", "20", "--no-wandb"]
    run_script("rd_eval.py", *common, "--runs", codec_run, "--out", tmp_path / "one")
    first = json.loads((tmp_path / "one" / "rd.json").read_text())["points"]["test"]["cae"][0]
    proc = run_script(
        "rd_eval.py", *common, "--runs", codec_run, other_model, "--out", tmp_path / "two",
        "--reuse", tmp_path / "one" / "rd.json",
    )  # fmt: skip
    assert "reused from" in proc.stdout
    kept, measured = json.loads((tmp_path / "two" / "rd.json").read_text())["points"]["test"]["cae"]
    assert {k: v for k, v in kept.items() if k not in ("run", "reused_from")} == {
        k: v for k, v in first.items() if k != "run"
    }
    assert "reused_from" not in measured and measured["model_id"] != kept["model_id"]
    assert not (tmp_path / "two" / "files" / codec_run.name).exists()  # the reused model coded nothing
    assert len(list((tmp_path / "two" / "files" / other_model.name / "test").glob("*.cae"))) == 20


def test_codec_init_widens_a_plain_autoencoder_into_a_trainable_codec(tmp_path, codec_run, synth_cache, images):
    # A plain autoencoder: the tiny codec's transforms without its entropy model.
    ckpt = checkpoint.load(codec_run)
    ckpt["config"]["entropy_model"] = "none"
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("entropy_bottleneck.")}
    checkpoint.save_atomic({k: v for k, v in ckpt.items() if k != "path"}, tmp_path / "ae.pt")
    ae = AutoEncoder(checkpoint.checkpoint_config(checkpoint.load(tmp_path / "ae.pt")))
    checkpoint.load_weights(ae, checkpoint.load(tmp_path / "ae.pt")["model"], "ae")
    x = images.float() / 255

    # Same width, rescaled latents: the same function.
    args = ["--ae", tmp_path / "ae.pt", "--data", synth_cache, "--images", "200", "--fit-steps", "50"]
    codec_init.main([str(a) for a in [*args, "--out", tmp_path / "same.pt"]])
    same = AutoEncoder(checkpoint.checkpoint_config(checkpoint.load(tmp_path / "same.pt")))
    checkpoint.load_weights(same, checkpoint.load(tmp_path / "same.pt")["model"], "same")
    with torch.no_grad():
        assert torch.allclose(same.eval().decoder(same.encode(x)), ae.eval().decoder(ae.encode(x)), atol=1e-4)
        assert same.encode(x).std(dim=(0, 2, 3)).mean() == pytest.approx(3.0, rel=0.2)

    # Widened: loads the way train_ae.py's init_from= does, and makes a working codec.
    codec_init.main([str(a) for a in [*args, "--out", tmp_path / "wide.pt", "--latent-channels", "6"]])
    init = checkpoint.load(tmp_path / "wide.pt")
    assert init["codec_init"]["prior_fit"]["bits_per_latent_after"] < 5  # centred and fitted: no 30-bit floor
    cfg = checkpoint.checkpoint_config(init)
    assert cfg.latent_channels == 6 and cfg.entropy_model == "factorized"
    model = AutoEncoder(cfg)
    checkpoint.load_weights(model, checkpoint.inference_state(init), "wide", may_lack="entropy_bottleneck.")
    wide = lib.Codec(model, cfg)
    files = wide.compress(images[:2])
    assert torch.equal(torch.stack([wide.decompress(f) for f in files]), wide.reconstruct(images[:2]))


def test_entropy_model_stays_fp32_under_bf16_autocast():
    """bf16 matmuls in the prior round its CDF differences (a wrong, even infinite, rate): it runs in fp32."""
    from cifarae.config import load_config

    torch.manual_seed(0)
    model = AutoEncoder(load_config(None, [*TINY, "entropy_model=factorized"])).eval()
    y = 3 * torch.randn(2, 4, 8, 8)
    model.encode = lambda x: y  # the same latents with and without autocast
    x = torch.rand(2, 3, 32, 32)
    _, reference = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat, likelihoods = model(x)
    assert likelihoods.dtype == torch.float32 and x_hat.shape == (2, 3, 32, 32)
    assert torch.equal(likelihoods, reference)


def test_a_wider_decoder_leaves_the_backbone_as_the_classifiers_and_round_trips(tmp_path):
    from cifarae.config import Config, load_config
    from cifarae.models import Classifier

    cfg = Config(entropy_model="factorized", latent_channels=8, decoder_widths=[16, 24, 32, 32]).check()
    model = AutoEncoder(cfg).eval()
    assert model.decoder.layers[-1].in_channels == 16  # the last stage has decoder_widths[0] channels
    clf = Classifier(Config(task="clf"))
    assert {k: v.shape for k, v in model.backbone.state_dict().items()} == {
        k: v.shape for k, v in clf.backbone.state_dict().items()
    }
    codec = lib.Codec(model, cfg)
    image = torch.randint(0, 256, (1, 3, 20, 28), dtype=torch.uint8)
    decoded = codec.decompress(codec.compress(image)[0])
    assert decoded.shape[-2:] == (20, 28)
    with pytest.raises(UserError, match="decoder_widths"):
        load_config(overrides=["decoder_widths=[16,32]"])


@pytest.mark.parametrize("latent_size", [4, 8, 16])
def test_a_skip_latent_keeps_the_classifiers_backbone_carries_detail_and_round_trips(latent_size):
    from cifarae.config import Config, load_config
    from cifarae.models import Classifier

    torch.manual_seed(0)
    small = dict(widths=[8, 16, 32, 32], latent_size=latent_size, latent_channels=4)
    cfg = Config(entropy_model="factorized", skip_channels=3, **small).check()
    model = AutoEncoder(cfg).eval()
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
    codec = lib.Codec(model, cfg)
    image = torch.randint(0, 256, (1, 3, 20, 24), dtype=torch.uint8)
    decoded = codec.decompress(codec.compress(image)[0])
    assert torch.equal(decoded, codec.reconstruct(image)[0])
    with pytest.raises(UserError, match="skip_channels"):
        load_config(overrides=["skip_channels=4"])  # a plain autoencoder has no entropy model to code it


def test_pack_checkpoint_ships_float16_transforms_that_still_code_and_a_backbone_alone(codec_run, tmp_path, images):
    packed, backbone = tmp_path / "packed.pt", tmp_path / "backbone.pt"
    run_script("../experiments/gpu/pack_checkpoint.py", codec_run, packed, "--float16")
    ckpt = checkpoint.load(packed)
    assert set(ckpt) <= {*checkpoint.RUN_KEYS, "model", "ema_model", "packed_float16", "path"}
    for key, value in ckpt["model"].items():
        if value.is_floating_point():  # the entropy model stays float32: its CDF tables come from it
            assert value.dtype == (torch.float32 if key.startswith("entropy_bottleneck.") else torch.float16), key
    full, half = lib.load_codec(codec_run), lib.load_codec(packed)
    assert half.model_id != full.model_id  # rounded weights are another model: files do not mix
    difference = (half.reconstruct(images).float() - full.reconstruct(images).float()).abs().mean()
    assert difference < 1.0  # mean 8-bit levels
    assert half.decompress(half.compress(images[:1])[0]).shape == (3, 32, 32)

    run_script("../experiments/gpu/pack_checkpoint.py", codec_run, backbone, "--only-prefix", "backbone.")
    assert all(k.startswith("backbone.") for k in checkpoint.load(backbone)["model"])
    proc = run_script("../experiments/gpu/pack_checkpoint.py", tmp_path / "missing", tmp_path / "x.pt", check=False)
    assert_one_line_error(proc, "does not exist")


def test_a_codec_run_records_its_validation_rate_each_epoch(codec_run):
    history = json.loads((codec_run / "history.json").read_text())
    assert history and all(0 < h["val_bpp_estimate"] < 64 for h in history)  # 64: a float32 per pixel


@pytest.mark.parametrize("ste_decoder", [True, False])
def test_the_decoder_trains_on_the_rounded_latents_the_coder_will_send(ste_decoder):
    """ste_decoder: in training the decoder gets round(y - median) + median, as after decoding a file,
    with the encoder still receiving gradients; without it, it gets the prior's noisy latents."""
    from cifarae.config import load_config

    torch.manual_seed(0)
    model = AutoEncoder(load_config(None, [*TINY, "entropy_model=factorized", f"ste_decoder={ste_decoder}"]))
    with torch.no_grad():
        model.entropy_bottleneck.quantiles[:, :, 1] = torch.linspace(-0.3, 0.3, model.latent_shape[0])[:, None]
    medians = compressai_adapter.medians(model.entropy_bottleneck).detach().reshape(1, -1, 1, 1)
    seen, decode = {}, model.decode

    def spy(y_hat):
        seen["y_hat"] = y_hat
        return decode(y_hat)

    model.decode = spy
    model.train()
    x_hat, likelihoods = model(torch.rand(4, 3, 32, 32))
    symbols = seen["y_hat"] - medians
    assert torch.allclose(symbols, symbols.round(), atol=1e-5) == ste_decoder
    x_hat.square().mean().backward()
    assert model.to_latent.weight.grad.abs().sum() > 0  # straight-through: the encoder still learns
    assert likelihoods.shape[1] == model.latent_shape[0]

    model.eval()  # at evaluation both settings decode the coder's own rounding
    y = model.encode(torch.rand(2, 3, 32, 32))
    model.encode = lambda x: y
    model(torch.zeros(2, 3, 32, 32))
    assert torch.allclose(seen["y_hat"], torch.round(y - medians) + medians)


def test_quant_gap_feeds_the_decoder_the_coders_latents_and_the_others(tmp_path, synth_cache, codec_run):
    from cifarae import data
    from cifarae.evaluation import load_model
    from cifarae.tasks import quantize_8bit

    out = tmp_path / "gap.json"
    run_script(PROBES + "quant_gap.py", "--data", synth_cache, "--runs", codec_run, "--out", out, "--images", "40")
    result = json.loads(out.read_text())
    row = result["runs"][str(codec_run)]
    assert result["images"] == 40 and row["rd_lambda"] == 0.01
    # "coded" is what a file decodes to: the model's own evaluation forward, which rounds about the medians
    model, cfg = load_model(checkpoint.load(codec_run, "best"))
    dataset = data.load(synth_cache, cfg.val_size, cfg.split_seed)
    x = dataset.images["val"][data.stratified_subset(dataset.labels["val"], 40, seed=0)].float() / 255
    with torch.no_grad():
        mse = (quantize_8bit(model(x)[0]) - x).double().pow(2).mean().item()
    assert row["psnr_coded"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)
    assert len({round(row[f"psnr_{k}"], 6) for k in ("coded", "rounded", "noisy", "float")}) > 1

    missing = tmp_path / "nope"
    proc = run_script(PROBES + "quant_gap.py", "--data", synth_cache, "--runs", missing, "--out", out, check=False)
    assert_one_line_error(proc, "nope")


# ---------------------------------------------------------------------------- encoder-side refinement
def code_bits(codec, symbols):
    """Per image: the entropy model's bits for the symbols a file holds."""
    return lib.latent_rate(codec.model.entropy_bottleneck, codec.context, symbols.double(), symbols.double())


def rd_loss(codec, images, symbols):
    """Per image: the entropy model's bits for a file's symbols (per pixel) + λ·255²·MSE of their 8-bit decode."""
    bits = code_bits(codec, symbols)
    decoded = torch.stack([codec.synthesize(s, *images.shape[2:]) for s in symbols])
    mse = (decoded.double() - images.double()).div(255).pow(2).flatten(1).mean(1)
    return bits / (images.shape[2] * images.shape[3]) + codec.cfg.rd_lambda * 255**2 * mse


def test_refinement_lowers_the_rate_distortion_loss_of_what_the_files_hold(codec, codec_run, images):
    refined = lib.load_codec(codec_run, refine=lib.Refinement(steps=30))
    before = rd_loss(codec, images, codec.symbols(images))
    after = rd_loss(refined, images, refined.symbols(images))
    assert after.mean() < 0.95 * before.mean()
    # A smaller lambda trades distortion for rate: fewer bits than refining at the model's own lambda.
    thrifty = lib.load_codec(codec_run, refine=lib.Refinement(steps=30, lambda_scale=0.25))
    bits = [code_bits(c, c.symbols(images)).mean() for c in (refined, thrifty)]
    assert bits[1] < bits[0]


def test_refined_files_are_ordinary_files_for_the_same_model(codec, codec_run, images):
    refined = lib.load_codec(codec_run, refine=lib.Refinement(steps=10))
    assert refined.model_id == codec.model_id  # refinement is the encoder's business: same model, same decoder
    files = refined.compress(images[:6], batch_size=6)
    assert files != codec.compress(images[:6])
    decoded = torch.stack([codec.decompress(f) for f in files])
    assert torch.equal(decoded, refined.reconstruct(images[:6]))
    # Each image's latents move as if it were alone: the batch does not change a bit.
    assert files == [refined.compress(images[i : i + 1])[0] for i in range(6)]
    # Padding: only the image's own pixels count in the loss, and odd sizes still round-trip.
    odd = torch.randint(0, 256, (2, 3, 17, 45), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    decoded = torch.stack([codec.decompress(f) for f in refined.compress(odd)])
    assert decoded.shape == odd.shape and torch.equal(decoded, refined.reconstruct(odd))


def test_cli_refine_steps_and_bad_refinement_settings(tmp_path, capsys, codec, codec_run, images):
    png = save_png(tmp_path / "a.png", images[0])
    code, out, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae", "--model", codec_run, "--refine-steps", 5)
    assert code == 0, err
    refined = lib.load_codec(codec_run, refine=lib.Refinement(steps=5))
    assert (tmp_path / "a.cae").read_bytes() == refined.compress(images[:1])[0]
    code, out, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a.png", "--model", codec_run)
    assert code == 0, err
    assert torch.equal(load_png(tmp_path / "a.png"), refined.reconstruct(images[:1])[0])
    code, out, err = cli(capsys, "compress", png, "-o", tmp_path / "b.cae", "--model", codec_run, "--refine-steps", -1)
    assert_user_error(code, err, "refinement needs steps >= 0")
    assert not (tmp_path / "b.cae").exists()


def test_refinement_runs_a_pluggable_objective_in_the_librarys_loop(codec, codec_run, images):
    seen = []

    def shipped(s: lib.RefinementStep):  # the shipped objective, watched
        seen.append((s.step, s.steps, s.height, s.width, s.lam, s.y.shape[0]))
        return lib.rate_distortion(s)

    x = images[:3, :, :29, :30]
    plain = lib.load_codec(codec_run, refine=lib.Refinement(steps=4, lambda_scale=0.5))
    watched = lib.load_codec(codec_run, refine=lib.Refinement(steps=4, lambda_scale=0.5, objective=shipped))
    assert watched.compress(x) == plain.compress(x)
    lam = codec.cfg.rd_lambda * 0.5 * 255**2
    assert seen == [(k, 4, 29, 30, lam, 3) for k in range(4)]
    assert watched.refine.tag == "refine4x0.5-shipped" and plain.refine.tag == "refine4x0.5"
    assert repr(watched.refine) == "Refinement(steps=4, lr=0.02, lambda_scale=0.5)"

    def distortion(s: lib.RefinementStep):  # another objective: distortion alone spends more bits
        y_hat = s.y + (torch.round(s.y - s.medians) + s.medians - s.y).detach()
        return (s.model.decode(y_hat)[:, :, : s.height, : s.width] - s.target).pow(2).sum()

    greedy = lib.load_codec(codec_run, refine=lib.Refinement(steps=30, objective=distortion))
    shipped30 = lib.load_codec(codec_run, refine=lib.Refinement(steps=30))
    assert code_bits(greedy, greedy.symbols(images)).mean() > code_bits(shipped30, shipped30.symbols(images)).mean()
    files = greedy.compress(images[:2])  # ordinary files of the same model
    assert torch.equal(torch.stack([codec.decompress(f) for f in files]), greedy.reconstruct(images[:2]))


def test_rd_eval_refines_per_run_and_merges_parallel_jobs(tmp_path, synth_cache, codec_run):
    common = ["--data", synth_cache, "--splits", "test", "--limit", "10", "--no-wandb", "--refine-steps", "3"]
    for name, scale in (("one", "1"), ("two", "0.5")):
        out = tmp_path / name
        run_script("rd_eval.py", *common, "--runs", codec_run, "--refine-lambda-scales", scale, "--out", out)
        assert len(list((out / "files" / f"{codec_run.name}-refine3x{scale}" / "test").glob("*.cae"))) == 10
    proc = run_script(
        "rd_eval.py", *common, "--runs", codec_run, codec_run, "--refine-lambda-scales", "1", "0.5",
        "--out", tmp_path / "both", "--reuse", tmp_path / "one" / "rd.json", tmp_path / "two" / "rd.json",
    )  # fmt: skip
    assert proc.stdout.count("reused from") == 2 and not (tmp_path / "both" / "files").exists()
    points = json.loads((tmp_path / "both" / "rd.json").read_text())["points"]["test"]["cae"]
    assert [p["refine"] for p in points] == ["refine3x1", "refine3x0.5"]
    assert points[0]["refine_lambda"] == 2 * points[1]["refine_lambda"]
    bad = run_script("rd_eval.py", *common, "--runs", codec_run, "--refine-lambda-scales", "1", "0.5", "--out",
                     tmp_path / "bad", check=False)  # fmt: skip
    assert_one_line_error(bad, "one per run")


def test_refine_probe_codes_real_files_for_every_variant(tmp_path, synth_cache, codec_run):
    """refine_probe.py: its "ste" rows reproduce the shipped refinement (same loss, written per image),
    the other variants change the files, and the coder-overhead figures count real streams."""
    from cifarae import data

    out = tmp_path / "probe.json"
    run_script(PROBES + "refine_probe.py", "--data", synth_cache, "--run", codec_run, "--far-run", codec_run,
               "--out", out, "--images", "10", "--prior-images", "10", "--mse-refs", "0.01")  # fmt: skip
    r = json.loads(out.read_text())
    rows = {(p["run"], p["variant"], p.get("scale"), p.get("mse_ref")): p for p in r["points"]}
    assert len(rows) == 9 and r["images"] == 10
    shipped = lib.load_codec(codec_run, refine=lib.Refinement(steps=50))
    dataset = data.load(synth_cache, shipped.cfg.val_size, shipped.cfg.split_seed)
    val = dataset.images["val"][data.stratified_subset(dataset.labels["val"], 10, shipped.cfg.split_seed)]
    expect = rd.codec_point(shipped, val, None)
    for key in (("model", "ste", 1.0, None), ("far", "ste", 1.0, None)):
        assert rows[key]["bpp"] == pytest.approx(expect["bpp"], rel=0.01)
        assert rows[key]["psnr"] == pytest.approx(expect["psnr"], abs=0.02)
    plain = rd.codec_point(lib.load_codec(codec_run), val, None)
    assert rows[("model", "none", None, None)]["psnr"] == pytest.approx(plain["psnr"], abs=1e-9)
    assert rows[("model", "sga", 1.0, None)]["psnr"] != rows[("model", "ste", 1.0, None)]["psnr"]
    overhead = r["coder_overhead"]
    assert overhead["stream_bytes"] == pytest.approx(plain["bpp_payload"] * 32 * 32 / 8)
    assert 0 < overhead["overhead_bytes"] < 16  # rANS: a 64-bit state flushed, 32-bit words
    prior = r["refitted_prior"]
    assert prior["bpp_refitted_prior"]["train"] < prior["bpp_model_prior"]["train"]


# ---------------------------------------------------------------------------- checkerboard context model
@pytest.fixture(scope="module")
def context_run(codec_run, synth_cache, tmp_path_factory):
    run = tmp_path_factory.mktemp("context") / "run"
    shutil.copytree(codec_run, run)
    fit = ["--images", "500", "--epochs", "30", "--hidden", "32", "--batch-size", "50"]
    codec_context.main(["--run", str(run), "--data", str(synth_cache), *fit])
    return run


@pytest.fixture(scope="module")
def context_codec(context_run):
    return lib.load_codec(context_run)


def test_context_model_codes_the_same_latents_in_fewer_real_bytes(context_run, codec, images):
    context = lib.load_codec(context_run)
    assert context.source.endswith("context.pt") and context.context is not None
    assert context.model_id != codec.model_id
    stats = checkpoint.load(context_run / "context.pt")["context_fit"]
    assert stats["bpp_after"] < 0.97 * stats["bpp_before"]
    assert json.loads((context_run / "context_fit.json").read_text())["bpp_after"] == stats["bpp_after"]
    # The latents and the decoder are the plain codec's: the same pixels, fewer bytes.
    assert torch.equal(context.symbols(images), codec.symbols(images))
    files, plain = context.compress(images), codec.compress(images)
    assert sum(map(len, files)) < sum(map(len, plain))
    assert torch.equal(torch.stack([context.decompress(f) for f in files]), codec.reconstruct(images))
    with pytest.raises(UserError, match="written by model"):
        codec.decompress(files[0])


def test_context_files_round_trip_across_stream_slices(context_codec, images, monkeypatch):
    odd = torch.randint(0, 256, (2, 3, 21, 38), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for slice_symbols in (7, 64, lib.SLICE_SYMBOLS):  # slices that end inside the anchors, at and after them
        monkeypatch.setattr(lib.format, "SLICE_SYMBOLS", slice_symbols)  # where the Codec reads it
        latents = context_codec.model.latent_shape[0] * math.prod(context_codec.latent_hw(21, 38))
        assert context_codec.num_streams(21, 38) == -(-latents // slice_symbols)
        for batch in (images[:3], odd):
            files = context_codec.compress(batch)
            decoded = torch.stack([context_codec.decompress(f) for f in files])
            assert decoded.shape == batch.shape and torch.equal(decoded, context_codec.reconstruct(batch))


@FUZZ
@given(st.data())
def test_fuzz_mutated_context_files(context_codec, images, data):
    mutate_and_decode(context_codec, images, data)


def test_context_files_truncated_or_corrupt_are_refused(context_codec, images):
    data = context_codec.compress(images[:1])[0]
    for n in range(len(data)):
        with pytest.raises(UserError):
            context_codec.decompress(data[:n])
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(UserError):
            context_codec.decompress(bytes(bad))
    body = data[:-4]
    streams = context_codec.parse(data).streams
    for pos in range(len(body) - len(streams[-1]), len(body)):  # checksum resealed: the stream check must hold
        bad = bytearray(body)
        bad[pos] ^= 0x01
        with pytest.raises(UserError, match="corrupt"):
            context_codec.decompress(reseal(bytes(bad)))


def test_refinement_under_the_context_model_lowers_its_loss_and_decodes_with_it(context_run, context_codec, images):
    refined = lib.load_codec(context_run, refine=lib.Refinement(steps=20))
    before, after = (rd_loss(c, images, c.symbols(images)).mean() for c in (context_codec, refined))
    assert after < 0.95 * before
    files = refined.compress(images[:4])
    assert torch.equal(torch.stack([context_codec.decompress(f) for f in files]), refined.reconstruct(images[:4]))


def test_a_mismatched_context_model_is_a_one_line_error(context_run, tmp_path):
    ckpt = checkpoint.load(context_run / "context.pt")
    for fit, context in (({**ckpt["context_fit"], "hidden": 7}, ckpt["context"]), ({}, ckpt["context"])):
        path = tmp_path / "context.pt"
        bad = {k: v for k, v in ckpt.items() if k != "path"}
        checkpoint.save_atomic({**bad, "context_fit": fit, "context": context}, path)
        with pytest.raises(UserError, match="another architecture|without its width"):
            lib.load_codec(path)


def test_codec_context_errors_are_one_line(tmp_path, synth_cache):
    proc = run_script("codec_context.py", "--run", tmp_path / "nothing", "--data", synth_cache, check=False)
    assert_one_line_error(proc, "does not exist")
    proc = run_script("codec_context.py", "--run", tmp_path, "--data", synth_cache, "--epochs", "0", check=False)
    assert_one_line_error(proc, "--epochs")


def load_probe(name: str):
    """A probe under experiments/codec/ as a module (experiments/ is not a package)."""
    return load_script(REPO / "experiments" / "codec" / f"{name}.py", name)


def test_floor_bootstrap_decodes_the_files_again_and_pairs_the_images(tmp_path, synth_cache, codec_run):
    out = tmp_path / "rd"
    run_script(
        "rd_eval.py", "--data", synth_cache, "--runs", codec_run, codec_run, "--refine-steps", "3",
        "--refine-lambda-scales", "1", "0.1", "--out", out, "--splits", "test", "--limit", "20", "--no-wandb",
    )  # fmt: skip
    points = json.loads((out / "rd.json").read_text())["points"]["test"]
    boot = load_probe("floor_bootstrap")
    codec = lib.load_codec(codec_run)
    cfg = codec.cfg
    dataset = data_lib.load(synth_cache, cfg.val_size, cfg.split_seed)
    images = dataset.images["test"][data_lib.stratified_subset(dataset.labels["test"], 20, cfg.split_seed)]
    # Decoding the files again gives rd_eval's bytes and PSNR, per point; WebP per image gives its points.
    folders = [out / "files" / f"{codec_run.name}-{p['refine']}" for p in points["cae"]]
    for p, folder in zip(points["cae"], folders):
        sizes, psnr = boot.our_point(codec, folder / "test", images)
        assert sizes.mean() == pytest.approx(p["bytes_per_image"]) and psnr.mean() == pytest.approx(p["psnr"])
    webp = boot.webp_points(images)
    for q, sizes, psnr in zip(rd.WEBP_QUALITIES, *webp):
        point = next(p for p in points["webp"] if p["quality"] == q)
        assert 8 * sizes.mean() / 1024 == pytest.approx(point["bpp"]) and psnr.mean() == pytest.approx(point["psnr"])
    # A curve exactly 1 dB above WebP on every image is 1 dB above it in every resample: images stay paired.
    above = [(sizes, psnr + 1.0) for sizes, psnr in zip(*webp)]
    rng = np.random.default_rng(0)
    for idx in (np.arange(20), *(rng.integers(0, 20, 20) for _ in range(5))):
        assert boot.gain_at(2.0, above, webp, 1024, idx) == pytest.approx(1.0)
    # The tiny codec's points sit below WebP's lowest rate: a one-line error, no JSON.
    proc = run_script(
        PROBES + "floor_bootstrap.py", "--data", synth_cache, "--runs", codec_run, codec_run, "--files", *folders,
        "--splits", "test", "--limit", "20", "--resamples", "20", "--out", tmp_path / "boot.json", check=False,
    )  # fmt: skip
    assert_one_line_error(proc, "do not both reach 2 bpp")
    assert not (tmp_path / "boot.json").exists()
