"""Table A V-5 evaluates the defenses ``defense.checkpoints`` names only when they were trained as the
table's ``defense`` settings say (section A V-6's recipe unless ``--set``), so that the table's departures
describe the models it evaluates; checked before anything is trained, loaded or written."""

from __future__ import annotations

import pytest

from advwsl.errors import AdvwslWarning, ConfigError
from advwsl.models import create_model, save_model
from advwsl.reproduce import get_entry
from advwsl.reproduce.appendix_v_defenses import _check_defense_table


def _defense(path, *, epochs=50, epoch=50, init=None, attack="ddn", steps=100, lr=0.01, dataset="mnist-5k"):
    save_model(create_model("cw-mnist", input_size=28), path, metadata={
        "training": {"epochs": epochs, "lr": lr, "milestones": [0.6], "dataset": dataset},
        "adversarial": {"attack": attack, "epsilon": 2.4, "steps": steps, "levels": 256}, "init": init,
        "epoch": epoch})
    return str(path)


def _settings(**changes):
    return get_entry("A-V-5").resolved(False, changes)


def test_a_defense_trained_by_the_reference_recipe_passes(tmp_path):
    _check_defense_table(_settings(**{"defense.checkpoints.ddn": _defense(tmp_path / "ddn"),
                                      "defense.checkpoints.madry": _defense(tmp_path / "madry", attack="pgd",
                                                                            steps=40)}))


def test_a_defense_trained_otherwise_is_refused_with_the_set_that_declares_it(tmp_path):
    tuned = _defense(tmp_path / "ddn", epochs=10, epoch=10, init="baseline")
    with pytest.raises(ConfigError, match="--set defense.epochs=10 --set defense.from_scratch=false"):
        _check_defense_table(_settings(**{"defense.checkpoints.ddn": tuned}))
    _check_defense_table(_settings(**{"defense.checkpoints.ddn": tuned, "defense.epochs": 10,
                                      "defense.from_scratch": False}))  # declared: accepted
    with pytest.raises(ConfigError, match="adversarials from 'ddn', not 'pgd'"):
        _check_defense_table(_settings(**{"defense.checkpoints.madry": _defense(tmp_path / "m", steps=40)}))
    with pytest.raises(ConfigError, match="dataset 'mnist'"):
        _check_defense_table(_settings(**{"defense.checkpoints.ddn": _defense(tmp_path / "d", dataset="mnist")}))


def test_an_unfinished_training_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="epoch 31 of its 50"):
        _check_defense_table(_settings(**{"defense.checkpoints.ddn": _defense(tmp_path / "ddn", epoch=31)}))


def test_a_checkpoint_trained_elsewhere_is_evaluated_with_a_warning(tmp_path):
    save_model(create_model("cw-mnist", input_size=28), tmp_path / "own")
    with pytest.warns(AdvwslWarning, match="records no advwsl adversarial training"):
        _check_defense_table(_settings(**{"defense.checkpoints.ddn": str(tmp_path / "own")}))


def test_a_missing_checkpoint_is_refused_before_any_work(tmp_path):
    with pytest.raises(Exception, match="missing"):
        _check_defense_table(_settings(**{"defense.checkpoints.ddn": str(tmp_path / "nowhere")}))


def test_figure_a_v_2_checks_its_defenses_too(tmp_path):
    from advwsl.reproduce.appendix_v_constants import CONSTANTS_FIGURE

    settings = get_entry("fig-A-V-2").resolved(False, {"defense.checkpoints.ddn": _defense(tmp_path / "d", epoch=3)})
    with pytest.raises(ConfigError, match="has not finished"):
        CONSTANTS_FIGURE.check(settings)
