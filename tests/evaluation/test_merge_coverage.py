"""``merge_reports`` checks sample coverage: every shard must hold exactly the samples of its batches, in
every attack, check and the noise table. A shard with a deleted row, shifted or duplicated indices, or a
damaged file is a clear error naming the shard, never a silent merge of fewer or other samples."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from advwsl.errors import ConfigError
from advwsl.evaluation.robustness import RobustnessReport, evaluate_robustness, merge_reports

N = 20  # 3 batches of 8 (the last one short): shard 0/2 holds batches 0 and 2, shard 1/2 batch 1


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x = torch.rand(N, 1, 3, 4)
    with torch.no_grad():
        y = net(x).argmax(1)
    root = tmp_path_factory.mktemp("shards")
    dirs = []
    for k in range(2):
        report = evaluate_robustness(net, x, y, epsilon=0.5, attacks=("ddn",), budgets={"ddn": {"steps": 10}},
                                     batch_size=8, shard=f"{k}/2", levels=None, pgd_steps=3, check_samples=6,
                                     noise_draws=2, progress=False)
        dirs.append(report.save(root / f"s{k}"))
    return dirs


def _load(dirs):
    return [RobustnessReport.load(d) for d in dirs]


def _edit_csv(path, change):
    frame = pd.read_csv(path)
    change(frame).to_csv(path, index=False)


@pytest.fixture
def copies(shards, tmp_path):
    import shutil

    return [shutil.copytree(d, tmp_path / d.name) for d in shards]


def test_intact_shards_merge_into_every_sample(shards):
    parts = _load(shards)
    merged = merge_reports(parts)
    assert list(merged.results["ddn"].index) == list(range(N))
    total = sum(p.config["seconds"] for p in parts)  # the shards' times add up
    assert total > 0 and merged.config["seconds"] == pytest.approx(total)
    assert list(merged.noise["index"]) == list(range(N))
    assert sorted(merged.pgd) and all(list(r.index) == list(range(N)) for r in merged.pgd.values())


@pytest.mark.parametrize("what, change, message", [
    ("deleted row", lambda f: f.drop(index=3), r"missing \[3\]"),
    ("shifted indices", lambda f: f.assign(index=f["index"] + 100), r"missing \[0, 1, 2, 3, 4\].*unexpected \[100"),
    ("duplicated index", lambda f: f.assign(index=f["index"].where(f.index != 4, 3)), r"twice \[3\]"),
])
def test_an_edited_attack_table_is_refused(copies, what, change, message):
    _edit_csv(copies[0] / "attack-ddn.csv", change)
    with pytest.raises(ConfigError, match=message) as info:
        merge_reports(_load(copies), names=["s0", "s1"])
    assert "s0" in str(info.value) and "shard 0/2" in str(info.value) and "evaluate" in str(info.value)


@pytest.mark.parametrize("name", ["pgd-0.csv", "more-steps.csv", "noise.csv"])
def test_an_edited_check_table_is_refused(copies, name):
    _edit_csv(copies[1] / name, lambda f: f.iloc[1:])
    with pytest.raises(ConfigError, match="do not cover shard 1/2"):
        merge_reports(_load(copies), names=["s0", "s1"])


def test_every_attack_of_a_shard_is_checked_even_when_they_agree(copies):
    """Rows deleted consistently from every table of a shard still leave samples uncovered."""
    for name in ("attack-ddn.csv", "noise.csv", "pgd-0.csv", "pgd-1.csv", "pgd-2.csv"):
        _edit_csv(copies[1] / name, lambda f: f[f["index"] != 10])
    with pytest.raises(ConfigError, match=r"missing \[10\]"):
        merge_reports(_load(copies), names=["s0", "s1"])


@pytest.mark.parametrize("damage", ["no json", "truncated csv", "bad values", "meta keys"])
def test_a_damaged_shard_is_a_clear_error(copies, damage):
    shard = copies[0]
    if damage == "no json":
        (shard / "attack-ddn.json").unlink()
    elif damage == "truncated csv":
        (shard / "attack-ddn.csv").write_text("index,la")
    elif damage == "bad values":
        _edit_csv(shard / "attack-ddn.csv", lambda f: f.assign(l2="abc"))
    else:
        meta = json.loads((shard / "robustness.json").read_text())
        del meta["epsilons"]
        (shard / "robustness.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=f"{shard}.*(damaged|not found|lacks)"):
        merge_reports(_load(copies))
