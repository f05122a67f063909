"""Evaluation beyond the binary Dice: eq. 4.14 over the gland classes (hand-computed), the multi-label
(Pascal VOC) IoU with the background-0 arg max rule, Grad-CAM as a model, and chapter 3 training on the
VOC layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from advwsl.errors import ConfigError
from advwsl.models import create_model, gradcam_view
from advwsl.training import TrainConfig, build_datasets, evaluate, fit


class _FixedCams(nn.Module):
    """A 'model' whose CAMs are the first channels of its input (so a test writes them by hand)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.zeros(1))

    def cams(self, x):
        cams = x[:, : self.num_classes]
        return cams.mean(dim=(2, 3)), cams

    def forward(self, x):
        return self.cams(x)[0]


def _sample(cams, label, mask):
    return {"image": torch.tensor(cams, dtype=torch.float32), "label": label, "mask": torch.tensor(mask)}


def test_combined_gland_dice_eq_4_14_by_hand():
    # GlaS-like: classes benign (0) and malignant (1), each image's mask = its glands; 2 x 2 pixels.
    a = _sample([[[1, -1], [-1, -1]], [[-1, 2], [-1, -1]]], 0, [[1.0, 1.0], [0.0, 0.0]])  # A01 -> malignant
    b = _sample([[[-1, -1], [-1, -1]], [[1, -1], [-1, 1]]], 1, [[1.0, 0.0], [1.0, 0.0]])
    out = evaluate(_FixedCams(2), DataLoader([a, b], batch_size=2), cam_rule="argmax", region_classes=(0, 1))
    # benign: TP 1 (A00), FP 0, FN 1 (A01); malignant: TP 1 (B00), FP 2 (A01, B11), FN 1 (B10)
    assert out["dice_combined"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    # the binary Dice of the true class's map does not see A01 as a false positive: 2*2 / (2*2 + 1 + 2)
    assert out["dice_pixels"] == pytest.approx(4 / 7)
    single = evaluate(_FixedCams(2), DataLoader([a, b], batch_size=2), cam_rule="argmax", region_classes=(1,))
    assert "dice_combined" not in single  # one region class: the binary Dice says it all


def test_multilabel_miou_with_background_zero_and_void():
    # two classes; pixel classes 0 background, 1, 2; 255 void is ignored
    cams = [[[2, -1], [-1, -1]], [[-1, 3], [-1, 1]]]
    mask = torch.tensor([[1, 2], [0, 255]])
    sample = {"image": torch.tensor(cams, dtype=torch.float32), "label": torch.tensor([1.0, 1.0]), "mask": mask}
    out = evaluate(_FixedCams(2), DataLoader([sample], batch_size=1))
    # predictions [[1, 2], [0, 2]]; the void pixel is dropped: every counted pixel is right
    assert out["miou"] == pytest.approx(1.0) and out["iou_0"] == out["iou_1"] == out["iou_2"] == pytest.approx(1.0)
    assert 0 <= out["map"] <= 1 and "dice" not in out
    wrong = {**sample, "mask": torch.tensor([[2, 2], [0, 255]])}
    out = evaluate(_FixedCams(2), DataLoader([wrong], batch_size=1))
    # class 1: TP 0, FP 1 -> IoU 0; class 2: TP 1, FN 1 -> 1/2; background 1
    assert out["iou_1"] == pytest.approx(0.0) and out["iou_2"] == pytest.approx(0.5)
    assert out["miou"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_gradcam_model_is_the_cam_model_localized_by_grad_cam():
    torch.manual_seed(0)
    cam = create_model("cam", backbone="resnet-mini", stride=8).eval()
    view = gradcam_view(cam)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits, maps = view.cams(x)
        cam_logits, cams = cam.cams(x)
    hw = cams.shape[-1] * cams.shape[-2]
    bias = cam.head.classifier.bias.view(1, -1, 1, 1)
    assert torch.allclose(logits, cam_logits, atol=1e-6)
    assert torch.allclose(maps, torch.relu((cams - bias) / hw), atol=1e-6)  # section 1.3.4
    x.requires_grad_(True)
    _, maps = view.cams(x)
    (grad,) = torch.autograd.grad(maps.sum(), x)
    assert grad.abs().sum() > 0  # differentiable w.r.t. the input when gradients are on
    zoo = create_model("gradcam", backbone="resnet-mini", stride=8)
    assert type(zoo).__name__ == "GradCAMClassifier" and zoo.config["name"] == "gradcam"


def test_chapter_3_multilabel_training_on_the_voc_layout(tmp_path, voc_layout):
    root = voc_layout(tmp_path / "voc")
    with pytest.raises(ConfigError, match="image-bce"):
        build_datasets(TrainConfig(dataset="voc", data_root=str(root)), 0)
    with pytest.raises(ConfigError, match="multi-label"):
        build_datasets(TrainConfig(dataset="synthetic", loss="image-bce"), 0)
    cfg = TrainConfig(dataset="voc", data_root=str(root), model="deepmil-multi", model_kwargs={"dropout": 0.3},
                      backbone="resnet-mini", stride=8, loss="image-bce", monitor="map", epochs=1, batch_size=2,
                      lr=0.01, schedule="cosine", progress=False,
                      dataset_kwargs={})
    result = fit(cfg, tmp_path / "run")
    test = result.test
    assert {"map", "miou", "iou_0", "iou_20", "pixel_accuracy"} <= set(test)
    assert 0 <= test["miou"] <= 1 and 0 <= test["map"] <= 1
