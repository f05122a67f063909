"""Slide inference throughput and memory: ``predict_slide`` with the resnet-mini WILDCAT on toy pyramidal TIFFs
of 10,000 x 10,000 and 20,000 x 20,000 pixels (written tile by tile into a temporary folder, deleted after).

Each size runs in a fresh process so its peak resident memory (``ru_maxrss``) is its own; the baseline is the
process's memory after imports, model creation and a warm-up batch, so the difference is what
``predict_slide`` adds. With the thumbnail at downsample 32 the maps are 4x larger on the 20k slide, a few
megabytes; the tiles (4x as many) must not add memory. For reference, the same model is run one tile at a
time (read, forward, next) on the first tiles of the 10k slide, the way a plain loop would do it.

    OMP_NUM_THREADS=1 python benchmarks/bench_slide.py [--sizes 10000 20000] [--tile-size 256] [--workers 0]

Peak memory is dominated by the model's activations on a batch (``--batch-size``), the same for any slide.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(args: argparse.Namespace) -> None:
    """Child process: predict one slide, print a JSON line of measurements."""
    import torch

    torch.set_num_threads(1)
    from advwsl.models.zoo import create_model
    from advwsl.wsi import SlideConfig, predict_slide
    from advwsl.wsi.predict import model_outputs

    torch.manual_seed(0)
    model = create_model("wildcat", backbone="resnet-mini", stride=8, num_classes=2).eval()
    with torch.no_grad():
        model_outputs(model, torch.rand(args.batch_size, 3, args.tile_size, args.tile_size))
    base = current_rss_mb()
    peak_before = rss_mb()
    cfg = SlideConfig(args.slide, tile_size=args.tile_size, batch_size=args.batch_size, workers=args.workers,
                      thumbnail_downsample=args.thumbnail_downsample, progress=False)
    tic = time.perf_counter()
    result = predict_slide(model, cfg)
    seconds = time.perf_counter() - tic
    maps = sum(a.nbytes for a in (result.thumbnail, result.tissue_mask, result.cam_map, result.logits))
    out = {"slide": Path(args.slide).name, "tiles": len(result.grid), "grid_tiles": result.n_grid,
           "seconds": seconds, "tiles_per_s": len(result.grid) / seconds, "baseline_rss_mb": base,
           "peak_rss_before_mb": peak_before,
           "peak_rss_mb": rss_mb(), "maps_mb": maps / 2**20, "thumbnail": list(result.thumbnail.shape[:2])}
    if args.naive:
        from advwsl.wsi import open_slide

        n = min(args.naive, len(result.grid))
        tic = time.perf_counter()
        with open_slide(args.slide) as slide, torch.no_grad():
            for i in range(n):
                x = torch.from_numpy(result.grid.read(slide, i)).permute(2, 0, 1)[None].float() / 255
                model_outputs(model, x)
        out["naive_tiles_per_s"] = n / (time.perf_counter() - tic)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--thumbnail-downsample", type=float, default=32.0)
    parser.add_argument("--naive", type=int, default=200, help="tiles run one at a time for reference (0: skip)")
    parser.add_argument("--slide", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.slide:
        return run_one(args)

    from advwsl.data.camelyon16.toy import make_toy_slide

    tmp = Path(tempfile.mkdtemp(prefix="bench_slide_"))
    try:
        rows = []
        for k, size in enumerate(sorted(args.sizes)):
            path = tmp / f"toy_{size}.tif"
            tic = time.perf_counter()
            make_toy_slide(path, size=(size, size), levels=8, mpp=0.25)
            written = time.perf_counter() - tic
            cmd = [sys.executable, __file__, "--slide", str(path), "--tile-size", str(args.tile_size),
                   "--batch-size", str(args.batch_size), "--workers", str(args.workers),
                   "--thumbnail-downsample", str(args.thumbnail_downsample),
                   "--naive", str(args.naive if k == 0 else 0)]
            child = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            row.update(size=size, write_seconds=written, file_mb=path.stat().st_size / 2**20)
            rows.append(row)
            path.unlink()
            print(f"{size} x {size} px ({row['file_mb']:.0f} MB, written in {written:.0f} s): {row['tiles']} tissue "
                  f"tiles of {row['grid_tiles']}, {row['seconds']:.1f} s, {row['tiles_per_s']:.1f} tiles/s; peak RSS "
                  f"{row['peak_rss_mb']:.0f} MB = {row['baseline_rss_mb']:.0f} MB after imports + "
                  f"{row['peak_rss_mb'] - row['baseline_rss_mb']:.0f} MB during predict_slide "
                  f"(maps {row['maps_mb']:.1f} MB, thumbnail {row['thumbnail'][1]} x {row['thumbnail'][0]})",
                  flush=True)
            if "naive_tiles_per_s" in row:
                print(f"  one tile at a time: {row['naive_tiles_per_s']:.1f} tiles/s; ratio predict_slide / naive "
                      f"{row['tiles_per_s'] / row['naive_tiles_per_s']:.2f}", flush=True)
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            print(f"{b['size']}^2 vs {a['size']}^2: {b['tiles'] / a['tiles']:.1f}x the tiles, memory added during "
                  f"predict_slide {b['peak_rss_mb'] - b['baseline_rss_mb']:.0f} MB vs "
                  f"{a['peak_rss_mb'] - a['baseline_rss_mb']:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
