"""Resumable attack runs (run_attack's ``checkpoint``): an interrupted run given its folder again attacks only
what it had not finished and returns the records of an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advwsl.attacks import get_attack_spec, run_attack
from advwsl.attacks.chunks import ChunkStore
from advwsl.attacks.ddn import quantize
from advwsl.evaluation import evaluate_robustness
from linear_models import central_inputs, linear_model

COLUMNS = ["index", "label", "target", "clean_pred", "adv_pred", "originally_correct", "success", "l2", "gray_l2",
           "n_forward", "n_backward"]


@pytest.fixture
def setup():
    model = linear_model(10, (1, 6, 6), scale=0.3)
    x = quantize(central_inputs(12, (1, 6, 6)), 256)
    y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10
    return model, x, y


class Stop(Exception):
    pass


def stopping_after(calls: int):
    """DDN that raises on its call number ``calls + 1`` (an interrupted run) and counts its calls."""
    ddn = get_attack_spec("ddn").fn
    count = {"n": 0}

    def attack(model, inputs, labels, *, targeted=False, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Stop
        return ddn(model, inputs, labels, targeted=targeted, **kwargs)

    attack.__qualname__ = "ddn_stopping"  # the same key for the interrupted and the resumed run
    return attack, count


def same_records(a, b):
    for column in COLUMNS:
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)


@pytest.mark.parametrize("targeted", [False, True])
def test_interrupted_run_resumes_with_the_same_records(setup, tmp_path, targeted):
    model, x, y = setup
    options = dict(attack_kwargs={"steps": 15}, batch_size=4 if not targeted else 20, targeted=targeted,
                   progress=False, keep_adversarials=True)
    attack, count = stopping_after(10 ** 6)
    full = run_attack(model, x, y, attack=attack, **options)
    chunks = count["n"]
    assert chunks >= 3  # (12 images in chunks of 4, or 108 targeted records in chunks of 20)
    attack, count = stopping_after(2)
    with pytest.raises(Stop):
        run_attack(model, x, y, attack=attack, checkpoint=tmp_path / "chunks", **options)
    assert ChunkStore(tmp_path / "chunks").count() == 2
    attack, count = stopping_after(10 ** 6)
    resumed = run_attack(model, x, y, attack=attack, checkpoint=tmp_path / "chunks", **options)
    assert count["n"] == chunks - 2  # the two saved chunks were read back, not attacked
    same_records(full, resumed)
    assert torch.equal(full.adversarials, resumed.adversarials)
    assert resumed.seconds > 0
    attack, count = stopping_after(0)  # everything saved: nothing attacked
    again = run_attack(model, x, y, attack=attack, checkpoint=tmp_path / "chunks", **options)
    same_records(full, again)


def test_a_chunk_of_other_settings_data_or_weights_is_not_reused(setup, tmp_path):
    model, x, y = setup
    folder = tmp_path / "chunks"
    base = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 10}, batch_size=6, progress=False,
                      checkpoint=folder)
    assert ChunkStore(folder).count() == 2
    run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 11}, batch_size=6, progress=False, checkpoint=folder)
    assert ChunkStore(folder).count() == 4  # other steps: other keys
    run_attack(model, x.flip(0), y.flip(0), attack="ddn", attack_kwargs={"steps": 10}, batch_size=6, progress=False,
               checkpoint=folder)
    assert ChunkStore(folder).count() == 6  # other data
    with torch.no_grad():
        model[1].weight.mul_(1.01)
    changed = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 10}, batch_size=6, progress=False,
                         checkpoint=folder)
    assert ChunkStore(folder).count() == 8  # other weights
    assert not np.array_equal(changed.l2, base.l2)


def test_a_torn_or_foreign_chunk_file_is_recomputed(setup, tmp_path):
    model, x, y = setup
    folder = tmp_path / "chunks"
    full = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 10}, batch_size=12, progress=False,
                      checkpoint=folder)
    (path,) = folder.glob("*.npz")
    path.write_bytes(path.read_bytes()[:100])  # torn by a full disk
    again = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 10}, batch_size=12, progress=False,
                       checkpoint=folder)
    same_records(full, again)
    store = ChunkStore(folder)
    key = path.stem
    assert store.load(key + "0" * 24) is None  # a file whose stored key differs is not read


def test_interrupted_evaluation_resumes_with_the_same_report(setup, tmp_path):
    model, x, y = setup
    options = dict(epsilon=1.0, attacks=["ddn", "deepfool"], budgets={"ddn": {"steps": 10}, "deepfool": {"steps": 10}},
                   batch_size=4, checks=False, progress=False)
    full = evaluate_robustness(model, x, y, **options)
    import advwsl.evaluation.robustness as robustness

    real, calls = robustness.run_attack, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise Stop
        return real(*args, **kwargs)

    robustness.run_attack = interrupted
    try:
        with pytest.raises(Stop):
            evaluate_robustness(model, x, y, checkpoint=tmp_path / "chunks", **options)
    finally:
        robustness.run_attack = real
    assert ChunkStore(tmp_path / "chunks").count() == 3
    earlier = sum(float(np.load(p)["seconds"]) for p in (tmp_path / "chunks").glob("*.npz"))
    resumed = evaluate_robustness(model, x, y, checkpoint=tmp_path / "chunks", **options)
    # the time of the first start is not lost: the results' seconds count the restored chunks too
    assert sum(resumed.results[name].seconds for name in options["attacks"]) >= earlier > 0
    assert full.results.keys() == resumed.results.keys()
    for key in full.results:
        same_records(full.results[key], resumed.results[key])
    assert full.table().equals(resumed.table())


def test_pgd_chunks_are_independent_so_a_resumed_run_is_exact(setup, tmp_path):
    """PGD's random start comes from run_attack's seed per call, not torch's global stream shared between
    chunks: chunks lost (deleted) and attacked again give the records of the uninterrupted run."""
    model, x, y = setup
    options = dict(attack="pgd", attack_kwargs={"epsilon": 0.5, "steps": 5}, batch_size=4, progress=False)
    torch.manual_seed(1)
    full = run_attack(model, x, y, checkpoint=tmp_path / "chunks", **options)
    for path in sorted((tmp_path / "chunks").glob("*.npz"))[:2]:
        path.unlink()
    torch.manual_seed(2)  # another global state: must not matter
    again = run_attack(model, x, y, checkpoint=tmp_path / "chunks", **options)
    same_records(full, again)


def test_what_the_key_holds(setup, tmp_path):
    from advwsl.attacks.chunks import function_sha256, module_sha256

    model, x, y = setup
    with pytest.raises(Exception, match="generator"):
        run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 5, "generator": torch.Generator()},
                   progress=False, checkpoint=tmp_path / "c")
    big = torch.zeros(2000)
    other = big.clone()
    other[1234] = 1.0  # (repr would print both the same, abbreviated)
    assert ChunkStore.run_key(kwargs={"start": big}) != ChunkStore.run_key(kwargs={"start": other})

    def attack_a(model, inputs, labels, **kwargs):
        return inputs

    def attack_b(model, inputs, labels, **kwargs):
        return inputs.clone()

    assert function_sha256(attack_a) != function_sha256(attack_b)
    # advwsl's attacks: the code of the attack's module and of what it imports, directly or not, and the runner's
    assert function_sha256(get_attack_spec("ddn").fn) != function_sha256(get_attack_spec("cw").fn)
    from advwsl.attacks.chunks import code_closure

    closure = code_closure("advwsl.attacks.cam_ddn")
    assert {"advwsl/attacks/cam_ddn.py", "advwsl/attacks/_ops.py", "advwsl/models/cams.py"} <= set(closure)
    assert "advwsl/attacks/fab.py" not in closure and not any(p.startswith("advwsl/config") for p in closure)
    assert "advwsl/attacks/runner.py" in code_closure("advwsl.attacks.runner")

    class Pool(torch.nn.Module):
        def __init__(self, q):
            super().__init__()
            self.q = q

        def extra_repr(self):
            return f"q={self.q}"

    assert module_sha256(Pool(1.0)) != module_sha256(Pool(2.0))  # a setting outside the weights
    assert module_sha256(model) == module_sha256(model)
