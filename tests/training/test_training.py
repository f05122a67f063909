"""Training loop, evaluation, recipes, fit with run files and resume (distributed runs: test_distributed)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advwsl.data.synthetic import SyntheticHistology
from advwsl.data import training_transform
from advwsl.errors import ConfigError, InputError
from advwsl.evaluation.metrics import dice_per_image, dice_score
from advwsl.losses import SizeSupervisedLoss
from advwsl.models import create_model, load_model
from advwsl.training import PRESETS, TrainConfig, build_optimizer, load_config, lr_factor, preset
from advwsl.training import read_metrics_csv
from advwsl.models.cams import cam_masks
from advwsl.training import evaluate, fit, train_one_epoch


def _mini(num_classes: int = 2, name: str = "wildcat") -> nn.Module:
    return create_model(name, num_classes=num_classes, backbone="resnet-mini", stride=8,
                        backbone_kwargs={"widths": [8, 16, 16, 16], "blocks": [1, 1, 1, 1]})


@pytest.fixture(scope="module")
def tiny_sets():
    kw = dict(size=32, n_trainval=80, n_test=32)
    return (SyntheticHistology("train", transform=training_transform("synthetic"), **kw),
            SyntheticHistology("valid", **kw), SyntheticHistology("test", **kw))


# ----------------------------------------------------------------------------------------- recipes
def test_schedules_closed_forms():
    cfg = TrainConfig(schedule="cosine", lr=0.01, lr_min=0.001, epochs=10)
    assert lr_factor(cfg, 0, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 50, 100) == pytest.approx(0.1 + 0.9 * 0.5)  # appendix II: halfway = mean
    assert lr_factor(cfg, 100, 100) == pytest.approx(0.1)
    step = TrainConfig(schedule="step", lr=0.01)  # section 2.1.3.1: 0.01 then 0.001 for the second half
    assert [lr_factor(step, it, 100) for it in (0, 49, 50, 99)] == pytest.approx([1, 1, 0.1, 0.1])


def test_optimizer_is_nesterov_sgd_with_loss_parameters_without_decay():
    model, crit = _mini(), SizeSupervisedLoss("adaptive")
    opt = build_optimizer(TrainConfig(), model, crit)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and opt.param_groups[1]["weight_decay"] == 0.0
    assert {id(p) for p in opt.param_groups[1]["params"]} == {id(p) for p in crit.parameters()}


def test_presets_and_config_files(tmp_path):
    for name in PRESETS:
        preset(name)  # every recipe is a valid configuration
    assert preset("glas").batch_size == 32 and preset("glas").epochs == 160  # section 2.1.3.1
    assert preset("glas-size").schedule == "cosine" and preset("glas-size").loss == "size-adaptive"  # 4.4.2
    (tmp_path / "c.toml").write_text('preset = "bach"\nepochs = 3\n[loss_kwargs]\nlambda_size = 2.0\n')
    data = load_config(tmp_path / "c.toml")
    assert data["epochs"] == 3 and data["batch_size"] == 64 and data["loss_kwargs"] == {"lambda_size": 2.0}
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 2, "model": "cam"}))
    assert TrainConfig.from_dict(load_config(tmp_path / "c.json")).model == "cam"
    with pytest.raises(ConfigError, match="has no setting .epoch."):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")


# ------------------------------------------------------------------------------------------- loops
def test_cam_masks_rules():
    cams = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]], [[1.0, 3.0], [-1.0, -2.0]]]])  # (1, 2, 2, 2)
    one = torch.tensor([0])
    assert cam_masks(cams, one, (2, 2), "zero")[0].tolist() == [[True, False], [True, False]]
    assert cam_masks(cams, one, (2, 2), "argmax")[0].tolist() == [[True, False], [True, False]]
    assert cam_masks(cams, torch.tensor([1]), (2, 2), "argmax")[0].tolist() == [[False, True], [False, False]]
    # min-max: (m - (-3)) / 5 >= 0.5  <=>  m >= -0.5
    assert cam_masks(cams, one, (2, 2), "minmax")[0].tolist() == [[True, False], [True, False]]
    assert cam_masks(cams, one, (8, 8), "zero").shape == (1, 8, 8)
    with pytest.raises(InputError, match="CAM rule must be one of zero, argmax, minmax"):
        cam_masks(cams, one, (2, 2), "otsu")


def test_evaluate_matches_metric_functions(tiny_sets):
    _, valid, _ = tiny_sets
    model = _mini().eval()
    out = evaluate(model, DataLoader(valid, batch_size=7))
    images, labels, masks = valid.tensors()
    with torch.no_grad():
        logits, cams = model.cams(images)
    assert out["accuracy"] == pytest.approx((logits.argmax(1) == labels).double().mean().item())
    pred = cam_masks(cams, labels, (32, 32), "zero")
    assert out["dice"] == pytest.approx(dice_per_image(pred, masks > 0.5).mean().item())
    assert out["dice_pixels"] == pytest.approx(dice_score(pred, masks > 0.5))
    assert out["loss"] == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert model.training is False


class _Recorder:
    """A perturbation hook with the optional methods the loop uses."""

    def __init__(self):
        self.calls, self.resets = [], 0

    def reset(self):
        self.resets += 1

    def stats(self):
        return {"hook_batches": float(len(self.calls))}

    def __call__(self, model, images, labels):
        self.calls.append((type(model).__name__, model.training, images.shape[0]))
        return (images + 0.01).clamp(0, 1)


def test_train_one_epoch_hook_and_tuple_batches():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 3, 32, 32, generator=g), torch.randint(0, 2, (24,), generator=g)
    model = _mini()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 0.5 ** it)
    hook = _Recorder()
    out = train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=8), opt, scheduler=sched, perturb=hook)
    assert hook.resets == 1 and out["hook_batches"] == 3.0
    assert hook.calls == [("WSLClassifier", True, 8)] * 3
    # lr: what the epoch's last step used (0.5 ** 2), not the scheduler's value for the next epoch (0.5 ** 3)
    assert out["images"] == 24 and out["lr"] == pytest.approx(0.01 * 0.5**2) and math.isfinite(out["loss"])
    with pytest.raises(InputError, match="needs masks"):
        train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=8), opt, criterion=SizeSupervisedLoss("l2"))


# ------------------------------------------------------------------------------------------ fit
def _tiny_config(**kw) -> TrainConfig:
    base = dict(model="cam", backbone="resnet-mini", stride=8, epochs=3, batch_size=16, lr=0.05, schedule="cosine",
                loss="size-adaptive", loss_kwargs={"lambda_size": 1.0, "lambda_entropy": 0.1}, size_noise=0.05,
                progress=False, model_kwargs={"backbone_kwargs": {"widths": [8, 16, 16, 16], "blocks": [1, 1, 1, 1]}})
    return TrainConfig.from_dict({**base, **kw})


class _Kill(Exception):
    pass


def test_fit_writes_run_files_and_resume_equals_uninterrupted(tmp_path, tiny_sets):
    train, valid, test = tiny_sets
    cfg = _tiny_config()
    full = fit(cfg, tmp_path / "full", train_set=train, valid_set=valid, test_set=test)
    files = {p.relative_to(tmp_path / "full").as_posix() for p in (tmp_path / "full").rglob("*") if p.is_file()}
    assert {"metrics.csv", "summary.json", "summary.md", "learning_curves.png", "state/last.pt",
            "checkpoints/best.safetensors", "checkpoints/best.json", "checkpoints/last.safetensors",
            "checkpoints/last.json"} <= files
    assert len(read_metrics_csv(tmp_path / "full" / "metrics.csv")) == 3 and full.test is not None

    def kill_at_3(epoch, row):  # dies during epoch 3, after epochs 1-2 were saved
        if epoch == 3:
            raise _Kill
    with pytest.raises(_Kill):
        fit(cfg, tmp_path / "cut", train_set=train, valid_set=valid, test_set=test, on_epoch_end=kill_at_3)
    assert len(read_metrics_csv(tmp_path / "cut" / "metrics.csv")) == 2
    with pytest.raises(ConfigError, match="resume"):
        fit(cfg, tmp_path / "cut", train_set=train, valid_set=valid, test_set=test)
    resumed = fit(cfg, tmp_path / "cut", train_set=train, valid_set=valid, test_set=test, resume=True)
    a, b = load_model(tmp_path / "full/checkpoints/last"), load_model(tmp_path / "cut/checkpoints/last")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    rows_a, rows_b = read_metrics_csv(tmp_path / "full/metrics.csv"), read_metrics_csv(tmp_path / "cut/metrics.csv")
    assert [r["epoch"] for r in rows_b] == [1.0, 2.0, 3.0]
    timing = ("train_seconds", "train_images_per_s")
    for ra, rb in zip(rows_a, rows_b):
        assert {k: v for k, v in ra.items() if k not in timing} == {k: v for k, v in rb.items() if k not in timing}
    assert resumed.test == full.test
    sidecar = json.loads((tmp_path / "cut/checkpoints/last.json").read_text())
    assert set(sidecar["loss_state"]) == {"adaptive.robust.alpha_latent", "adaptive.robust.scale_latent"}
    # a finished run is read back, not redone
    again = fit(cfg, tmp_path / "cut", train_set=train, valid_set=valid, test_set=test, resume=True)
    assert again.best_epoch == resumed.best_epoch


@pytest.mark.slow
def test_short_training_learns_classification_and_localization(tmp_path):
    """resnet-mini + WILDCAT on the synthetic set (the 'synthetic' recipe, 6 epochs): accuracy well above
    chance (0.5) and CAM Dice on lesion images well above an all-foreground prediction."""
    kw = dict(size=64, n_trainval=1280, n_test=256)
    train = SyntheticHistology("train", transform=training_transform("synthetic"), **kw)
    valid, test = SyntheticHistology("valid", **kw), SyntheticHistology("test", **kw)
    cfg = preset("synthetic", progress=False, dataset_kwargs=kw)
    result = fit(cfg, tmp_path, train_set=train, valid_set=valid, test_set=test)
    _, _, masks = test.tensors()
    lesion = masks.flatten(1).any(1)
    all_fg = dice_per_image(torch.ones_like(masks[lesion], dtype=torch.bool), masks[lesion] > 0.5).mean().item()
    print(f"test accuracy {result.test['accuracy']:.3f} (chance 0.5); CAM mDice on lesion images "
          f"{result.test['mdice_positive']:.3f} vs all-foreground {all_fg:.3f}")
    assert result.test["accuracy"] >= 0.8
    assert result.test["mdice_positive"] >= all_fg + 0.1


def test_chance_warning_rule():
    from advwsl.training.fit import CHANCE_MARGIN, chance_warning

    rows = [{"valid_accuracy": 0.12}, {"valid_accuracy": 0.19}]
    message = chance_warning(rows, 10)
    assert message and "19.0 %" in message and "10 classes (10.0 %)" in message
    assert chance_warning([{"valid_accuracy": 0.1 + CHANCE_MARGIN + 0.01}], 10) is None
    assert chance_warning([{"valid_accuracy": 0.55}, {"valid_accuracy": 0.61}], 2) is None
    assert chance_warning([{"valid_loss": 1.0}], 2) is None and chance_warning(rows, None) is None
