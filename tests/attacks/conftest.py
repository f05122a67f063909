"""Fixtures shared by the attack tests."""

from __future__ import annotations

import pytest

from counting import train_digits_cnn


@pytest.fixture(scope="session")
def digits():
    """A small CNN trained on the scikit-learn digits and 48 correctly classified test images."""
    return train_digits_cnn(48)
