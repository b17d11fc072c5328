"""What would a file save by leaving out its rANS state's zero high bytes? (issue #26: the floors count every byte)

A file's stream is CompressAI's rANS output: 32-bit words, the first two of them the coder's final 64-bit state (low
word first, little-endian). The state lies in [2^31, 2^63), log-uniformly, so its high bytes are often zero. A
format could leave out up to three of them (bytes 7, 6, 5 of the stream, from the top) and say how many in the
stream's length mod 4, which was always 0 in format 4; the decoder would put them back. Format 5 does
(src/cifarae/codec/format.py): this measured the saving on format-4 files before it; run now, it counts the same
bytes (parsing puts them back), but the shipped points it moves are still format 4's.
This counts, for the shipped model at every level on the first IMAGES stratified validation images, how many such
bytes each file has, and what the curve would gain at 1 and 2 bpp if each file were that much shorter (the shipped
model's points on the same images, outs/codec_levels/compare.json, moved left by each level's mean saving).

    python experiments/codec/state_bytes.py --data DATA [--images 1000] [--out outs/codec_state_bytes]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from cifarae import data as data_lib
from cifarae.codec.shipped import default_model
from cifarae.errors import UserError, cli_main
from cifarae.files import write_atomic
from cifarae.rd import interpolate

STATE_HIGH_BYTES = (7, 6, 5)  # the high word's bytes, from the top; a fourth would leave the length ambiguous
SHIPPED_POINTS = Path("outs/codec_levels/compare.json")  # the shipped model on the first 1,000 validation images


def zero_high_bytes(stream: bytes) -> int:
    """How many of the state's high bytes, from the top, are zero (at most three)."""
    n = 0
    for i in STATE_HIGH_BYTES:
        if stream[i]:
            break
        n += 1
    return n


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the JPEG q75 CIFAR-10 archive (or its prepared cache)")
    p.add_argument("--images", type=int, default=1000, help="stratified validation images")
    p.add_argument("--out", default="outs/codec_state_bytes")
    args = p.parse_args(argv)
    shipped = json.loads(SHIPPED_POINTS.read_text())
    if shipped["val_images"] != args.images:
        raise UserError(f"{SHIPPED_POINTS} holds {shipped['val_images']} images' points; pass --images to match")
    codec = default_model()
    images, _ = data_lib.load(args.data).subset("val", args.images)
    pixels = images.shape[2] * images.shape[3]
    levels = []
    for q in range(codec.levels):
        streams = [codec.parse(f).streams for f in codec.compress(images, q)]
        if any(len(s) != 1 or len(s[0]) % 4 for s in streams):
            raise UserError("a file has more than one stream, or one whose length is not whole 32-bit words")
        counts = Counter(zero_high_bytes(s[0]) for s in streams)
        mean = sum(k * n for k, n in counts.items()) / len(streams)
        levels.append({"level": q, "zero_bytes": {str(k): counts[k] for k in range(4)}, "mean_bytes": mean,
                       "bpp": 8 * mean / pixels})  # fmt: skip
        print(f"q{q}: {mean:.2f} bytes", flush=True)
    before = shipped["models"]["shipped"]["points"]
    after = [{"bpp": p["bpp"] - lv["bpp"], "psnr": p["psnr"]} for p, lv in zip(before, levels)]
    result = {
        "val_images": args.images,
        "model_id": codec.model_id.hex(),
        "levels": levels,
        "mean_bytes": sum(lv["mean_bytes"] for lv in levels) / len(levels),
        **{f"gain_db@{x}bpp": interpolate(after, x) - interpolate(before, x) for x in (1, 2)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "state_bytes.json", json.dumps(result, indent=1).encode())
    print({k: v for k, v in result.items() if k != "levels"})


if __name__ == "__main__":
    main()
