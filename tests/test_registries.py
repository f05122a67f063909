"""Every registered attack, dataset, architecture and built-in model, read from its registry (no hand-kept
list of names): each attack keeps the attack contract on a linear model whose minimal adversarial is known in
closed form; each dataset builds from its registry entry on a tiny copy of its official layout; each
architecture builds and runs; each built-in model names a recipe and code that exist."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advwsl.attacks import get_attack_spec, list_attacks
from advwsl.data import get_dataset, get_dataset_spec, list_datasets
from advwsl.models import create_model, list_models, model_info
from advwsl.pretrained import get_pretrained, list_pretrained

sys.path.insert(0, str(Path(__file__).parent / "attacks"))
from linear_models import central_inputs, l2, linear_model, optimal_untargeted  # noqa: E402

SHAPE = (3, 8, 8)


def _state(model: torch.nn.Module) -> tuple:
    return (model.training, [(p.detach().clone(), p.requires_grad, p.grad) for p in model.parameters()])


def _same_state(model: torch.nn.Module, before: tuple) -> bool:
    training, params = before
    return model.training == training and all(
        torch.equal(p, q) and p.requires_grad == rg and p.grad is g
        for p, (q, rg, g) in zip(model.parameters(), params))


def _problem(n: int = 12) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 10-class linear model, images near the middle of the box, their predicted labels (the first one
    replaced by a wrong label: an input that is already adversarial) and the minimal adversarial norms."""
    model = linear_model(10, SHAPE)
    x = central_inputs(n, SHAPE)
    with torch.no_grad():
        labels = model(x).argmax(1)
    labels[0] = (labels[0] + 1) % 10
    return model, x, labels, optimal_untargeted(model, x, labels)


def _kwargs(spec, budget: str) -> dict:
    return {**spec.kwargs(budget), **spec.runner_kwargs(levels=None, bounds=(0.0, 1.0), seed=0)}


@pytest.mark.parametrize("name", [n for n in list_attacks() if get_attack_spec(n).goal == "label"])
def test_every_label_attack_keeps_the_contract_on_a_linear_model(name):
    spec = get_attack_spec(name)
    model, x, labels, optimum = _problem()
    inputs, before = x.clone(), _state(model)
    budget = spec.contract_budget or spec.quick_budget
    if spec.minimal_norm:
        adv = spec.fn(model, inputs, labels, **_kwargs(spec, budget))
    else:  # a fixed radius above every sample's optimum: every sample can be made adversarial
        adv = spec.fn(model, inputs, labels, **{**_kwargs(spec, budget), "epsilon": 1.2 * float(optimum[1:].max())})
    assert torch.equal(inputs, x), "the attack modified its inputs"
    assert _same_state(model, before), "the attack left the model changed (mode, weights, requires_grad or .grad)"
    assert adv.shape == x.shape and bool(torch.isfinite(adv).all())
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1, "outside the box"
    with torch.no_grad():
        fooled = model(adv).argmax(1) != labels
    assert bool(fooled[1:].all()), f"{name} at {budget}: {int((~fooled[1:]).sum())} of {len(x) - 1} samples not fooled"
    if spec.minimal_norm:
        assert torch.equal(adv[0], x[0]), "an input that is already adversarial must come back unchanged"
        ratio = l2(adv[1:], x[1:]) / optimum[1:]
        assert float(ratio.max()) <= spec.contract_factor, \
            f"{name} at {budget}: norms up to {float(ratio.max()):.3f} x the minimal one"


@pytest.mark.parametrize("name", [n for n in list_attacks() if get_attack_spec(n).goal == "label"
                                  and not get_attack_spec(n).minimal_norm])
def test_every_fixed_radius_attack_stays_in_its_ball_and_fails_below_the_optimum(name):
    spec = get_attack_spec(name)
    model, x, labels, optimum = _problem()
    eps = 0.5 * float(optimum[1:].min())
    adv = spec.fn(model, x, labels, **{**_kwargs(spec, spec.contract_budget or spec.quick_budget), "epsilon": eps})
    assert float(l2(adv, x).max()) <= eps * (1 + 1e-4) + 1e-6
    with torch.no_grad():
        assert not bool((model(adv).argmax(1) != labels)[1:].any()), "fooled below the minimal norm: impossible"


@pytest.mark.parametrize("name", [n for n in list_attacks() if get_attack_spec(n).goal == "cam"])
def test_every_cam_attack_keeps_the_label_and_reports_its_goal(name):
    spec = get_attack_spec(name)
    torch.manual_seed(0)
    model = create_model("wildcat", num_classes=2, backbone="resnet-mini", stride=8).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        labels = model(x).argmax(1)
    kwargs = _kwargs(spec, spec.contract_budget or spec.quick_budget)
    inputs, before = x.clone(), _state(model)
    adv = spec.fn(model, inputs, labels, **kwargs)
    assert torch.equal(inputs, x) and _same_state(model, before)
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        assert bool((model(adv).argmax(1) == labels).all()), "a CAM attack keeps the label"
    reached = spec.success(model, x, adv, labels, kwargs)
    unchanged = (adv == x).flatten(1).all(1)
    assert bool((reached | unchanged).all()), "an adversarial that misses its goal must come back unchanged"


# --------------------------------------------------------------------------------------------- datasets
def _png(path: Path, size=(20, 24), seed: int = 0, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, 3) if mode == "RGB" else size
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode=mode).save(path)


def _write_folder(root: Path) -> Path:
    for c in ("normal", "tumour"):
        for i in range(3):
            _png(root / "images" / c / f"{c}_{i}.png", seed=i)
    return root


def _write_imagenet(root: Path) -> Path:
    for split in ("train", "val"):
        for w in ("n01440764", "n01443537"):
            for i in range(2):
                _png(root / split / w / f"{w}_{i}.JPEG", seed=i)
    return root


def _write_mnist(root: Path) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        images = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, n], dtype=">i4").tobytes() + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return root


def _write_camelyon16(root: Path) -> Path:
    rows = []
    for i in range(4):
        label = i % 2
        _png(root / "patches" / f"p{i}.png", size=(32, 32), seed=i)
        if label:
            _png(root / "masks" / f"p{i}.png", size=(32, 32), seed=i, mode="L")
        rows.append({"slide": "tumor_001", "x": 32 * i, "y": 0, "size": 32, "label": label,
                     "path": f"patches/p{i}.png", "mask_path": f"masks/p{i}.png" if label else ""})
    import pandas as pd

    for split in ("train", "valid", "test"):
        folder = root / "folds" / "fold_0"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    pd.DataFrame([{"slide": "tumor_001", "path": "none.tif", "xml": ""}]).to_csv(root / "slides.csv", index=False)
    return root


def _module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_fixtures_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _writers() -> dict:
    here = Path(__file__).parent
    data, common = _module(here / "data" / "conftest.py"), _module(here / "conftest.py")

    def cifar(root: Path) -> Path:
        images, labels = common.foolbox_cifar10_images()
        common.write_cifar10_batches(root, images, labels)
        return root

    return {"bach": data.write_bach, "breakhis": data.write_breakhis, "glas": data.write_glas, "cifar10": cifar,
            "folder": _write_folder, "imagenet": _write_imagenet, "mnist": _write_mnist,
            "camelyon16": _write_camelyon16, "voc": _voc}


def _voc(root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    ids = [f"2007_{i:06d}" for i in range(4)]
    for i, name in enumerate(ids):
        _png(voc / "JPEGImages" / f"{name}.jpg", size=(24, 32), seed=i)
        lab = np.zeros((24, 32), np.uint8)
        lab[4:12, 4:20] = 1 + i % 3
        Image.fromarray(lab, mode="L").save(voc / "SegmentationClass" / f"{name}.png")
        Image.fromarray(lab, mode="L").save(voc / "SegmentationClassAug" / f"{name}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[2:]) + "\n")
    return root


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_builds_from_its_registry_entry(name, tmp_path):
    spec = get_dataset_spec(name)
    root = None
    if spec.needs_root:
        writers = _writers()
        assert name in writers, f"dataset {name!r} needs a tiny fixture in its official layout in this test"
        root = str(writers[name](tmp_path / name))
    small = {"synthetic": {"size": 32, "n_trainval": 20, "n_test": 8}}.get(name, {})
    split = "test" if "test" in spec.splits else spec.splits[-1]
    data = get_dataset(name, root=root, split=split, transform=spec.eval_transform(), **small)
    assert len(data) > 0
    sample = data[0]
    image = sample["image"] if isinstance(sample, dict) else sample[0]
    assert image.dtype == torch.float32 and image.dim() == 3 and 0 <= float(image.min()) <= float(image.max()) <= 1
    if spec.has_masks and isinstance(sample, dict):
        assert sample.get("mask") is not None


# ------------------------------------------------------------------------------------- models and heads
@pytest.mark.parametrize("name", list_models())
def test_every_architecture_builds_and_runs(name):
    task = model_info(name).task
    kwargs = {"backbone": "resnet-mini", "stride": 8} if task == "wsl" else {}
    model = create_model(name, num_classes=3 if task != "segmentation" else 2, **kwargs).eval()
    size = {"cw-mnist": (1, 28, 28)}.get(name, (3, 32, 32))
    with torch.no_grad():
        out = model(torch.rand(2, *size))
    assert out.shape[0] == 2 and bool(torch.isfinite(out).all())
    if task == "wsl":
        logits, cams = model.cams(torch.rand(2, *size))
        assert cams.shape[:2] == (2, 3) and logits.shape == (2, 3)
    rebuilt = create_model(**copy.deepcopy(model.config))
    assert type(rebuilt) is type(model)


@pytest.mark.parametrize("name", list_pretrained())
def test_every_built_in_model_names_its_recipe_and_code(name):
    record = get_pretrained(name)
    recipe = record.recipe()
    json.dumps(recipe)  # the cache key hashes it: JSON-ready
    root = Path(__file__).resolve().parents[1]
    assert record.code and all((root / p).exists() for p in record.code)
    assert record.stem().name.startswith(record.cache_name or name)
    get_dataset_spec(record.dataset)
