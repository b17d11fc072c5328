"""The v2 codec: mean-scale hyperprior with quality levels, exact side information, shipped models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import synth
import torch
from conftest import run_script
from hypothesis import given
from hypothesis import strategies as st
from test_codec import FUZZ, assert_user_error, cli, load_png, save_png

from cifarae import rd
from cifarae.codec import Refinement, load_codec
from cifarae.codec import format as fmt
from cifarae.codec.hyperprior import ExactHyperSynthesis
from cifarae.codec.hyperprior_codec import HyperpriorCodec
from cifarae.codec.shipped import (
    DEFAULT_MODEL,
    MANIFEST,
    MAX_FILE_BYTES,
    default_model,
    export,
    load_shipped,
    models_dir,
    read_manifest,
)
from cifarae.config import load_config
from cifarae.errors import UserError
from cifarae.models import AutoEncoder

V2 = [
    "widths=[8,16,16,16]",
    "latent_size=8",
    "entropy_model=hyperprior",
    "latent_channels=8",
    "skip_channels=4",
    "hyper_channels=16",
    "rd_lambdas=[0.004,0.03,0.2]",
    "precision=fp32",
    "epochs=1",
    "batch_size=32",
    "val_size=100",
]


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory, synth_cache):
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
def images():
    x, _ = synth.make_images(1, seed=3)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def test_every_level_round_trips_to_the_models_reconstruction_and_rate_rises_with_level(v2, images):
    sizes = []
    for level in range(v2.levels):
        files = v2.compress(images, level)
        decoded = torch.stack([v2.decompress(f) for f in files])
        assert torch.equal(decoded, v2.reconstruct(images, level))
        assert all(fmt.parse(f, v2.num_streams(32, 32), version=2).quality == level for f in files)
        sizes.append(sum(map(len, files)))
    assert sizes[0] < sizes[-1], sizes


def test_batch_size_and_threads_do_not_change_a_single_bit(v2, images):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [v2.compress(images[i : i + 1], 1)[0] for i in range(len(images))]
        torch.set_num_threads(2)
        batched = v2.compress(images, 1, batch_size=len(images))
    finally:
        torch.set_num_threads(threads)
    assert one == batched


def test_exact_hyper_synthesis_is_batch_invariant_integer_and_close_to_the_float_network(v2):
    lc = v2.lc
    z = torch.randint(-6, 7, (5, lc.entropy_bottleneck.channels, 3, 4), generator=torch.Generator().manual_seed(0))
    exact = v2.hyper(z, 6, 8)
    assert torch.equal(exact, torch.floor(exact))  # integers at 2**FRACTION_BITS
    assert torch.equal(exact[2:3], v2.hyper(z[2:3], 6, 8))
    with torch.no_grad():
        floating = lc.h_s(z.double())[:, :, :6, :8] * 2**12
    assert (exact - floating).abs().max() < 2**12 * 0.01  # within 0.01 of the float network


def test_only_convolutions_relu_and_pixel_shuffle_have_an_exact_form():
    with pytest.raises(TypeError, match="GELU"):
        ExactHyperSynthesis(torch.nn.Sequential(torch.nn.GELU()))


def test_odd_sizes_round_trip(v2):
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 37, 51), dtype=np.uint8))
    f = v2.compress(x, 2)[0]
    assert torch.equal(v2.decompress(f)[None], v2.reconstruct(x, 2))


def test_cli_works_without_model_and_finds_the_model_by_its_id(tmp_path, capsys, use_models, images):
    png = save_png(tmp_path / "a.png", images[0])
    code, out, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae", "--quality", "2")
    assert code == 0, err
    assert (tmp_path / "a.cae").read_bytes()[3] == 2  # format version 2
    code, out, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a_out.png")
    assert code == 0, err
    v2 = load_shipped(use_models / "codec-v2")
    assert torch.equal(load_png(tmp_path / "a_out.png"), v2.reconstruct(images[:1], 2)[0])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "b.cae", "--quality", "9")
    assert_user_error(code, err, "quality 9")


def test_unknown_model_id_tampered_weights_and_old_formats_are_one_line_errors(
    tmp_path, capsys, use_models, v2, images
):
    parsed = fmt.parse(v2.compress(images[:1], 0)[0], v2.num_streams(32, 32), version=2)
    other = fmt.pack(32, 32, bytes(6), parsed.streams, 0)  # a well-formed file from another model
    (tmp_path / "other.cae").write_bytes(other)
    code, _, err = cli(capsys, "decompress", tmp_path / "other.cae", "-o", tmp_path / "o")
    assert_user_error(code, err, "not among the shipped models", "--model")

    v1 = fmt.pack(32, 32, bytes(6), [bytes(16)])
    (tmp_path / "v1.cae").write_bytes(v1)
    code, _, err = cli(capsys, "decompress", tmp_path / "v1.cae", "-o", tmp_path / "o")
    assert_user_error(code, err, "made by an older format", "version 1")

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
    assert set(manifest["files"]) == {"encoder.pt", "decoder.pt", "entropy.pt"}
    state = torch.load(shipped / "codec-v2" / "decoder.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_files(v2, images, data):
    good = v2.compress(images[:1], 1)[0]
    body = bytearray(good[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    import struct
    import zlib

    forged = bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))  # a valid checksum: the parser's turn
    try:
        out = v2.decompress(forged)
    except UserError:
        return
    assert out.dtype == torch.uint8 and out.shape[0] == 3


def test_bd_rate_of_a_curve_against_itself_and_against_twice_its_bits():
    curve = [{"bpp": b, "psnr": 20 + 6 * np.log2(b)} for b in (0.5, 1, 2, 4)]
    assert rd.bd_rate(curve, curve) == pytest.approx(0, abs=1e-9)
    double = [{"bpp": 2 * p["bpp"], "psnr": p["psnr"]} for p in curve]
    assert rd.bd_rate(curve, double) == pytest.approx(-50, abs=1e-6)
    assert rd.bd_rate(curve, [{"bpp": 1, "psnr": 90}, {"bpp": 2, "psnr": 95}]) is None


def test_rd_eval_measures_every_level_against_avif_webp_and_jpeg_with_bootstrap(tmp_path, synth_cache, shipped):
    out = tmp_path / "rd"
    run_script(
        "rd_eval.py", "--data", synth_cache, "--runs", shipped / "codec-v2", "--out", out,
        "--splits", "test", "--limit", "20", "--no-wandb", "--resamples", "50", "--refine-steps", "3",
    )  # fmt: skip
    result = json.loads((out / "rd.json").read_text())
    test = result["splits"]["test"]
    assert test["num_images"] == 20 and len(test["curves"]["cae"]) == 3 and len(test["curves"]["cae_refined"]) == 3
    assert len(list((out / "files" / "test" / "q2").glob("*.cae"))) == 20
    assert len(list((out / "files" / "test" / "refine3x1" / "q2").glob("*.cae"))) == 20
    payload = {p["quality"]: p["bpp"] for p in test["curves"]["avif_payload"]}
    whole = {p["quality"]: p["bpp"] for p in test["curves"]["avif_file"]}
    assert all(payload[q] < whole[q] for q in payload)
    assert set(test["comparisons"]) == {
        "avif_payload", "avif_file", "webp", "jpeg_scan", "refined_vs_plain", "refined_vs_avif_payload"
    }  # fmt: skip
    assert result["refinement"] == {"tag": "refine3x1", "steps": 3, "lr": 0.02, "lambda_scale": 1.0}
    assert "bd_rate_pct" in test["comparisons"]["webp"]
    assert (out / "rd_test.png").is_file() and list((out / "baselines").glob("avif-*.npz"))


def test_bad_rate_levels_are_a_one_line_config_error():
    with pytest.raises(UserError, match="rd_lambdas"):
        load_config(None, ["entropy_model=hyperprior", "rd_lambdas=[0.01,-1]"])


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


def test_the_shipped_model_works_right_after_setup(tmp_path, capsys, images, monkeypatch):
    """models/codec-v2 is in the repository: small files whose checksums hold, found with no --model."""
    monkeypatch.delenv("CIFARAE_MODELS", raising=False)
    folder = models_dir() / DEFAULT_MODEL
    sizes = [(folder / name).stat().st_size for name in read_manifest(folder)["files"]]
    assert max(sizes) <= MAX_FILE_BYTES and sum(sizes) <= 12_000_000, sizes
    png = save_png(tmp_path / "a.png", images[3])
    code, _, err = cli(capsys, "compress", png, "-o", tmp_path / "a.cae")
    assert code == 0, err
    code, _, err = cli(capsys, "decompress", tmp_path / "a.cae", "-o", tmp_path / "a_out.png")
    assert code == 0, err
    shipped_codec = load_shipped(folder)
    expected = shipped_codec.reconstruct(images[3:4], shipped_codec.levels // 2)[0]
    assert torch.equal(load_png(tmp_path / "a_out.png"), expected)


def rd_cost(codec: HyperpriorCodec, images: torch.Tensor, files: list[bytes], quality: int) -> float:
    """Mean over images of what refinement minimises, measured on real files: bpp + lambda * 255^2 * MSE."""
    decoded = torch.stack([codec.decompress(f) for f in files]).double()
    mse = (decoded - images.double()).div(255).pow(2).flatten(1).mean(1)
    bpp = torch.tensor([8 * len(f) / images[0, 0].numel() for f in files], dtype=torch.float64)
    return (bpp + codec.cfg.rd_lambdas[quality] * 255**2 * mse).mean().item()


def test_refinement_lowers_the_rd_cost_of_the_shipped_model_and_its_files_decode_unchanged(images, monkeypatch):
    """Encoder-side refinement on the trained, shipped model: the files cost less (bits + lambda * MSE, from
    the real files) at every level tried, decode with the plain model (same model id, same decoder), and
    the same images give the same files."""
    monkeypatch.delenv("CIFARAE_MODELS", raising=False)
    plain = default_model()
    refined = default_model(Refinement(steps=20))
    assert refined.model_id == plain.model_id
    batch = images[:8]
    for quality in (1, plain.levels - 1):
        files = refined.compress(batch, quality)
        assert refined.compress(batch, quality) == files
        assert rd_cost(plain, batch, files, quality) < rd_cost(plain, batch, plain.compress(batch, quality), quality)


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
