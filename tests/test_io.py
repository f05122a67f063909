"""Files advwsl writes atomically get the permissions of any other file the user creates (0666 less the
umask), like the CSV and PNG files pandas and matplotlib write: not 0600 for JSON and checkpoints."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest
import torch

from advwsl.io import atomic_path, atomic_write_text, write_json
from advwsl.models import create_model, save_model


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask_like_plain_files(tmp_path, umask):
    old = os.umask(umask)
    try:
        pd.DataFrame({"a": [1]}).to_csv(tmp_path / "plain.csv")
        write_json(tmp_path / "summary.json", {"a": 1})
        atomic_write_text(tmp_path / "table.md", "| a |\n")
        with atomic_path(tmp_path / "state.pt") as tmp:
            torch.save({"x": torch.zeros(1)}, tmp)
        torch.manual_seed(0)
        save_model(create_model("cw-mnist", input_size=16), tmp_path / "model")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "plain.csv") == expected
    for name in ("summary.json", "table.md", "state.pt", "model.safetensors", "model.json"):
        assert _mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_an_atomic_write_that_fails_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
