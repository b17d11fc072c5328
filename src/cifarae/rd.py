"""Rate-distortion measurement: our codec files, Pillow's JPEG, WebP and AVIF, per-image curves, BD-rates.

Every bpp is 8 * (bytes) / (pixels) of the actual encoded files. Distortion is measured on the
8-bit images each decoder returns, against the source pixels (for the CIFAR-10 archive, the
JPEG-decoded q75 pixels: see ../shared/data/README.md).
"""

from __future__ import annotations

import io
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .files import atomic_path
from .metrics import psnr

JPEG_QUALITIES = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
# 5-90 as asked; 0-3 as well, since WebP's lowest qualities are what reach 1 bpp on CIFAR-10.
WEBP_QUALITIES = (0, 1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)


# ---------------------------------------------------------------------------- metrics
def quality_metrics(originals: torch.Tensor, decoded: torch.Tensor) -> dict:
    """PSNR (mean of per-image PSNR, and PSNR of the mean MSE) and SSIM (mean) on uint8 images."""
    from torchmetrics.functional.image import structural_similarity_index_measure  # ~2 s to import: on use

    a, b = originals.double().div(255), decoded.double().div(255)
    mse = (a - b).pow(2).flatten(1).mean(1)
    per_image = psnr(mse)
    ssim = []
    for i in range(0, len(a), 1000):
        ssim.append(
            structural_similarity_index_measure(
                b[i : i + 1000].float(), a[i : i + 1000].float(), data_range=1.0, reduction="none"
            )
        )
    return {
        "psnr": per_image.mean().item(),
        "psnr_of_mean_mse": psnr(mse.mean().item()),
        "ssim": torch.cat(ssim).mean().item(),
        "mse": mse.mean().item(),
    }


# ---------------------------------------------------------------------------- memory
def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- JPEG / WebP / AVIF
def jpeg_scan_bytes(data: bytes) -> int:
    """Bytes of entropy-coded data: everything after each SOS header up to the next non-RST marker."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, total, n = 2, 0, len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:
            raise ValueError(f"JPEG marker expected at {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker != 0xDA:
            pos += 2 + length
            continue
        start = end = pos + 2 + length
        while True:
            end = data.index(b"\xff", end)
            nxt = data[end + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:  # stuffed byte or restart marker: still scan data
                end += 2
                continue
            break
        total += end - start
        pos = end
    return total


def avif_mdat_bytes(data: bytes) -> int:
    """Bytes of coded image data in an AVIF (HEIF) file: the contents of its top-level ``mdat`` boxes
    (the AV1 bitstream), without their 8- or 16-byte box headers."""
    if data[4:8] != b"ftyp":
        raise ValueError("not an ISO BMFF (HEIF/AVIF) file")
    pos, total, n = 0, 0, len(data)
    while pos + 8 <= n:
        size, kind, header = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8], 8
        if size == 1:  # a 64-bit size follows the type
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # the last box runs to the end of the file
            size = n - pos
        if size < header or pos + size > n:
            raise ValueError(f"corrupt box {kind!r} at {pos}")
        if kind == b"mdat":
            total += size - header
        pos += size
    return total


def webp_bitstream_bytes(data: bytes) -> int:
    """Bytes of coded image data in a WebP file: the data of its ``VP8 `` / ``VP8L`` RIFF chunks."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    pos, total = 12, 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            total += size
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return total


# Pillow's encoder settings beyond the quality (JPEG and WebP: Pillow's defaults, 4:2:0), and each format's
# payload: its entropy-coded data without the container around it.
PILLOW_SETTINGS = {"JPEG": {}, "WEBP": {}, "AVIF": {"speed": 0, "subsampling": "4:4:4"}}
PAYLOAD_BYTES = {"JPEG": jpeg_scan_bytes, "WEBP": webp_bitstream_bytes, "AVIF": avif_mdat_bytes}


@dataclass(frozen=True)
class PillowCoded:
    """A batch coded by Pillow and decoded again."""

    files: list[bytes]  # each image's file
    decoded: torch.Tensor  # N x 3 x H x W uint8: what Pillow decodes each file to (RGB)
    file_bytes: np.ndarray  # N: whole files
    payload_bytes: np.ndarray  # N: JPEG scan data, WebP VP8/VP8L chunks, AVIF mdat contents


def pillow_roundtrip(images: torch.Tensor, fmt: str, quality: int) -> PillowCoded:
    """Code N x 3 x H x W uint8 images one by one with Pillow's ``fmt`` (JPEG, WEBP or AVIF; settings in
    PILLOW_SETTINGS) at ``quality``, and decode the files again. Every image round trip through Pillow in
    the project goes through here, so that every baseline counts its bytes the same way."""
    if fmt not in PILLOW_SETTINGS:
        raise ValueError(f"unsupported format {fmt!r}; one of {', '.join(PILLOW_SETTINGS)}")
    files, decoded = [], []
    for arr in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt, quality=quality, **PILLOW_SETTINGS[fmt])
        files.append(buf.getvalue())
        with Image.open(io.BytesIO(files[-1])) as img:
            decoded.append(np.asarray(img.convert("RGB")))
    return PillowCoded(
        files=files,
        decoded=torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous(),
        file_bytes=np.array([len(f) for f in files], dtype=np.int64),
        payload_bytes=np.array([PAYLOAD_BYTES[fmt](f) for f in files], dtype=np.int64),
    )


# ---------------------------------------------------------------------------- per-image curves, BD-rate, bootstrap
def interpolate(points: list[dict], bpp: float) -> float | None:
    """PSNR at ``bpp`` along the curve (linear between the neighbouring points); None outside it."""
    pts = sorted((p["bpp"], p["psnr"]) for p in points)
    if not pts or not pts[0][0] <= bpp <= pts[-1][0]:
        return None
    xs, ys = zip(*pts)
    return float(np.interp(bpp, xs, ys))


# AVIF at speed 0 takes ~0.2 s per 32x32 image: six qualities spanning 0.5-3 bpp of payload.
AVIF_QUALITIES = (15, 30, 45, 60, 70, 80)
GAP_BPPS = (0.5, 1.0, 2.0, 3.0)


def per_image_psnr(originals: torch.Tensor, decoded: torch.Tensor) -> np.ndarray:
    mse = (originals.double() - decoded.double()).div(255).pow(2).flatten(1).mean(1)
    return psnr(mse).numpy()


@dataclass
class Curve:
    """One coder's rate-distortion points, kept per image so that any subset can be re-averaged."""

    name: str
    settings: list  # one label per point (a quality or level)
    file_bytes: np.ndarray  # points x images
    payload_bytes: np.ndarray  # points x images: the coded data alone (JPEG scan, AVIF mdat, ...)
    psnr: np.ndarray  # points x images
    pixels: int

    def points(self, idx: np.ndarray | None = None, payload: bool = False) -> list[dict]:
        idx = slice(None) if idx is None else idx
        sizes = self.payload_bytes if payload else self.file_bytes
        return [
            {"bpp": 8 * float(b[idx].mean()) / self.pixels, "psnr": float(p[idx].mean())}
            for b, p in zip(sizes, self.psnr)
        ]

    def save(self, path: Path) -> None:
        """The per-image arrays as one .npz, written atomically (a cache: name and settings are the caller's)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            arrays = {"file_bytes": self.file_bytes, "payload_bytes": self.payload_bytes, "psnr": self.psnr}
            np.savez(f, pixels=self.pixels, **arrays)

    @classmethod
    def load(cls, path: Path, name: str, settings: list) -> Curve:
        z = np.load(path)
        return cls(name, settings, z["file_bytes"], z["payload_bytes"], z["psnr"], int(z["pixels"]))


def pillow_curve(images: torch.Tensor, fmt: str, qualities: tuple[int, ...], cache_dir: Path | None = None) -> Curve:
    """Pillow's ``fmt`` at each quality, per image. With ``cache_dir``, the result is kept there under a key of
    the images, format, qualities, settings and Pillow version, and read back on the next call (AVIF is slow)."""
    if cache_dir is not None:
        import hashlib
        import json

        import PIL

        key = hashlib.sha256(images.numpy().tobytes())
        key.update(json.dumps([fmt, list(qualities), PILLOW_SETTINGS[fmt], PIL.__version__]).encode())
        path = Path(cache_dir) / f"{fmt.lower()}-{key.hexdigest()[:16]}.npz"
        if path.is_file():
            return Curve.load(path, fmt.lower(), list(qualities))
        curve = pillow_curve(images, fmt, qualities)
        path.parent.mkdir(parents=True, exist_ok=True)
        curve.save(path)
        return curve
    sizes, payloads, psnrs = [], [], []
    for q in qualities:
        coded = pillow_roundtrip(images, fmt, q)
        sizes.append(coded.file_bytes)
        payloads.append(coded.payload_bytes)
        psnrs.append(per_image_psnr(images, coded.decoded))
    pixels = images.shape[2] * images.shape[3]
    return Curve(fmt.lower(), list(qualities), np.array(sizes), np.array(payloads), np.array(psnrs), pixels)


def hyperprior_curve(codec, images: torch.Tensor, file_dir: Path | None) -> tuple[Curve, list[dict]]:
    """Every quality level of a HyperpriorCodec: real files (written to ``file_dir``/q<level>/ when given),
    read back and decoded; with each level's speed and memory."""
    n, _, height, width = images.shape
    sizes, payloads, psnrs, stats = [], [], [], []
    for level in range(codec.levels):
        reset_peak_rss()
        t0 = time.perf_counter()
        files = codec.compress(images, level)
        encode_s, encode_mb = time.perf_counter() - t0, peak_rss_mb()
        if file_dir is not None:
            folder = file_dir / f"q{level}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(files):
                (folder / f"{i:05d}.cae").write_bytes(data)
            files = [(folder / f"{i:05d}.cae").read_bytes() for i in range(n)]  # decode what is on disk
        reset_peak_rss()
        t0 = time.perf_counter()
        decoded = torch.stack([codec.decompress(f) for f in files])
        decode_s, decode_mb = time.perf_counter() - t0, peak_rss_mb()
        sizes.append([len(f) for f in files])
        payloads.append([len(f) - codec.parse(f).header_bytes for f in files])
        psnrs.append(per_image_psnr(images, decoded))
        stats.append(
            {
                "level": level,
                "rd_lambda": codec.cfg.level_lambdas[level],
                **quality_metrics(images, decoded),
                "encode_img_per_s": n / encode_s,
                "decode_img_per_s": n / decode_s,
                "encode_peak_rss_mb": encode_mb,
                "decode_peak_rss_mb": decode_mb,
            }
        )
    levels = list(range(codec.levels))
    return Curve("cae", levels, np.array(sizes), np.array(payloads), np.array(psnrs), height * width), stats


def bd_rate(ours: list[dict], reference: list[dict], within: tuple[float, float] | None = None) -> float | None:
    """Bjøntegaard delta rate (%): the mean bitrate difference of ``ours`` against ``reference`` at equal
    PSNR, over the PSNR range both curves cover (cubic fits of log-rate against PSNR, as VCEG-M33 and
    CompressAI's papers report it), narrowed to ``within`` (dB) when given, so that two codecs whose curves
    end at different PSNRs can be held to the same range. Negative: ours needs fewer bits. None when the
    ranges do not overlap."""

    def fit(points):
        pts = sorted((p["psnr"], np.log(p["bpp"])) for p in points if p["bpp"] > 0)
        d, r = map(np.array, zip(*pts))
        return np.polyfit(d, r, min(3, len(d) - 1)), d.min(), d.max()

    (pa, lo_a, hi_a), (pb, lo_b, hi_b) = fit(ours), fit(reference)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if within is not None:
        lo, hi = max(lo, within[0]), min(hi, within[1])
    if hi <= lo:
        return None
    ia, ib = np.polyint(pa), np.polyint(pb)
    mean_diff = (np.polyval(ia, hi) - np.polyval(ia, lo) - np.polyval(ib, hi) + np.polyval(ib, lo)) / (hi - lo)
    return float((np.exp(mean_diff) - 1) * 100)


def compare(ours: Curve, reference: Curve, payload: bool, resamples: int = 1000, seed: int = 0) -> dict:
    """Our whole files against ``reference`` (its payload alone when ``payload``): the PSNR gap at GAP_BPPS
    and the BD-rate, each with a paired bootstrap over images (2.5 and 97.5 percentiles)."""

    def stats(idx):
        a, b = ours.points(idx), reference.points(idx, payload)
        out = {f"gap_db@{x:g}bpp": _diff(interpolate(a, x), interpolate(b, x)) for x in GAP_BPPS}
        out["bd_rate_pct"] = bd_rate(a, b)
        return out

    full = stats(None)
    rng = np.random.default_rng(seed)
    n = ours.psnr.shape[1]
    draws = [stats(rng.integers(0, n, n)) for _ in range(resamples)]
    result = {}
    for key, value in full.items():
        sample = np.array([d[key] for d in draws if d[key] is not None], dtype=float)
        ci = [float(np.percentile(sample, 2.5)), float(np.percentile(sample, 97.5))] if len(sample) else None
        result[key] = {"value": value, "ci95": ci}
    return result


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def plot_curves(curves: list[tuple[str, list[dict], str]], path: Path, title: str) -> None:
    """PSNR vs bpp, one line per (label, points, style), up to 6 bpp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for label, pts, style in curves:
        pts = sorted(pts, key=lambda p: p["bpp"])
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], style, label=label, markersize=4)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, mean over images)")
    ax.set_xlim(0, 6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
