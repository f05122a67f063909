"""clean_accuracy of any model: equal on a tensor and on DataLoaders of pairs or dicts, the closed form of a
linear model, the model left as found, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advwsl.errors import InputError
from advwsl.evaluation import clean_accuracy


class _Dicts(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i], "index": i}


def _linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(12, 3))
    return model.train()  # dropout on: clean_accuracy must evaluate in eval mode


def test_clean_accuracy_tensor_pairs_and_dicts_agree_with_the_closed_form():
    model = _linear()
    x = torch.rand(50, 3, 2, 2)
    with torch.no_grad():
        predicted = model[2](x.flatten(1)).argmax(1)
    y = predicted.clone()
    y[:20] = (y[:20] + 1) % 3  # exactly 30 of 50 correct
    assert clean_accuracy(model, x, y, batch_size=7) == pytest.approx(0.6)
    assert clean_accuracy(model, DataLoader(TensorDataset(x, y), batch_size=16)) == pytest.approx(0.6)
    assert clean_accuracy(model, DataLoader(_Dicts(x, y), batch_size=9)) == pytest.approx(0.6)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_clean_accuracy_errors():
    model = _linear()
    x = torch.rand(4, 3, 2, 2)
    with pytest.raises(InputError, match="labels are required"):
        clean_accuracy(model, x)
    with pytest.raises(InputError, match="batch_size"):
        clean_accuracy(model, x, torch.zeros(4, dtype=torch.long), batch_size=0)
    with pytest.raises(InputError, match="pairs or dicts"):
        clean_accuracy(model, DataLoader(TensorDataset(x), batch_size=2))
    with pytest.raises(InputError, match="logits"):
        clean_accuracy(nn.Flatten(0), x, torch.zeros(4, dtype=torch.long))
