"""Two gloo processes on CPU (DistributedDataParallel) give the single-process results.

A network without batch normalization or dropout trained on equal global batches gets the same averaged
gradients in both settings, so weights and metrics agree to float rounding; the sharded evaluation of a
WSL model (classification and CAM metrics reduced over ranks) equals the single-process one exactly.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

from advwsl.data.digits import sklearn_digits
from advwsl.data.synthetic import SyntheticHistology
from advwsl.models import create_model
from advwsl.training import TrainConfig
from advwsl.training import evaluate, fit


def _job(run_dir: str) -> dict:
    """The same work in every setting: train a C&W net on digits, then evaluate a fixed WSL model."""
    import torch.distributed as dist

    from advwsl.training import shard_dataset

    torch.manual_seed(0)
    x, y = sklearn_digits(16, "train")
    x, y = x[:640], y[:640]
    xv, yv = sklearn_digits(16, "test")
    model = create_model("cw-mnist", num_classes=10, input_size=16)
    cfg = TrainConfig(model="cw-mnist", dataset="digits", epochs=2, batch_size=64, lr=0.05, schedule="constant",
                      evaluate_test=False, progress=False, seed=3)
    result = fit(cfg, run_dir, model=model, train_set=TensorDataset(x, y), valid_set=TensorDataset(xv, yv))
    torch.manual_seed(1)
    wsl = create_model("wildcat", num_classes=2, backbone="resnet-mini", stride=8,
                       backbone_kwargs={"widths": [8, 16, 16, 16], "blocks": [1, 1, 1, 1]})
    valid = SyntheticHistology("valid", size=32, n_trainval=90, n_test=8)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    metrics = evaluate(wsl, DataLoader(shard_dataset(valid, rank, world), batch_size=5))
    return {"history": result.history, "weights": {k: v.clone() for k, v in model.state_dict().items()},
            "eval": metrics}


def _worker(rank: int, world: int, port: int, run_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = _job(run_dir)
    import torch.distributed as dist

    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_gloo_processes_match_one(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = _job(str(tmp_path / "single"))
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(out)), nprocs=2, join=True)
    double = torch.load(out, weights_only=False)
    diff = max((v - double["weights"][k]).abs().max().item() for k, v in single["weights"].items())
    scale = max(v.abs().max().item() for v in single["weights"].values())
    print(f"max weight difference 1 vs 2 processes: {diff:.2e} (largest weight {scale:.2e})")
    assert diff < 1e-4
    for r1, r2 in zip(single["history"], double["history"]):
        assert r1["train_loss"] == pytest.approx(r2["train_loss"], rel=1e-4)
        assert r1["valid_accuracy"] == pytest.approx(r2["valid_accuracy"], abs=1 / 450)
        assert r1["train_images"] == r2["train_images"] == 640
    assert single["eval"] == pytest.approx(double["eval"], rel=1e-6)  # loss: float32 batch means
    # rank 0 alone wrote the run files
    names = {d: sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("ddp", "single")}
    assert names["ddp"] == names["single"]


def _adv_job(run_dir: str) -> dict:
    """DDN adversarial training (eq. A V-9) of a C&W net on digits: each sample's adversarial depends on the
    sample only (the attack runs in eval mode, no random start), so the split of a batch over ranks changes
    nothing."""
    from advwsl.defenses import make_perturbation

    torch.manual_seed(0)
    x, y = sklearn_digits(16, "train")
    x, y = x[:256], y[:256]
    xv, yv = sklearn_digits(16, "test")
    model = create_model("cw-mnist", num_classes=10, input_size=16)
    cfg = TrainConfig(model="cw-mnist", dataset="digits", epochs=1, batch_size=64, lr=0.05, schedule="constant",
                      evaluate_test=False, progress=False, seed=3)
    hook = make_perturbation("ddn", 1.0, steps=5, seed=3)
    result = fit(cfg, run_dir, model=model, train_set=TensorDataset(x, y), valid_set=TensorDataset(xv[:64], yv[:64]),
                 perturb=hook)
    return {"history": result.history, "weights": {k: v.clone() for k, v in model.state_dict().items()}}


def _adv_worker(rank: int, world: int, port: int, run_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = _adv_job(run_dir)
    import torch.distributed as dist

    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_adversarial_training_two_gloo_processes_match_one(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = _adv_job(str(tmp_path / "single"))
    out = tmp_path / "ddp.pt"
    mp.spawn(_adv_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(out)), nprocs=2, join=True)
    double = torch.load(out, weights_only=False)
    diff = max((v - double["weights"][k]).abs().max().item() for k, v in single["weights"].items())
    print(f"adversarial training, max weight difference 1 vs 2 processes: {diff:.2e}")
    assert diff < 1e-4
    (r1,), (r2,) = single["history"], double["history"]
    assert r1["train_loss"] == pytest.approx(r2["train_loss"], rel=1e-4)
    assert r1["train_adv_l2_mean"] == pytest.approx(r2["train_adv_l2_mean"], rel=1e-4)
    assert r1["train_adv_samples"] == r2["train_adv_samples"] == 256
