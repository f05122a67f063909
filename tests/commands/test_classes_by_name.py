"""Classes by name, never by position: a folder dataset whose class folders sort the other way than the
model's classes is refused with what to do, or with ``--remap-classes`` evaluated with its labels mapped
by name (a model that is always right then scores 100 %, not 0 %)."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from advwsl.cli import main

FACTORY = '''
import torch
from torch import nn


class RedOrBlue(nn.Module):
    """Logit 0 (normal) for red tiles, logit 1 (malignant) for blue ones."""

    classes = ["normal", "malignant"]

    def forward(self, x):
        red, blue = x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))
        return 20 * torch.stack([red - blue, blue - red], 1)


def make():
    return RedOrBlue()
'''


def _folder(root):
    rng = np.random.default_rng(0)
    for name, channel in (("normal", 0), ("malignant", 2)):
        (root / "images" / name).mkdir(parents=True)
        for i in range(4):
            image = (rng.random((16, 16, 3)) * 60).astype(np.uint8)
            image[..., channel] = 200
            Image.fromarray(image).save(root / "images" / name / f"{i}.png")
    return root


def test_a_dataset_sorting_the_classes_the_other_way_is_refused_or_remapped(tmp_path):
    (tmp_path / "model.py").write_text(FACTORY)
    data = _folder(tmp_path / "data")
    args = ["attack", "--model", f"{tmp_path / 'model.py'}:make", "--dataset", "folder", "--data-root", str(data),
            "--split", "test", "--budget", "5", "--no-progress"]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "--remap-classes" in refused.output and "normal" in refused.output
    assert not (tmp_path / "a").exists()
    mapped = CliRunner().invoke(main, [*args, "--remap-classes", "--out", str(tmp_path / "b")])
    assert mapped.exit_code == 0, mapped.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["clean_accuracy"] == 1.0
