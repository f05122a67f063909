"""Data loading throughput and CAMELYON16 preparation time.

1. Loader throughput (images/s through a DataLoader with the training transforms and 2 workers) on
   - the built-in synthetic set (64 x 64 tiles generated on the fly; first epoch = generation + cache),
   - a scaled-up BreakHis fixture in the official layout (700 x 460 PNGs, random 448 crop, rotations, flips,
     colour jitter), compared side by side with a plain torchvision ImageFolder + the same torchvision
     transforms on the same files (the usual way to load such a folder).
2. Your own folder (``--dataset folder``): 1024 x 1024 PNGs with masks resized to 64 (the README's
   ``{"size": 64}``), through the training loader of ``fit`` (main process, batches of 32, flips), decoded on
   every access (``cache=False``, the earlier behaviour) against decoded once (the default), epochs
   interleaved so that machine load affects both alike; then the README's folder training (``fit``, WILDCAT
   on ``resnet-mini``, stride 8, 8 epochs): decoding on every access, decoding once in a first run (empty
   caches), and in a later run (a new process: the resized tiles come from the disk cache).
3. CAMELYON16 preparation time per slide (scan + calibration + normal sampling + CSVs, with and without PNGs)
   on toy pyramidal TIFF slides, with 1 and 2 worker processes.

    python benchmarks/bench_loaders.py [--quick] [--device cuda] [--only synthetic|folder|camelyon16]
    OMP_NUM_THREADS=1 python benchmarks/bench_loaders.py --only folder     # the folder numbers of the README

``--device cuda`` moves the batches to the GPU (pinned memory) as a training loop would.
"""

from __future__ import annotations

import argparse
import os
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


def write_folder(root: Path, n_per_class: int, side: int = 1024) -> None:
    """ROOT/images/{normal,tumor}/*.png (side x side, smooth tissue-like noise) + masks for the tumours."""
    rng = np.random.default_rng(0)
    for cls in ("normal", "tumor"):
        (root / "images" / cls).mkdir(parents=True)
        if cls == "tumor":
            (root / "masks" / cls).mkdir(parents=True)
        for i in range(n_per_class):
            coarse = rng.integers(120, 235, (side // 16, side // 16, 3), dtype=np.uint8)
            image = np.kron(coarse, np.ones((16, 16, 1), np.uint8)) + rng.integers(0, 20, (side, side, 3), np.uint8)
            Image.fromarray(image).save(root / "images" / cls / f"{i:03d}.png")
            if cls == "tumor":
                mask = np.zeros((side, side), np.uint8)
                mask[side // 4:side // 2, side // 4:3 * side // 4] = 255
                Image.fromarray(mask).save(root / "masks" / cls / f"{i:03d}.png")


def bench_folder(args, tmp: Path) -> None:
    from advwsl.data import training_transform
    from advwsl.data.decoded import clear
    from advwsl.data.folder import FolderDataset

    n = 24 if args.quick else 64
    write_folder(tmp / "folder", n)
    epochs = 3 if args.quick else 5
    clear()
    sets = {name: FolderDataset(tmp / "folder", "train", size=64, transform=training_transform("folder"),
                                cache=name == "decoded once") for name in ("every access", "decoded once")}
    rates: dict[str, list[float]] = {name: [] for name in sets}
    for _ in range(epochs):  # interleaved: one epoch of each in turn
        for name, ds in sets.items():
            rates[name].append(throughput(ds, batch_size=32, workers=0, device=args.device))
    for name, r in rates.items():
        print(f"folder 1024x1024 PNG -> 64, {len(sets[name])} images, decode {name:12s}: epochs "
              + " ".join(f"{v:7.1f}" for v in r) + " img/s")
    total = {name: sum(len(sets[name]) / v for v in r) for name, r in rates.items()}  # seconds
    print(f"ratio of loader time over {epochs} epochs, every access / decoded once: "
          f"{total['every access'] / total['decoded once']:.1f}")
    _bench_folder_fit(args, tmp / "folder", 3 if args.quick else 8)


def _bench_folder_fit(args, root: Path, epochs: int) -> None:
    """The README's folder training (wildcat, resnet-mini, stride 8, lr 0.05, cosine, size 64) with and
    without decoding once: wall time of the whole fit (validation included) and training images/s."""
    from advwsl.data.decoded import clear
    from advwsl.training import fit

    seconds = {}
    for cache, run in ((False, "decode on every access"), (True, "decode once, first run"),
                       (True, "decode once, later run")):  # a later run: a new process, the disk cache kept
        clear()
        if run.endswith("first run"):  # empty the disk cache too
            shutil.rmtree(Path(os.environ["ADVWSL_HOME"]) / "decoded", ignore_errors=True)
        config = {"model": "wildcat", "backbone": "resnet-mini", "stride": 8, "lr": 0.05, "schedule": "cosine",
                  "epochs": epochs, "dataset": "folder", "data_root": str(root), "evaluate_test": False,
                  "dataset_kwargs": {"size": 64, "cache": cache}, "progress": False, "device": args.device}
        tic = time.perf_counter()
        result = fit(config, root.parent / f"fit-{len(seconds)}")
        seconds[run] = time.perf_counter() - tic
        images = sum(r["train_images"] for r in result.history)
        print(f"fit, {epochs} epochs, {run:23s}: {seconds[run]:6.1f} s ({images / seconds[run]:6.1f} training "
              "images/s overall, validation included)")
    before = seconds["decode on every access"]
    print(f"ratio fit time, every access / decoded once: first run {before / seconds['decode once, first run']:.1f},"
          f" later run {before / seconds['decode once, later run']:.1f}")
    clear()


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
    parser.add_argument("--only", choices=("synthetic", "folder", "camelyon16"), help="run one part only")
    args = parser.parse_args()
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_loaders_"))
    os.environ["ADVWSL_HOME"] = str(tmp / "advwsl_home")  # the decoded-tile cache starts empty, and is removed
    try:
        for name, part in (("synthetic", bench_loaders), ("folder", bench_folder), ("camelyon16", bench_camelyon16)):
            if args.only in (None, name):
                part(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
