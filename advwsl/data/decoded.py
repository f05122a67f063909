"""Decode once: images (and masks) as read from their files and resized, kept so that an epoch after the
first decodes nothing (a folder of 1024 x 1024 PNGs trained at about 15 images/s when every access decoded
its file, see ``benchmarks/bench_loaders.py``).

Two levels, both keyed by the files' path, modification time and size (an edited file is read again) and
by the resize that was applied:

* memory: shared by every dataset of the process (its splits, folds and epochs), least recently used
  dropped beyond :data:`MEMORY_BYTES`; filled in the main process only (DataLoader workers live one epoch);
* disk, for resized tiles only (small, e.g. 12 KB at 64 x 64): ``advwsl.utils.cache_dir("decoded")``, one
  ``.npz`` per tile (read without pickle), written atomically; later runs (another training, ``evaluate``,
  ``attack``) and DataLoader workers start from it.

8-bit values (the file's, or the 8-bit rounding after a resize) are kept as uint8 and come back bit for bit
(``k / 255`` in float32, as the decoder computes it); anything else is kept as float32.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import get_worker_info

__all__ = ["MEMORY_BYTES", "file_key", "lookup", "remember", "clear"]

#: Most bytes of decoded images and masks one process keeps in memory.
MEMORY_BYTES = 2 * 2**30

_MEMORY: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
_memory_bytes = [0]


def clear() -> None:
    """Forget every decoded image held in memory (the disk cache stays)."""
    _MEMORY.clear()
    _memory_bytes[0] = 0


def file_key(path: Path) -> tuple[str, int, int]:
    """What identifies a file's content here: its path, modification time (ns) and size."""
    path = Path(path).resolve()
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _pack(image: torch.Tensor) -> torch.Tensor:
    levels = torch.round(image * 255)
    return levels.to(torch.uint8) if torch.equal(levels / 255, image) else image.float()


def _unpack(entry: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor | None]:
    image, mask = entry
    image = image.float() / 255 if image.dtype == torch.uint8 else image.clone()
    return image, (None if mask is None else mask.float())


def _nbytes(entry: tuple[torch.Tensor, torch.Tensor | None]) -> int:
    return sum(t.numel() * t.element_size() for t in entry if t is not None)


def _disk_path(key: tuple) -> Path:
    from ..utils import cache_dir

    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    return cache_dir("decoded", digest[:2]) / f"{digest[2:]}.npz"


def _from_disk(key: tuple, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    path = _disk_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            image = torch.from_numpy(npz["image"].copy())
            mask = torch.from_numpy(npz["mask"].copy()) if "mask" in npz.files else None
    except Exception:  # noqa: BLE001 - a torn or foreign file: decode again and replace it
        return None
    ok = (image.dtype in (torch.uint8, torch.float32) and image.dim() == 3 and tuple(image.shape[-2:]) == shape
          and (mask is None or tuple(mask.shape) == shape))
    return (image, mask) if ok else None


def _to_disk(key: tuple, entry: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    from ..io import atomic_path

    arrays = {"image": entry[0].numpy()}
    if entry[1] is not None:
        arrays["mask"] = entry[1].numpy()
    try:
        with atomic_path(_disk_path(key), overwrite=True) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    except OSError:  # a read-only or full cache folder: the tile is decoded again next time
        pass


def lookup(key: tuple, *, disk_shape: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The image (float32) and mask (float32 or None) decoded under ``key``, or None. ``disk_shape`` (the
    resized (H, W)) also looks on disk; None: memory only."""
    entry = _MEMORY.get(key)
    if entry is not None:
        _MEMORY.move_to_end(key)
        return _unpack(entry)
    if disk_shape is None:
        return None
    entry = _from_disk(key, disk_shape)
    if entry is None:
        return None
    _keep(key, entry)
    return _unpack(entry)


def remember(key: tuple, image: torch.Tensor, mask: torch.Tensor | None, *, disk: bool) -> None:
    """Keep ``image`` (float in [0, 1]) and ``mask`` (binary) decoded under ``key``: in memory (main
    process), and on disk when ``disk``."""
    entry = (_pack(image), None if mask is None else mask.to(torch.uint8))
    _keep(key, entry)
    if disk:
        _to_disk(key, entry)


def _keep(key: tuple, entry: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    size = _nbytes(entry)
    if get_worker_info() is not None or size > MEMORY_BYTES:
        return
    if key in _MEMORY:
        _memory_bytes[0] -= _nbytes(_MEMORY.pop(key))
    _MEMORY[key] = entry
    _memory_bytes[0] += size
    while _memory_bytes[0] > MEMORY_BYTES:
        _, old = _MEMORY.popitem(last=False)
        _memory_bytes[0] -= _nbytes(old)
