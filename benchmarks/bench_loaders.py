"""Data loading throughput and CAMELYON16 preparation time.

1. Loader throughput (images/s through a DataLoader with the training transforms and 2 workers) on
   - the built-in synthetic set (64 x 64 tiles generated on the fly; first epoch = generation + cache),
   - a scaled-up BreakHis fixture in the official layout (700 x 460 PNGs, random 448 crop, rotations, flips,
     colour jitter), compared side by side with a plain torchvision ImageFolder + the same torchvision
     transforms on the same files (the usual way to load such a folder).
2. CAMELYON16 preparation time per slide (scan + calibration + normal sampling + CSVs, with and without PNGs)
   on toy pyramidal TIFF slides, with 1 and 2 worker processes.

    python benchmarks/bench_loaders.py [--quick] [--device cuda]

``--device cuda`` moves the batches to the GPU (pinned memory) as a training loop would.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader


def throughput(dataset, *, batch_size: int, workers: int, device: str, epochs: int = 1) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device == "cuda", persistent_workers=workers > 0)
    n, tic = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            images = batch["image"] if isinstance(batch, dict) else batch[0]
            images.to(device, non_blocking=True)
            n += len(images)
    if device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - tic)


def write_breakhis_scaled(root: Path, n_patients: int, per_mag: int) -> None:
    """BreakHis layout at 40X with real-size (700 x 460) noisy PNGs."""
    rng = np.random.default_rng(0)
    base = root / "BreaKHis_v1" / "histology_slides" / "breast"
    for p in range(n_patients):
        cls, c, code = ("benign", "B", "A") if p % 2 == 0 else ("malignant", "M", "DC")
        patient = f"14-{1000 + p}"
        d = base / cls / "SOB" / ("adenosis" if c == "B" else "ductal_carcinoma") / f"SOB_{c}_{code}_{patient}" / "40X"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(1, per_mag + 1):
            img = (rng.random((460, 700, 3)) * 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"SOB_{c}_{code}-{patient}-40-{k:03d}.png", compress_level=1)


def bench_loaders(args, tmp: Path) -> None:
    from torchvision import datasets as tvd
    from torchvision import transforms as T

    from advwsl.data.breakhis import BreakHis
    from advwsl.data.synthetic import SyntheticHistology
    from advwsl.data import training_transform

    n_syn = 512 if args.quick else 2048
    syn = SyntheticHistology("trainval", n_trainval=n_syn, transform=training_transform("synthetic"))
    first = throughput(syn, batch_size=64, workers=0, device=args.device)
    cached = throughput(syn, batch_size=64, workers=2, device=args.device, epochs=2)
    print(f"synthetic 64x64, {n_syn} tiles: first pass (generation) {first:8.0f} img/s (main process); "
          f"cached, 2 workers {cached:8.0f} img/s")

    n_pat, per = (6, 8) if args.quick else (10, 20)
    write_breakhis_scaled(tmp / "breakhis", n_pat, per)
    ours = BreakHis(tmp / "breakhis", "train", transform=training_transform("breakhis"))
    # the same files through torchvision's ImageFolder and transforms
    tv = tvd.ImageFolder(str(tmp / "breakhis" / "BreaKHis_v1" / "histology_slides" / "breast"),
                         transform=T.Compose([T.ToTensor(), T.RandomCrop(448), T.RandomHorizontalFlip(),
                                              T.RandomVerticalFlip(), T.ColorJitter(0.5, 0.5, 0.5, 0.05)]))
    for name, ds in (("advwsl BreakHis", ours), ("torchvision ImageFolder", tv)):
        rate = throughput(ds, batch_size=16, workers=2, device=args.device)
        print(f"{name:24s} 700x460 PNG -> 448 crop + jitter, 2 workers: {rate:7.1f} img/s ({len(ds)} images)")
        if name.startswith("advwsl"):
            ours_rate = rate
    print(f"ratio advwsl / torchvision ImageFolder: {ours_rate / rate:.2f}")


def bench_camelyon16(args, tmp: Path) -> None:
    from advwsl.data.camelyon16.prepare import prepare_camelyon16
    from advwsl.data.camelyon16.sampling import ProtocolConfig
    from advwsl.data.camelyon16.toy import make_toy_slide

    size = (4096, 3072) if args.quick else (8192, 6144)
    slides, anns = tmp / "slides", tmp / "ann"
    slides.mkdir()
    anns.mkdir()
    names = ["tumor_001", "tumor_002", "normal_001", "normal_002"]
    for i, name in enumerate(names):
        make_toy_slide(slides / f"{name}.tif", anns / f"{name}.xml" if name.startswith("tumor") else None,
                       size=size, seed=i, tumour=name.startswith("tumor"), levels=7)
    cfg = ProtocolConfig(patch_size=256, n_folds=2, pn=0.5)
    for workers in (1, 2):
        for png in (False, True):
            out = tmp / f"out{workers}{png}"
            tic = time.perf_counter()
            s = prepare_camelyon16(slides, anns, out, config=cfg, workers=workers, write_png=png, progress=False)
            sec = time.perf_counter() - tic
            n = sum(v["metastatic"] + v["normal"] for k, v in s["sets"].items() if k.startswith("fold_0"))
            print(f"CAMELYON16 toy slides {size[0]}x{size[1]}, patch 256, workers={workers}, png={png}: "
                  f"{sec / len(names):.2f} s/slide ({n} patches in fold 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sets (about a minute)")
    args = parser.parse_args()
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_loaders_"))
    try:
        bench_loaders(args, tmp)
        bench_camelyon16(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
