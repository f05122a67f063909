"""Fixtures shared by the command tests."""

from __future__ import annotations

import pytest

from advwsl.data.digits import sklearn_digits
from advwsl.pretrained import get_pretrained
from advwsl.pretrained.digits import DIGITS_CNN, train_classifier
from advwsl.models import create_model, save_model
from advwsl.utils import cache_dir


@pytest.fixture
def digits_model():
    """A quickly trained digits CNN placed in the cache, where ``--model digits-cnn`` finds it."""
    x, y = sklearn_digits(16, "train")
    model = create_model("cw-mnist", input_size=16)
    train_classifier(model, x[:200], y[:200], epochs=1, lr=3e-3)
    save_model(model, get_pretrained(DIGITS_CNN).stem())
    return model
