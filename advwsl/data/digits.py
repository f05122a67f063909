"""Real digit images available offline: the 8x8 digits scikit-learn ships (1,797 images, 10 classes),
upsampled to a CNN-friendly size; and MNIST / CIFAR-10 / ImageNet through torchvision when on disk."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError, InputError
from .base import TensorDataset
from .registry import DatasetSpec, register_dataset


def sklearn_digits(size: int = 16, split: str | None = None, *, test_fraction: float = 0.25,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn digits as ``(images (N, 1, size, size) in [0, 1], labels (N,))``.

    Pixel values 0..16 are scaled to [0, 1] and upsampled bilinearly to ``size``, then quantized to 8 bits
    so the images lie on the 256-level lattice like real image files. ``split`` = ``"train"`` / ``"test"``
    returns a seeded stratified split (``test_fraction`` of each class in test); ``None`` returns all.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round() / 255
    y = torch.from_numpy(bunch.target.astype(np.int64))
    if split is None:
        return x, y
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(bunch.target == c)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(test_fraction * len(idx)))].tolist())
    mask = np.zeros(len(y), dtype=bool)
    mask[test_idx] = True
    sel = torch.from_numpy(mask if split == "test" else ~mask)
    return x[sel], y[sel]


class _DictDataset(torch.utils.data.Dataset):
    """Wraps a torchvision dataset of ``(PIL image, int)`` into sample dicts ``{"image", "label", "index"}``
    with images float (C, H, W) in [0, 1]."""

    def __init__(self, base, classes, name: str, transform=None, image_transform=None) -> None:
        self.base, self.classes, self.name = base, tuple(classes), name
        self.transform, self.image_transform = transform, image_transform
        self.labels = np.asarray(getattr(base, "targets", [s[1] for s in getattr(base, "samples", [])]))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        from torchvision.transforms.functional import pil_to_tensor

        img, label = self.base[i]
        if self.image_transform is not None:
            img = self.image_transform(img)
        x = pil_to_tensor(img).float() / 255.0
        sample = {"image": x, "label": int(label), "index": int(i)}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"{self.name}(n={len(self)}, classes={len(self.classes)})"


def _to_rgb(image):
    return image.convert("RGB")


def _torchvision_split(split: str) -> bool:
    if split not in ("train", "test", "val"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split == "train"


def _from_disk(dataset_cls, root: str, split: str, missing: str):
    """``dataset_cls`` (a torchvision dataset class) read from ``root``, never downloaded; a
    :class:`DatasetError` saying ``missing`` when torchvision cannot read it."""
    try:
        return dataset_cls(str(root), train=_torchvision_split(split), download=False)
    except RuntimeError as exc:
        raise DatasetError(f"{missing} [{exc}]") from None


def mnist(root: str, split: str = "train", *, transform=None) -> torch.utils.data.Dataset:
    """MNIST (appendix V) from ``root`` through torchvision, never downloaded: expects
    ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``. Samples are dicts with images
    (1, 28, 28) in [0, 1]."""
    from torchvision.datasets import MNIST

    base = _from_disk(MNIST, root, split, f"MNIST not found under {root}: expected {root}/MNIST/raw/"
                      "train-images-idx3-ubyte and the other three idx files (download them once with torchvision, "
                      "MNIST(root, download=True), on a machine with internet)")
    return _DictDataset(base, [str(d) for d in range(10)], f"mnist-{split}", transform)


#: The files of ``cifar-10-python.tar.gz`` once extracted (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCHES = ("test_batch",)
#: CIFAR-10's class names in label order (``label_names`` of ``batches.meta``).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _Refused(pickle.UnpicklingError):
    """A global that a CIFAR-10 batch does not hold (its message is the global's name)."""


class _BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 batch without running code: the only globals admitted are those that rebuild NumPy
    arrays of plain data (as NumPy 1 under Python 2 and NumPy 2 write them) and ``_codecs.encode`` (bytes in
    protocol 2 pickles). Anything else, e.g. a ``__reduce__`` calling ``exec``, is refused before it runs."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               *((m, f) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for f in ("_reconstruct", "scalar"))}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            import _compat_pickle  # Python 2 names (__builtin__) as Python 3 names them (builtins)

            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            raise _Refused(f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core, named by NumPy 1 pickles
            return super().find_class(module, name)


class Cifar10Batches(torch.utils.data.Dataset):
    """CIFAR-10's "python version" batches read as published: each file a pickled dict whose ``b"data"`` is a
    uint8 array (N, 3072) of row-major 32 x 32 planes, red then green then blue, and ``b"labels"`` a list
    of N class indices; ``batches.meta`` holds ``b"label_names"``. The training split is ``data_batch_1`` to
    ``data_batch_5`` in order, the test split ``test_batch`` (the order torchvision's ``CIFAR10`` reads).

    The files are checked for their structure (shapes, dtype, labels in 0..9), not for the checksums of the
    official archive, so that a re-packed or partial copy in the same layout is read as it is. Samples are
    dicts ``{"image": float (3, 32, 32) in [0, 1], "label", "index"}``."""

    def __init__(self, root: str, split: str = "train", *, transform=None) -> None:
        from pathlib import Path

        self.folder = Path(root) / "cifar-10-batches-py"
        self.name, self.transform = f"cifar10-{split}", transform
        files = CIFAR10_TRAIN_BATCHES if _torchvision_split(split) else CIFAR10_TEST_BATCHES
        data, labels = [], []
        for name in files:
            entry = self._load(name)
            x = np.asarray(entry.get("data", []))
            y = np.asarray(entry.get("labels", []), dtype=np.int64)
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
                raise DatasetError(f"{self.folder / name} is not a CIFAR-10 batch: expected 'data' uint8 (N, 3072) "
                                   f"and N 'labels', got data {x.dtype} {x.shape} and {len(y)} labels")
            if len(y) and (y.min() < 0 or y.max() > 9):
                raise DatasetError(f"{self.folder / name} has labels outside 0..9 ({y.min()}..{y.max()})")
            data.append(x)
            labels.append(y)
        self.data = np.concatenate(data).reshape(-1, 3, 32, 32)
        self.labels = np.concatenate(labels)
        names = self._load("batches.meta").get("label_names")
        if not isinstance(names, (list, tuple)) or len(names) != 10:
            raise DatasetError(f"{self.folder / 'batches.meta'} has no list of the 10 'label_names'")
        self.classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)

    def _load(self, name: str) -> dict:
        path = self.folder / name
        if not path.is_file():
            raise DatasetError(f"CIFAR-10 not found under {self.folder.parent}: {path} is missing; expected "
                               f"{self.folder}/{{data_batch_1..5,test_batch,batches.meta}} as extracted from "
                               "cifar-10-python.tar.gz")
        try:
            with open(path, "rb") as f:
                entry = _BatchUnpickler(f, encoding="latin1").load()  # as torchvision: Python 2 pickles
        except _Refused as exc:
            raise DatasetError(f"refusing to read {name} in {self.folder}: it refers to {exc}, which a CIFAR-10 "
                               "batch (a dict of arrays, lists and strings) never does, and reading it would run "
                               "code; it is not the published file: extract cifar-10-python.tar.gz again") from None
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: name it
            raise DatasetError(f"cannot read the CIFAR-10 batch {path} ({type(exc).__name__}: {exc}); extract "
                               "cifar-10-python.tar.gz again") from None
        if not isinstance(entry, dict):
            raise DatasetError(f"{path} is not a CIFAR-10 batch (a pickled dict), got {type(entry).__name__}")
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = torch.from_numpy(self.data[i].astype(np.float32) / 255.0)
        sample = {"image": x, "label": int(self.labels[i]), "index": int(i)}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"{self.name}(n={len(self)}, classes={len(self.classes)})"


def cifar10(root: str, split: str = "train", *, transform=None) -> torch.utils.data.Dataset:
    """CIFAR-10 (appendix V) from ``root``, never downloaded: expects ``<root>/cifar-10-batches-py/`` as
    extracted from ``cifar-10-python.tar.gz`` (the folder torchvision's ``CIFAR10`` downloads). Samples are
    dicts with images (3, 32, 32) in [0, 1]; see :class:`Cifar10Batches`."""
    return Cifar10Batches(root, split, transform=transform)


def imagenet_folder(root: str, split: str = "val", *, image_size: int = 224,
                    transform=None) -> torch.utils.data.Dataset:
    """ImageNet from class folders ``<root>/{train,val}/<wnid>/*.JPEG`` (torchvision ImageFolder). Images
    are resized (shorter side ``image_size / 0.875``) and center-cropped to ``image_size`` (299 for the
    Inception V3 of appendix V), as dicts with images (3, image_size, image_size) in [0, 1]."""
    from pathlib import Path

    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    folder = Path(root) / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise DatasetError(f"expected ImageNet class folders at {folder}/<wnid>/*.JPEG, not found")
    try:
        base = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"no image found in the class folders of {folder}: {exc}") from None
    resize = T.Compose([T.Resize(int(round(image_size / 0.875))), T.CenterCrop(image_size), _to_rgb])
    return _DictDataset(base, base.classes, f"imagenet-{split}", transform, image_transform=resize)


class DigitsDataset(TensorDataset):
    """:func:`sklearn_digits` as sample dicts ``{"image": (1, size, size) in [0, 1], "label", "index"}``;
    ``n`` keeps the first ``n`` samples of the split."""

    classes = tuple(str(d) for d in range(10))

    def __init__(self, split: str = "train", *, size: int = 16, seed: int = 0, n: int | None = None,
                 transform=None) -> None:
        if split not in ("train", "test"):
            raise InputError(f"the digits have only 'train' and 'test' splits, got {split!r}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputError(f"n (the number of digits kept) must be a positive integer, got {n!r}")
        images, labels = sklearn_digits(size, split, seed=seed)
        super().__init__(images[:n], labels[:n].numpy(), transform)


def _digits(root: str | None, split: str, *, fold: int = 0, transform=None, **kwargs) -> DigitsDataset:
    return DigitsDataset(split, transform=transform, **kwargs)


def _torchvision(loader):
    def build(root: str, split: str, *, fold: int = 0, transform=None, **kwargs):
        return loader(str(root), "train" if split == "train" else "test", transform=transform, **kwargs)

    return build


def _imagenet(root: str, split: str, *, fold: int = 0, transform=None, **kwargs):
    return imagenet_folder(str(root), "train" if split == "train" else "val", transform=transform, **kwargs)


#: ``advwsl adv-train``'s recipe on the digits (the C&W MNIST network on 1,347 training images). The
#: reference's MNIST recipe (lr 0.01, 60 000 images) gives too few SGD steps here: at batch 64 and lr 0.01 the
#: loss stayed at ln 10 (10 % valid accuracy, 10 epochs), and lr 0.1 diverged to chance; batches of 32 at lr
#: 0.05 with cosine annealing (appendix II) reach 93 % valid accuracy in 3 clean epochs, and the first DDN
#: adversarials of a random network are no signal, so the first 3 epochs are clean (as the reference
#: pre-trains its CIFAR-10 model on clean images).
DIGITS_ADVERSARIAL_RECIPE = {"epochs": 10, "batch_size": 32, "lr": 0.05, "schedule": "cosine", "augment": False,
                             "evaluate_test": False, "clean_epochs": 3}
register_dataset(DatasetSpec(
    "digits", _digits, "scikit-learn 8x8 digits upsampled to 16x16 (real, offline; 1,347 train / 450 test)",
    needs_root=False, classes=DigitsDataset.classes, splits=("train", "test"), folds=0,
    options={"size": "image side (16)", "seed": "split seed (0)", "n": "first n samples of the split"},
    image_size=16, adversarial_recipe=DIGITS_ADVERSARIAL_RECIPE, epsilons=(0.5, 1.0, 1.5, 2.0), table_epsilon=1.0))
register_dataset(DatasetSpec(
    "mnist", _torchvision(mnist), "MNIST through torchvision, from disk (appendix V; valid = test split)",
    needs_root=True, classes=tuple(str(d) for d in range(10)), folds=0, epsilons=(0.5, 1.0, 1.5, 2.0),
    table_epsilon=1.5,
    layout="ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"))
register_dataset(DatasetSpec(
    "cifar10", _torchvision(cifar10), "CIFAR-10 through torchvision, from disk (appendix V; valid = test split)",
    needs_root=True, classes=CIFAR10_CLASSES, folds=0, epsilons=(0.1, 0.25, 0.5, 1.0), table_epsilon=0.5,
    layout="ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"))
register_dataset(DatasetSpec(
    "imagenet", _imagenet, "ImageNet class folders ROOT/{train,val}/<wnid>/ (appendix V)", needs_root=True,
    folds=0, layout="ROOT/{train,val}/<wnid>/*.JPEG", epsilons=(0.1, 0.5, 1.0, 2.0), table_epsilon=1.0))
