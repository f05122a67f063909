"""The fully supervised bound through the same fit loop (section 2.1.3.2): U-Net training on pixel masks,
its evaluation by the Dice meters, and the configuration errors that come before any training."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from advwsl.data import training_transform
from advwsl.data.synthetic import SyntheticHistology
from advwsl.errors import ConfigError, InputError
from advwsl.config import TrainJobConfig
from advwsl.jobs.train import resolve_train_config
from advwsl.models import checkpoint_info, load_model
from advwsl.training import PRESETS, TrainConfig, build_model, check_data, check_model_options, evaluate, fit


class _Oracle(nn.Module):
    """Per-pixel logits that say the mask (channel 3 of the input carries it in this test)."""

    def forward(self, x):
        m = x[:, 3]
        return torch.stack([1 - 2 * m, 2 * m - 1], dim=1)


def _pairs(n=4, size=8):
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(n, size, size, generator=g) > 0.6).float()
    masks[0] = 0  # an image without region: an empty prediction scores 1
    images = torch.cat([torch.rand(n, 3, size, size, generator=g), masks[:, None]], dim=1)
    return [{"image": images[i], "label": 0, "mask": masks[i]} for i in range(n)]


def test_segmentation_evaluation_scores_the_predicted_foreground():
    data = _pairs()
    out = evaluate(_Oracle(), DataLoader(data, batch_size=3))
    assert out["dice"] == pytest.approx(1.0) and out["dice_pixels"] == pytest.approx(1.0)
    assert out["miou"] == pytest.approx(1.0) and "accuracy" not in out
    inverted = evaluate(nn.Sequential(_Oracle(), _Negate()), DataLoader(data, batch_size=3))
    assert inverted["dice_pixels"] == pytest.approx(0.0)
    with pytest.raises(InputError, match="against masks"):
        evaluate(_Oracle(), DataLoader([{"image": d["image"], "label": 0} for d in data], batch_size=2))


class _Negate(nn.Module):
    def forward(self, x):
        return -x


def test_unet_configuration_errors_come_first():
    with pytest.raises(ConfigError, match="pixel loss"):
        check_model_options(TrainConfig(model="unet"))
    with pytest.raises(ConfigError, match="segmentation model"):
        check_model_options(TrainConfig(model="cam", loss="pixel-ce"))
    with pytest.raises(ConfigError, match="monitor a localization"):
        check_model_options(TrainConfig(model="unet", loss="pixel-ce"))
    with pytest.raises(ConfigError, match="needs pixel masks"):
        check_data(TrainConfig(model="unet", loss="pixel-ce", monitor="dice", dataset="bach"))


def test_unet_presets_and_resolution():
    for name in ("glas-unet", "camelyon16-unet"):  # section 2.1.3.2: lr 0.1 / 10 every third, batches of 16
        cfg = TrainConfig.from_dict(PRESETS[name])
        assert (cfg.lr, cfg.batch_size, cfg.milestones, cfg.gamma) == (0.1, 16, (1 / 3, 2 / 3), 0.1)
    assert PRESETS["glas-unet"]["epochs"] == 960 and PRESETS["camelyon16-unet"]["epochs"] == 90
    cfg = resolve_train_config(TrainJobConfig(options={"model": "unet", "dataset": "synthetic", "epochs": 1}))
    assert (cfg.loss, cfg.monitor, cfg.epochs, cfg.model_kwargs["base_width"]) == ("pixel-ce-dice", "dice", 1, 8)
    three = build_model(TrainConfig(model="unet", loss="pixel-ce", monitor="dice", model_kwargs={"base_width": 4,
                                                                                                    "depth": 2}), 3)
    assert three.num_classes == 2  # background and region, whatever the image classes


def test_unet_trains_through_fit(tmp_path):
    kw = dict(size=32, n_trainval=40, n_test=16, num_classes=3)
    sets = (SyntheticHistology("train", transform=training_transform("synthetic"), **kw),
            SyntheticHistology("valid", **kw), SyntheticHistology("test", **kw))
    cfg = TrainConfig(model="unet", model_kwargs={"base_width": 4, "depth": 2}, loss="pixel-ce-dice",
                      monitor="dice", epochs=2, batch_size=8, lr=0.05, progress=False)
    result = fit(cfg, tmp_path / "run", train_set=sets[0], valid_set=sets[1], test_set=sets[2])
    assert len(result.history) == 2 and {"dice", "dice_pixels", "mdice_positive"} <= set(result.test)
    assert "train_ce" in result.history[0] and "train_dice_loss" in result.history[0]
    assert "accuracy" not in result.test
    info = checkpoint_info(tmp_path / "run" / "checkpoints" / "best")
    assert info["classes"] == ["background", "region"]
    model = load_model(tmp_path / "run" / "checkpoints" / "best")
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)
