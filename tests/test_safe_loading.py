"""Nothing executable is loaded: a resumable training state is read with ``torch.load(weights_only=True)``
and CIFAR-10 batches through an unpickler that admits only the dict of arrays, lists and strings the format
has. A planted payload (a pickle whose ``__reduce__`` runs code) is refused with a clear error and never
runs; a state that lacks what a resumed run needs is a clear error, not a ``KeyError``."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from advwsl.data.digits import Cifar10Batches
from advwsl.errors import CheckpointError, DatasetError
from advwsl.training import load_state, rng_state, save_state, set_rng_state


class _Payload:
    """Writes ``marker`` when unpickled."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _state(**extra) -> dict:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    return {"epoch": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "criterion": {}, "annotator": None, "perturb": None,
            "rng": [rng_state()], "best_value": 0.5, "best_epoch": 1, "history": [{"epoch": 1.0}], **extra}


# ------------------------------------------------------------------------------------ resume state
def test_a_resume_state_round_trips_and_restores_every_generator(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = save_state(tmp_path / "state" / "last.pt", _state())
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    state = load_state(path)
    assert state["epoch"] == 1 and set(state["model"]) == {"weight", "bias"}
    set_rng_state(state["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_state_written_by_an_earlier_version_still_loads(tmp_path):
    """Earlier versions saved NumPy's generator state as an array (a NumPy global in the pickle)."""
    np.random.seed(3)
    state = _state()
    state["rng"] = [{"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}]
    expected = np.random.rand()
    torch.save(state, tmp_path / "last.pt")
    set_rng_state(load_state(tmp_path / "last.pt")["rng"][0])
    assert np.random.rand() == expected


def test_a_planted_resume_state_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    torch.save(_state(history=[{"epoch": 1.0, "x": _Payload(marker)}]), tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="refusing to load.*builtins.exec") as info:
        load_state(tmp_path / "last.pt")
    assert "not written by advwsl" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("drop", ["model", "rng", "history", "epoch"])
def test_a_resume_state_missing_keys_is_a_clear_error(tmp_path, drop):
    state = _state()
    del state[drop]
    save_state(tmp_path / "last.pt", state)
    with pytest.raises(CheckpointError, match=f"lacks.*{drop}.*start the run again"):
        load_state(tmp_path / "last.pt")


def test_a_resume_state_of_the_wrong_shape_is_a_clear_error(tmp_path):
    save_state(tmp_path / "list.pt", [1, 2])
    with pytest.raises(CheckpointError, match="not an advwsl run state"):
        load_state(tmp_path / "list.pt")
    save_state(tmp_path / "rng.pt", _state(rng=[{"python": random.getstate()}]))
    with pytest.raises(CheckpointError, match="generator"):
        set_rng_state(load_state(tmp_path / "rng.pt")["rng"][0])
    (tmp_path / "cut.pt").write_bytes((tmp_path / "list.pt").read_bytes()[:40])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(tmp_path / "cut.pt")


# -------------------------------------------------------------------------------------- CIFAR-10
def _cifar(root, cifar10_batches, n=10):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    cifar10_batches(root, images, labels)
    return images, labels


def test_cifar10_batches_load_through_the_restricted_unpickler(tmp_path, cifar10_batches):
    images, labels = _cifar(tmp_path, cifar10_batches)
    test = Cifar10Batches(str(tmp_path), "test")
    assert test.classes[:2] == ("airplane", "automobile") and len(test) == len(labels)
    assert torch.equal(test[3]["image"], torch.from_numpy(images[3].transpose(2, 0, 1)).float() / 255)
    assert test[3]["label"] == labels[3]


def test_cifar10_batches_pickled_by_python2_numpy_load(tmp_path, cifar10_batches):
    """The official files were pickled by Python 2 with NumPy 1: the globals are ``numpy.core.multiarray``."""
    images, labels = _cifar(tmp_path, cifar10_batches)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data or b"numpy.core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert Cifar10Batches(str(tmp_path), "test")[0]["label"] == labels[0]


@pytest.mark.parametrize("name", ["test_batch", "batches.meta"])
def test_a_planted_cifar10_batch_does_not_run(tmp_path, cifar10_batches, name):
    _cifar(tmp_path, cifar10_batches)
    marker = tmp_path / "ran"
    with open(tmp_path / "cifar-10-batches-py" / name, "wb") as f:
        pickle.dump({"data": _Payload(marker), "labels": [0], "label_names": ["a"] * 10}, f, protocol=2)
    with pytest.raises(DatasetError, match=f"refusing to read {name}.*builtins.exec") as info:
        Cifar10Batches(str(tmp_path), "test")
    assert "cifar-10-python.tar.gz" in str(info.value)
    assert not marker.exists()


def test_a_cifar10_batch_of_objects_is_refused(tmp_path, cifar10_batches):
    _cifar(tmp_path, cifar10_batches)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": np.array([[object()]], dtype=object), "labels": [0]}, f, protocol=2)
    with pytest.raises(DatasetError, match="refusing to read test_batch"):
        Cifar10Batches(str(tmp_path), "test")
