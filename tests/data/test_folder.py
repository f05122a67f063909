"""The folder dataset on fixtures written in each of its layouts: class folders with masks, ImageFolder, CSV
tables; splits; resizing; and the errors for corrupt files, mixed sizes and bad layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advwsl.data import get_dataset, get_dataset_spec
from advwsl.data.folder import scan, split_table
from advwsl.errors import DatasetError, InputError
from advwsl.jobs import load_data


def _image(path: Path, size=(24, 20), seed=0, mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = (rng.random((h, w, 3) if mode == "RGB" else (h, w)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _mask(path: Path, size=(24, 20), box=(4, 4, 12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    Image.fromarray(arr).save(path)
    return path


def write_images_and_masks(root: Path, n: int = 10, size=(24, 20)) -> Path:
    """ROOT/images/{normal,tumor}/... with masks for the tumour class only; png, jpg, bmp and tif files."""
    exts = [".png", ".jpg", ".bmp", ".tif", ".png"]
    for c, cls in enumerate(("normal", "tumor")):
        for i in range(n):
            ext = exts[i % len(exts)]
            _image(root / "images" / cls / f"{cls}_{i:02d}{ext}", size, seed=10 * c + i)
            if cls == "tumor":
                _mask(root / "masks" / cls / f"{cls}_{i:02d}.png", size)
    return root


def test_images_and_masks_layout(tmp_path):
    root = write_images_and_masks(tmp_path / "ds")
    parts = {s: get_dataset("folder", root=root, split=s) for s in ("train", "valid", "test")}
    assert parts["train"].classes == ("normal", "tumor")
    assert sorted(len(p) for p in parts.values()) == [3, 4, 13]  # 20 % test, 16 % valid, 64 % train
    paths = [set(p.table["path"]) for p in parts.values()]
    assert set.union(*paths) == set(scan(root)["path"]) and sum(len(p) for p in paths) == 20
    for ds in parts.values():
        for i in range(len(ds)):
            sample = ds[i]
            assert sample["image"].shape == (3, 20, 24) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
            expected = 48.0 if sample["label"] == 1 else 0.0  # tumour masks hold a 8x6 box; normal: empty
            assert sample["mask"].shape == (20, 24) and float(sample["mask"].sum()) == expected
    test = parts["test"]
    assert np.bincount(test.labels, minlength=2).tolist() == [2, 2]  # stratified by class
    again = get_dataset("folder", root=root, split="test")
    assert list(again.table["path"]) == list(test.table["path"])  # seeded
    other = get_dataset("folder", root=root, split="test", seed=1)
    assert list(other.table["path"]) != list(test.table["path"])
    folds = [set(split_table(root, fold=k)["path"][lambda t: split_table(root, fold=k)["split"] == "valid"])
             for k in range(5)]
    assert sum(len(f) for f in folds) == 16 and len(set.union(*folds)) == 16  # the 5 folds partition train+valid


def test_image_folder_layout_without_masks(tmp_path):
    root = tmp_path / "if"
    for c, cls in enumerate(("cat", "dog", "eel")):
        for i in range(5):
            _image(root / cls / ("sub" if i == 4 else "") / f"{i}.jpeg", seed=c * 5 + i, mode="L")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    ds = get_dataset("folder", root=root, split="train")
    assert ds.classes == ("cat", "dog", "eel") and "mask" not in ds[0]
    assert ds[0]["image"].shape == (3, 20, 24)  # grey repeated to three channels
    assert len(scan(root)) == 15


def test_csv_table_with_names_masks_and_split(tmp_path):
    root = tmp_path / "csv"
    rows = ["path,label,mask,split"]
    for i in range(6):
        _image(root / "img" / f"{i}.png", seed=i)
        mask = f"m/{i}.png" if i % 2 else ""
        if mask:
            _mask(root / mask)
        rows.append(f"img/{i}.png,{'benign' if i % 2 == 0 else 'malignant'},{mask},{['train', 'valid', 'test'][i // 2]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    test = get_dataset("folder", root=root, split="test")
    assert test.classes == ("benign", "malignant") and list(test.table["path"]) == ["img/4.png", "img/5.png"]
    assert float(test[0]["mask"].sum()) == 0 and float(test[1]["mask"].sum()) == 48  # an empty cell: empty mask
    with pytest.raises(InputError, match="only fold 0"):
        get_dataset("folder", root=root, split="test", fold=1)
    # a second table: the choice is explicit; integer labels are class indices
    (root / "other.csv").write_text("path,label\n" + "\n".join(f"img/{i}.png,{i % 3}" for i in range(6)) + "\n")
    with pytest.raises(DatasetError, match="several CSV tables"):
        get_dataset("folder", root=root, split="train")
    ds = get_dataset("folder", root=root, split="train", table="other.csv")
    assert ds.classes == ("0", "1", "2") and "mask" not in ds[0]
    named = get_dataset("folder", root=root, split="test", table="labels.csv", classes=["malignant", "benign"])
    assert named.labels.tolist() == [1, 0]


def test_resize_option_and_mixed_sizes(tmp_path):
    root = tmp_path / "mixed"
    for c, cls in enumerate(("a", "b")):
        for i in range(5):
            size = (24, 20) if i % 2 else (30, 16)
            _image(root / "images" / cls / f"{i}.png", size, seed=c * 5 + i)
            _mask(root / "masks" / cls / f"{i}.png", size)
    with pytest.raises(DatasetError, match=r"2 sizes .*\"size\": 224"):
        get_dataset("folder", root=root, split="train")
    ds = get_dataset("folder", root=root, split="train", size=16)
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, 16, 16) and set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(sample["image"] * 255, (sample["image"] * 255).round())  # 8-bit values
    data = load_data("folder", data_root=str(root), split="test", dataset_kwargs={"size": [12, 18]})
    assert data.images.shape == (2, 3, 12, 18) and data.masks.shape == (2, 12, 18) and data.classes == ["a", "b"]
    with pytest.raises(InputError, match="size"):
        get_dataset("folder", root=root, split="train", size=0)


def test_corrupt_image_and_mask_are_named(tmp_path):
    root = write_images_and_masks(tmp_path / "bad", n=5)
    broken = root / "images" / "normal" / "normal_02.bmp"
    broken.write_bytes(b"BM this is not a bitmap")
    with pytest.raises(DatasetError, match="cannot read image .*normal_02.bmp"):
        get_dataset("folder", root=root, split="train")
    _image(broken, seed=3)
    mask = root / "masks" / "tumor" / "tumor_01.png"
    mask.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DatasetError, match="cannot read mask .*tumor_01.png"):
        get_dataset("folder", root=root, split="train")
    _mask(mask, size=(10, 10))
    with pytest.raises(DatasetError, match="tumor_01.png is 10x10 but its image"):
        get_dataset("folder", root=root, split="train")
    mask.unlink()
    with pytest.raises(DatasetError, match="needs its mask; missing: .*tumor_01.png"):
        get_dataset("folder", root=root, split="train")


def test_truncated_image_data_is_named_when_read(tmp_path):
    root = tmp_path / "trunc"
    for i, name in enumerate(("a.png", "b.png")):
        _image(root / name, seed=i)
    (root / "t.csv").write_text("path,label,split\na.png,x,train\nb.png,y,train\n")
    data = (root / "a.png").read_bytes()
    (root / "a.png").write_bytes(data[: len(data) // 2])  # the header is intact, the pixels are not
    ds = get_dataset("folder", root=root, split="train")
    with pytest.raises(DatasetError, match="a.png"):
        ds[0]
    with pytest.raises(DatasetError, match="a.png"):
        load_data("folder", data_root=str(root), split="train")


@pytest.mark.parametrize("setup, message", [
    (lambda r: r.mkdir(), "neither images/, class folders nor a CSV table"),
    (lambda r: (r / "images").mkdir(parents=True), "has no class folders"),
    (lambda r: (r / "only").mkdir(parents=True) or _image(r / "only" / "x.png"), "one class"),
    (lambda r: (r / "empty_class").mkdir(parents=True) or (r / "full").mkdir() or _image(r / "full" / "x.png"),
     "holds no image"),
    (lambda r: r.mkdir() or (r / "t.csv").write_text("file,class\na.png,x\n"), "needs the columns path,label"),
])
def test_bad_layouts_show_the_expected_trees(tmp_path, setup, message):
    root = tmp_path / "root"
    setup(root)
    with pytest.raises(DatasetError, match=message) as info:
        get_dataset("folder", root=root, split="train")
    if "columns" in message or "neither" in message:
        assert "ROOT/images/<class>/<image>" in str(info.value) and "ROOT/<class>/<image>" in str(info.value)


def test_csv_row_errors(tmp_path):
    root = tmp_path / "rows"
    _image(root / "a.png")
    _image(root / "b.png", seed=1)
    (root / "t.csv").write_text("path,label\na.png,x\nmissing.png,y\n")
    with pytest.raises(DatasetError, match="row 3: image .*missing.png does not exist"):
        get_dataset("folder", root=root, split="train")
    (root / "t.csv").write_text("path,label,split\na.png,x,train\nb.png,y,later\n")
    with pytest.raises(DatasetError, match="split column holds"):
        get_dataset("folder", root=root, split="train")
    (root / "t.csv").write_text("path,label\na.png,0\nb.png,\n")
    with pytest.raises(DatasetError, match="row 3 has no label"):
        get_dataset("folder", root=root, split="train")


def test_registered_with_its_layout():
    spec = get_dataset_spec("folder")
    assert spec.needs_root and "ROOT/images/<class>/<image>" in spec.layout
    with pytest.raises(DatasetError, match="ROOT/<name>.csv"):
        get_dataset("folder", root=None)


# ------------------------------------------------------------------------ decoding once (issue: 5 images/s)
def _sixteen_bit(path: Path, size=(24, 20), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0])) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.parametrize("size", [None, 16])
def test_decoded_once_bit_for_bit(tmp_path, monkeypatch, size):
    from advwsl.data import base, decoded

    root = write_images_and_masks(tmp_path / "ds", n=5)
    _sixteen_bit(root / "images" / "normal" / "normal_01.png", seed=4)  # not on the 8-bit lattice
    decoded.clear()
    plain = get_dataset("folder", root=root, split="train", size=size, cache=False)
    cached = get_dataset("folder", root=root, split="train", size=size)
    reads = []
    monkeypatch.setattr(base, "read_image", lambda path, _read=base.read_image: reads.append(path) or _read(path))
    for epoch in range(3):
        for i in range(len(cached)):
            a, b = plain[i], cached[i]
            assert a.keys() == b.keys() and a["path"] == b["path"] and a["label"] == b["label"]
            assert torch.equal(a["image"], b["image"]) and a["image"].dtype == b["image"].dtype
            assert torch.equal(a["mask"], b["mask"]) and a["mask"].dtype == b["mask"].dtype
    # the uncached dataset read every image every epoch, the cached one each image once
    assert len(reads) == 3 * len(plain) + len(cached)
    # an edited file (new modification time and size) is read again
    edited = root / cached.table["path"][0]
    Image.open(edited).convert("RGB").resize((24, 20)).rotate(90).save(edited)
    reads.clear()
    cached[0]
    assert len(reads) == 1
    # a random transform still runs on every access
    flipped = get_dataset("folder", root=root, split="train", size=size, transform=lambda s: {**s, "image": 1 - s["image"]})
    assert torch.equal(flipped[1]["image"], 1 - plain[1]["image"])
    # a later process starts from the disk cache (resized tiles only)
    expected = [plain[i] for i in range(len(plain))]
    decoded.clear()
    reads.clear()
    again = get_dataset("folder", root=root, split="train", size=size)
    for i in range(len(again)):
        assert torch.equal(again[i]["image"], expected[i]["image"])
        assert torch.equal(again[i]["mask"], expected[i]["mask"])
    assert len(reads) == (0 if size else len(again))
    decoded.clear()


def test_decode_cache_is_bounded(tmp_path, monkeypatch):
    from advwsl.data import decoded

    root = write_images_and_masks(tmp_path / "ds", n=5)
    decoded.clear()
    monkeypatch.setattr(decoded, "MEMORY_BYTES", 3 * (3 * 20 * 24) + 20 * 24)  # about three images
    ds = get_dataset("folder", root=root, split="train")
    for i in range(len(ds)):
        ds[i]
    assert 0 < decoded._memory_bytes[0] <= decoded.MEMORY_BYTES and len(decoded._MEMORY) <= 4
    decoded.clear()


def test_a_damaged_disk_cache_entry_is_decoded_again(tmp_path):
    from advwsl.data import decoded

    root = write_images_and_masks(tmp_path / "ds", n=5)
    first = get_dataset("folder", root=root, split="train", size=8)
    expected = [first[i]["image"] for i in range(len(first))]
    decoded.clear()
    for path in (tmp_path / "advwsl_home" / "decoded").rglob("*.npz"):
        path.write_bytes(b"not a zip")
    again = get_dataset("folder", root=root, split="train", size=8)
    assert all(torch.equal(again[i]["image"], expected[i]) for i in range(len(again)))
    decoded.clear()


# ------------------------------------------------------------------------------ tables and folders refused
def test_csv_duplicates_are_refused(tmp_path):
    root = tmp_path / "dup"
    for i in range(4):
        _image(root / f"{i}.png", seed=i)
    (root / "t.csv").write_text("path,label\n0.png,x\n1.png,y\n2.png,x\n./0.png,x\n3.png,y\n")
    with pytest.raises(DatasetError, match=r"0.png is listed twice .*rows 2, 5"):
        get_dataset("folder", root=root, split="train")
    (root / "t.csv").write_text("path,label\n0.png,x\n1.png,y\n2.png,x\n0.png,y\n3.png,y\n")
    with pytest.raises(DatasetError, match="0.png is listed with 2 different labels, rows 2, 5"):
        get_dataset("folder", root=root, split="train")


@pytest.mark.parametrize("outside", ["../secret.png", "/etc/passwd", "sub/../../secret.png", "/no/such/file.png"])
def test_csv_paths_outside_the_root_are_refused_unread(tmp_path, outside):
    root = tmp_path / "data"
    _image(root / "a.png")
    _image(root / "b.png", seed=1)
    _image(tmp_path / "secret.png", seed=2)
    (root / "t.csv").write_text(f"path,label\na.png,x\nb.png,y\n{outside},x\n")
    with pytest.raises(DatasetError, match="row 4: the image path .* leaves the data root") as info:
        get_dataset("folder", root=root, split="train")
    assert "does not exist" not in str(info.value)  # whether the file exists is not told
    (root / "t.csv").write_text(f"path,label,mask\na.png,x,{outside}\nb.png,y,\n")
    with pytest.raises(DatasetError, match="row 2: the mask path .* leaves the data root"):
        get_dataset("folder", root=root, split="train")


def test_misnamed_masks_folders_are_reported(tmp_path):
    root = write_images_and_masks(tmp_path / "ds", n=5)
    (root / "masks" / "tumor").rename(root / "masks" / "Tumor")
    with pytest.raises(DatasetError, match=r"masks/ holds \['Tumor'\] which match no class folder"):
        get_dataset("folder", root=root, split="train")
    (root / "masks").rename(root / "Masks")
    with pytest.raises(DatasetError, match="Masks/ next to images/; the masks folder must be named masks/"):
        get_dataset("folder", root=root, split="train")


def test_float_tiffs_read_in_unit_range_or_refused(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    root = tmp_path / "float"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for i in range(5):
            (root / cls).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / cls / f"{i}.tif", rng.random((12, 10, 3)).astype(np.float32), photometric="rgb")
    grey = rng.random((12, 10)).astype(np.float32)
    tifffile.imwrite(root / "a" / "grey.tif", grey)  # PIL opens it as mode "F"
    ds = get_dataset("folder", root=root, split="train", cache=False)
    for i in range(len(ds)):
        assert 0 <= float(ds[i]["image"].min()) and float(ds[i]["image"].max()) <= 1
    from advwsl.data.base import read_image

    np.testing.assert_array_equal(read_image(root / "a" / "grey.tif")[0].numpy(), grey)
    tifffile.imwrite(root / "b" / "3.tif", 200 * rng.random((12, 10, 3)).astype(np.float32), photometric="rgb")  # 0-255 floats
    with pytest.raises(DatasetError, match=r"3.tif holds floating-point values in \[.*\]; float images are read"):
        get_dataset("folder", root=root, split="train")
