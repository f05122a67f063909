"""`advwsl adv-train`, `advwsl evaluate-robustness` and `advwsl merge` end to end on small real data: run
directories, resume equal to an uninterrupted run, shards merged equal to one process, a WSL model on the
synthetic histology set, and actionable errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from advwsl.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


TRAIN = ["adv-train", "--model", "cw-mnist", "--dataset", "digits", "--attack", "ddn", "--epsilon-max", "2.4",
         "--steps", "5", "--epochs", "2", "--clean-epochs", "1", "--batch-size", "64", "--lr", "0.05",
         "--schedule", "constant", "--dataset-kwargs", '{"n": 256}',
         "--no-progress", "--device", "cpu"]


def test_adv_train_resume_equals_uninterrupted(tmp_path, monkeypatch):
    from advwsl.defenses.adversarial_training import AdversarialPerturbation

    train = [*TRAIN, "--attack", "pgd", "--steps", "3"]
    full = _invoke(*train, "--out", tmp_path / "full")
    assert full.exit_code == 0, full.output
    metrics = pd.read_csv(tmp_path / "full" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    # epoch 1 is clean (--clean-epochs 1), epoch 2 trains on PGD adversarials inside the 2.4-ball
    assert list(metrics["train_adv_samples"]) == [0, 256]
    assert metrics["train_adv_l2_mean"][1] > 0 and metrics["train_adv_l2_max"][1] <= 2.4 + 1e-5
    assert "mean L2 of training adversarials" in full.output

    original = AdversarialPerturbation.reset

    def crash_on_second_epoch(self):
        if self.epoch == 1:
            raise RuntimeError("killed at the start of epoch 2")
        original(self)

    monkeypatch.setattr(AdversarialPerturbation, "reset", crash_on_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        _invoke(*train, "--out", tmp_path / "cut")
    monkeypatch.setattr(AdversarialPerturbation, "reset", original)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 1
    resumed = _invoke("adv-train", "--resume", tmp_path / "cut")
    assert resumed.exit_code == 0, resumed.output
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "full" / "config.json").read_text())["config"]
    assert config["adversarial"]["attack"] == "pgd" and config["adversarial"]["epsilon"] == 2.4


def test_evaluate_shards_and_merge_equal_single_run(tmp_path):
    trained = _invoke(*TRAIN, "--epochs", "1", "--clean-epochs", "0", "--out", tmp_path / "train")
    assert trained.exit_code == 0, trained.output
    ckpt = tmp_path / "train" / "checkpoints" / "last.safetensors"
    common = ["evaluate-robustness", "--model", ckpt, "--dataset", "digits", "--n-samples", "24", "--batch-size", "8",
              "--attack", "ddn,deepfool", "--budget", "ddn=20", "--budget", "deepfool=10", "--epsilon", "1.0",
              "--no-checks", "--no-progress", "--device", "cpu"]
    single = _invoke(*common, "--out", tmp_path / "single")
    assert single.exit_code == 0, single.output
    assert "| **All** |" in single.output
    for k in range(2):
        shard = _invoke(*common, "--shard", f"{k}/2", "--out", tmp_path / f"s{k}")
        assert shard.exit_code == 0 and "advwsl merge" in shard.output
    merged = _invoke("merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "merged")
    assert merged.exit_code == 0, merged.output
    for name in ("attack-ddn.csv", "attack-deepfool.csv", "table.csv", "robustness_curves.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / name), pd.read_csv(tmp_path / "single" / name),
                                      check_exact=True)
    assert (tmp_path / "single" / "robustness_curves.png").is_file()

    # interrupted (as by Ctrl-C or SIGTERM) after 3 attack chunks, then the same command with the same --out:
    # the 3 chunks are read back, the rest attacked, and the report is the uninterrupted one
    import advwsl.evaluation.robustness as robustness
    from advwsl.attacks.chunks import ChunkStore

    real, calls = robustness.run_attack, {"n": 0}

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    robustness.run_attack = stopping
    try:
        stopped = CliRunner().invoke(main, [str(a) for a in (*common, "--out", tmp_path / "again")])
    finally:
        robustness.run_attack = real
    assert stopped.exit_code == 130 and "rerun the same command with --out" in stopped.output
    assert ChunkStore(tmp_path / "again" / "chunks").count() == 3
    saves = []
    real_save = ChunkStore.save
    ChunkStore.save = lambda self, key, arrays: (saves.append(key), real_save(self, key, arrays))[1]
    try:
        again = _invoke(*common, "--out", tmp_path / "again")
    finally:
        ChunkStore.save = real_save
    assert again.exit_code == 0, again.output
    assert len(saves) == 6 - 3  # 3 batches x 2 attacks, minus the 3 read back
    assert not (tmp_path / "again" / "chunks").exists() and not (tmp_path / "again" / "INCOMPLETE").exists()
    assert len(json.loads((tmp_path / "again" / "config.json").read_text())["resumed"]) == 1
    for name in ("attack-ddn.csv", "attack-deepfool.csv", "table.csv", "robustness_curves.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / name), pd.read_csv(tmp_path / "single" / name),
                                      check_exact=True)


def test_cli_errors_are_actionable(tmp_path):
    r = CliRunner().invoke(main, ["evaluate-robustness", "--model", "cw-mnist", "--epsilon", "1"])
    assert r.exit_code == 2 and "random weights; give its trained weights with --checkpoint" in r.output
    r = CliRunner().invoke(main, ["evaluate-robustness", "--model", "digits-cnn", "--epsilon", "1", "--shard", "3/2"])
    assert r.exit_code == 2 and "shard 3/2" in r.output
    r = CliRunner().invoke(main, ["evaluate-robustness", "--model", "digits-cnn", "--epsilon", "1",
                                  "--budget", "fgsm=3"])
    assert r.exit_code == 2 and "names 'fgsm', which is not among the attacks" in r.output
    r = CliRunner().invoke(main, [*TRAIN, "--epsilon-max", "-1", "--out", tmp_path / "bad"])
    assert r.exit_code == 2 and "epsilon" in r.output and not (tmp_path / "bad").exists()
    r = CliRunner().invoke(main, ["adv-train", "--model", "cw-mnist"])
    assert r.exit_code == 2 and "--epsilon" in r.output
    r = CliRunner().invoke(main, ["merge", str(tmp_path)])
    assert r.exit_code == 2 and "no robustness evaluation" in r.output


def test_strong_preset_keeps_its_minimal_norm_attacks(tmp_path):
    """``--attack strong`` in the minimal-norm evaluation: DDN, FMN, FAB and C&W, an All row over them, and
    a notice for the fixed-radius members; naming a fixed-radius attack itself stays an error."""
    from advwsl.config import RobustnessConfig
    from advwsl.jobs.robustness import plan_robustness

    plan = plan_robustness(RobustnessConfig(model="digits-cnn", attacks=("strong",), budget=("quick",),
                                            out=str(tmp_path / "r")))
    assert list(plan.budgets) == ["ddn", "fmn", "fab", "cw"]
    assert "apgd-ce, apgd-t" in plan.notices[0] and "--attack strong" in plan.notices[0]
    r = CliRunner().invoke(main, ["evaluate-robustness", "--model", "digits-cnn", "--attack", "ddn,apgd-ce"])
    assert r.exit_code == 2 and "apgd-ce is not a minimal-norm label attack" in r.output
