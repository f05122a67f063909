"""Progress bars never change training: the demo trained with bars on and off gives bit-identical weights,
and the loops iterate each loader exactly once per epoch whatever the display."""

from __future__ import annotations

import hashlib

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from advwsl.pretrained import demo
from advwsl.models import checkpoint_paths
from advwsl.training import evaluate, train_one_epoch

# the demo's recipe and code path (demo_model -> cached_model -> fit), a few batches of 16 tiles
TINY = {"epochs": 2, "batch_size": 16, "dataset_kwargs": {"size": 32, "n_trainval": 64, "n_test": 8}}


def _weights_digest(stem) -> tuple[str, dict[str, torch.Tensor]]:
    weights = load_file(str(checkpoint_paths(stem)[0]))
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode() + weights[key].contiguous().numpy().tobytes())
    return digest.hexdigest(), weights


def test_demo_trains_identically_with_and_without_progress(tmp_path, monkeypatch):
    """Issue: with tqdm.auto's class, wrapping a DataLoader called iter() on it in the bar's constructor;
    each extra DataLoader iterator draws its base seed from torch's global generator, which shifted every
    later random augmentation (epoch-1 loss 0.6202 with bars against 0.6678 without)."""
    digests, histories = {}, {}
    for progress in (True, False):
        monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / f"home-{progress}"))
        demo.demo_model("wildcat", progress=progress, **TINY)
        stem = demo.demo_checkpoint("wildcat", **TINY)
        digests[progress], _ = _weights_digest(stem)
        metrics = (stem.with_name(stem.name + ".training") / "metrics.csv").read_text()
        histories[progress] = [line.split(",")[:3] for line in metrics.splitlines()]  # epoch, loss, accuracy...
    assert digests[True] == digests[False]
    assert histories[True] == histories[False]


class _CountingLoader:
    """A DataLoader wrapper counting how many iterators were made of it."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.iterators = loader, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.iterators += 1
        return iter(self.loader)


def _one_epoch(progress: bool) -> tuple[_CountingLoader, _CountingLoader, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(12, 3, 8, 8), torch.randint(0, 2, (12,)))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train, valid = _CountingLoader(DataLoader(data, batch_size=4, shuffle=True)), _CountingLoader(DataLoader(data))
    out = train_one_epoch(model, train, optimizer, progress=progress)
    evaluate(model, valid, progress=progress)
    assert out["images"] == 12
    return train, valid, model[1].weight.detach().clone(), torch.get_rng_state()


def test_each_loader_is_iterated_once_per_pass():
    for progress in (True, False):
        train, valid, _, _ = _one_epoch(progress)
        assert (train.iterators, valid.iterators) == (1, 1), progress
    _, _, weight_on, rng_on = _one_epoch(True)
    _, _, weight_off, rng_off = _one_epoch(False)
    assert torch.equal(weight_on, weight_off)
    assert torch.equal(rng_on, rng_off)  # the display draws nothing from the global generator
