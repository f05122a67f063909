"""Your own images as a dataset: ``--dataset folder --data-root ROOT``, in one of three layouts.

1. Class folders with optional masks::

       ROOT/images/<class>/<image>            e.g. ROOT/images/tumor/a01.png
       ROOT/masks/<class>/<image stem>.png    e.g. ROOT/masks/tumor/a01.png     (optional)

   A class with a ``masks/<class>/`` folder needs a mask for each of its images; a class without one
   (e.g. ``normal``) has empty masks.
2. Plain class folders (torchvision's ImageFolder), no masks: ``ROOT/<class>/<image>``.
3. A CSV table ``ROOT/<name>.csv`` (the one CSV at the top of ROOT, which takes precedence over folders;
   with several, choose with the option ``table="x.csv"``), columns ``path,label[,mask][,split]``: paths
   relative to ROOT; ``label`` a class name or a class index; ``mask`` a mask path (an empty cell: an empty
   mask); ``split`` train/valid/test fixes the split.

Images are png, jpg, jpeg, tif, tiff or bmp (subfolders of a class folder are searched too), read as RGB in
[0, 1] (grey repeated to three channels, 16-bit scaled); masks are binary (a pixel > 0 is foreground) and
have their image's size. Classes are the sorted folder names, the sorted label names of the table, or
``"0" .. "K-1"`` when every label is an index; the option ``classes=[...]`` fixes their order.

Splits (after section 2.1.2.2): a seeded test set of ``test_fraction`` = 20 % of each class, the rest in 5
seeded class-stratified folds, fold k's validation set being fold k: 64 % train, 16 % valid, 20 % test.
A ``split`` column fixes the split instead (then only fold 0 exists).

Every image and mask header is read when the dataset is built, so a corrupt or mis-sized file is an error
that names it before any training starts. Images of several sizes need ``size=S`` (resize to S x S, or
``[H, W]``) so that they can be batched; otherwise the error lists the sizes found. Resized images are
rounded to 8-bit values, as if the files had been resized, so that quantized attacks stay on their lattice.

Refused with an error naming the rows: a table row whose path leaves ROOT (absolute, or ``..`` above it; refused
before the file is looked at, so nothing outside ROOT is read or probed), the same image twice (a duplicate row
would land in two splits) or with two labels; a ``masks/<name>`` folder that matches no class folder, or a
``Masks``/``mask`` folder beside ``images/`` (a misnamed ``masks/``, whose masks would be silently ignored).

Decoding once (:mod:`advwsl.data.decoded`): an image is decoded (and resized) on its first access only,
then kept in memory for every folder dataset of the process (splits, folds, epochs) and, resized, on disk
for later runs, keyed by the files' path, modification time and size (an edited file is read again);
only the random training transforms run on every access. ``cache=False`` decodes on every access.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.utils.data import get_worker_info

from ..errors import InputError
from . import decoded
from .base import TableDataset, check_split
from .folder_layout import EXTENSIONS, LAYOUTS, scan, split_table
from .registry import DatasetSpec, register_dataset
from .transforms import Compose, RandomFlip, Resize

__all__ = ["EXTENSIONS", "LAYOUTS", "scan", "split_table", "FolderDataset"]


class _To8Bit:
    """Round the image to the 256-level lattice (what a resized 8-bit file holds)."""

    def __call__(self, sample: dict) -> dict:
        return {**sample, "image": (sample["image"] * 255).round() / 255}


#: What the kept decoded tiles depend on besides the files and the size: this reader and the resize.
_DECODER = ("folder-1", torchvision.__version__)


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process's decoding threads (created on first use)."""
    if _POOL.get(threads) is None:
        _POOL[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="advwsl-decode")
    return _POOL[threads]


_POOL: dict[int, ThreadPoolExecutor] = {}


class FolderDataset(TableDataset):
    """One split of a folder dataset (see the module docstring).

    ``__getitem__`` returns ``{"image": (3, H, W) in [0, 1], "label", "mask": float32 (H, W) in {0, 1} (when
    the layout has masks), "index", "path"}``; ``size`` resizes image and mask (bilinear, rounded to 8-bit
    values / nearest). Images are decoded once (``cache``, see the module docstring); while they are not,
    an access also decodes the next undecoded rows on ``threads`` threads (default: up to 4, as the CPUs
    allow), so the first epoch decodes in parallel. ``transform`` runs on every access."""

    def __init__(self, root: str | Path, split: str = "train", *, fold: int = 0, seed: int = 0,
                 test_fraction: float = 0.2, table: str | None = None, classes: Sequence[str] | None = None,
                 size: int | Sequence[int] | None = None, transform: Callable[[dict], dict] | None = None,
                 cache: bool = True, threads: int | None = None) -> None:
        check_split(split)
        size = _check_size(size)
        if not isinstance(cache, bool):
            raise InputError(f"cache must be true or false, got {cache!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be a positive number of decoding threads, got {threads!r}")
        self.size, self.cache = size, cache
        self.threads = threads or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                      else os.cpu_count() or 1)
        self._shape = None if size is None else ((size, size) if isinstance(size, int) else tuple(size))
        full = split_table(root, fold=fold, n_folds=5, seed=seed, test_fraction=test_fraction, table=table,
                           classes=classes, size=size)
        super().__init__(full[full["split"] == split], root, classes=full.attrs["classes"], transform=transform,
                         mask_mode="binary", empty_mask=bool(full.attrs["masks"]), name=f"folder-fold{fold}-{split}")
        # reads a row's files and resizes them (the deterministic part), without the random transform
        self._reader = TableDataset(self.table, root, classes=self.classes, mask_mode="binary",
                                    transform=None if size is None else Compose([Resize(size), _To8Bit()]))
        self._masks = [m if isinstance(m, str) else "" for m in
                       (self.table["mask_path"] if "mask_path" in self.table.columns else [""] * len(self))]
        self._seen: set[int] = set()

    def _key(self, i: int) -> tuple:
        mask = self._masks[i]
        return (_DECODER, decoded.file_key(self.root / self.table["path"].iat[i]),
                decoded.file_key(self.root / mask) if mask else None, self.size)

    def _keep(self, i: int, key: tuple, sample: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = sample.get("mask") if self._masks[i] else None
        decoded.remember(key, sample["image"], mask, disk=self._shape is not None)
        self._seen.add(i)
        return sample["image"], mask

    def _upcoming(self, i: int) -> dict[int, tuple]:
        """Up to ``2 * threads - 1`` rows after ``i`` (cyclically) that are decoded nowhere yet, with keys."""
        out: dict[int, tuple] = {}
        for j in ((i + k) % len(self) for k in range(1, len(self))):
            if len(out) >= 2 * self.threads - 1:
                break
            if j not in self._seen:
                key = self._key(j)
                if decoded.lookup(key, disk_shape=self._shape) is None:
                    out[j] = key
                else:
                    self._seen.add(j)
        return out

    def _decoded(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image and mask of row ``i`` as read from the files and resized: kept, or decoded now (with the next
        undecoded rows on the decoding threads)."""
        if not self.cache:
            sample = self._reader[i]
            return sample["image"], sample.get("mask") if self._masks[i] else None
        key = self._key(i)
        hit = decoded.lookup(key, disk_shape=self._shape)
        if hit is not None:
            return hit
        ahead = self._upcoming(i) if self.threads > 1 and get_worker_info() is None else {}
        jobs = {j: (k, _pool(self.threads).submit(self._reader.__getitem__, j)) for j, k in ahead.items()}
        sample = self._reader[i]  # in this thread: an unreadable file is this access's error
        for j, (k, job) in jobs.items():
            try:
                self._keep(j, k, job.result())
            except Exception:  # noqa: BLE001 - decoded again, and its error raised, when row j is accessed
                pass
        return self._keep(i, key, sample)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        image, mask = self._decoded(i)
        sample: dict = {"image": image, "label": int(self.labels[i]), "index": i,
                        "path": str(self.table["path"].iat[i])}
        if mask is not None:
            sample["mask"] = mask
        elif self.empty_mask:
            sample["mask"] = torch.zeros(image.shape[-2:], dtype=torch.float32)
        return self.transform(sample) if self.transform is not None else sample


def _check_size(size: Any) -> int | tuple[int, int] | None:
    """``size`` as a side or (height, width); an :class:`InputError` for anything else."""
    if size is None:
        return None
    sides = [size] if isinstance(size, int) else list(size) if isinstance(size, (list, tuple)) else [None]
    if not 1 <= len(sides) <= 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sides):
        raise InputError(f"size must be a positive side or [height, width], got {size!r}")
    return sides[0] if len(sides) == 1 else tuple(sides)


register_dataset(DatasetSpec(
    "folder", FolderDataset, "your own images: class folders (with optional masks) or a CSV table", needs_root=True,
    split_table=split_table, layout=LAYOUTS,
    options={"size": "resize every image (and mask) to size x size, or [height, width]",
             "table": "the CSV table to read (relative to --data-root)",
             "classes": "class names in label order", "test_fraction": "share of each class in the test set (0.2)",
             "seed": "seed of the split (0)", "cache": "decode each image once, keep it in memory and (resized) on disk (true)",
             "threads": "threads decoding the first epoch ahead (default: up to 4)"},
    train_transform=lambda: Compose([RandomFlip()])))
