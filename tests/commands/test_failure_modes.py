"""What the command line does when a user gets something wrong: for every case a non-zero exit status, one
message that names the bad value and what is accepted, no traceback (``result.exception`` is the
``SystemExit`` of the CLI), and no run directory left behind (or one marked ``INCOMPLETE``). Options are
checked before a model is trained or loaded and before the run directory exists; an interrupt says where
the partial run is and how to continue it."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import advwsl.jobs.adv_train as adv_train_job
import advwsl.jobs.attack as attack_job
from advwsl.attacks import run_attack
import advwsl.pretrained.digits as builtin_digits
import advwsl.jobs.data as data_job
import advwsl.jobs.robustness as robustness_job
import advwsl.jobs.train as train_job
import advwsl.jobs.evaluate as evaluate_job
from advwsl.cli import main
from advwsl.data.digits import sklearn_digits
from advwsl.pretrained import get_pretrained
from advwsl.pretrained.digits import DIGITS_CNN, DIGITS_RECIPE, train_classifier
from advwsl.models import create_model, save_model
from advwsl.runs import INCOMPLETE
from advwsl.utils import cache_dir

SMALL_SYNTHETIC = {"size": 32, "n_trainval": 40, "n_test": 8}


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def assert_refused(result, out: Path | None, *phrases: str, code: int = 2) -> None:
    """A clean refusal: exit status ``code``, the CLI's SystemExit (no exception escaped), every phrase in the
    message, no traceback, and no run directory (or one marked incomplete)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, (phrase, result.output)
    if out is not None:
        assert not out.exists() or (out / INCOMPLETE).is_file(), sorted(p.name for p in out.iterdir())


def _never(*args, **kwargs):
    raise AssertionError("this must not be reached: the options are checked first")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def wsl2(tmp_path) -> Path:
    """A 2-class WILDCAT checkpoint recorded as trained on a small 2-class synthetic set."""
    stem = tmp_path / "wsl2"
    save_model(create_model("wildcat", backbone="resnet-mini", stride=8, num_classes=2), stem, metadata={
        "classes": ["normal", "malignant"], "dataset": {"name": "synthetic", "fold": 0},
        "training": {"dataset": "synthetic", "dataset_kwargs": SMALL_SYNTHETIC, "cam_class": "true"}})
    return stem


def write_bach(root: Path, per_class: int = 2) -> Path:
    """A tiny BACH part A folder (4 classes) in the official layout."""
    rng = np.random.default_rng(1)
    photos = root / "ICIAR2018_BACH_Challenge" / "Photos"
    rows = []
    for folder, prefix in (("Normal", "n"), ("Benign", "b"), ("InSitu", "is"), ("Invasive", "iv")):
        (photos / folder).mkdir(parents=True)
        for k in range(1, per_class + 1):
            name = f"{prefix}{k:03d}.tif"
            Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(photos / folder / name)
            rows.append(f"{name},{folder}")
    (photos / "microscopy_ground_truth.csv").write_text("\n".join(rows) + "\n")
    return root


def write_glas(root: Path, sizes: dict[str, tuple[int, int]] | None = None, corrupt: str | None = None) -> Path:
    """A tiny GlaS folder in the official layout (BMP images, ``_anno.bmp`` gland masks, Grade.csv): train_1..6,
    testA_1..2, testB_1..2, all 32 x 32 unless ``sizes`` says otherwise; the mask of ``corrupt`` is damaged."""
    rng = np.random.default_rng(2)
    base = root / "Warwick QU Dataset (Released 2016_07_08)"
    base.mkdir(parents=True)
    rows = ["name, patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)"]
    names = [("train", k, k) for k in range(1, 7)] + [("testA", k, 10 + k) for k in (1, 2)] + \
            [("testB", k, 20 + k) for k in (1, 2)]
    for part, k, patient in names:
        name = f"{part}_{k}"
        h, w = (sizes or {}).get(name, (32, 32))
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(base / f"{name}.bmp")
        anno = np.zeros((h, w), np.uint8)
        anno[4:12, 4:12] = 1
        Image.fromarray(anno).save(base / f"{name}_anno.bmp")
        if name == corrupt:
            (base / f"{name}_anno.bmp").write_bytes(b"BM this is not a bitmap")
        grade = "benign" if k % 2 else "malignant"
        rows.append(f"{name},{patient}, {grade}, {'adenomatous' if grade == 'malignant' else 'healthy'}")
    (base / "Grade.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def paths(tmp_path, wsl2):
    afile = tmp_path / "a-file.txt"
    afile.write_text("not a folder")
    truncated = tmp_path / "truncated-run"
    truncated.mkdir()
    (truncated / "config.json").write_text('{"run": {"command": "tra')
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    return SimpleNamespace(
        tmp=tmp_path, afile=afile, truncated=truncated, other=other, wsl2=wsl2, bach=write_bach(tmp_path / "bach"),
        glas_corrupt=write_glas(tmp_path / "glas1", corrupt="testA_2"),
        glas_mixed=write_glas(tmp_path / "glas2", sizes={"testA_2": (40, 36), "testB_1": (24, 32)}))


# --------------------------------------------------------------------------- case 6: the list, one by one
SYN4 = json.dumps({**SMALL_SYNTHETIC, "num_classes": 4})
TRAIN_SMALL = ["train", "--epochs", "1", "--set", f"dataset_kwargs={json.dumps(SMALL_SYNTHETIC)}", "--no-progress"]
ADV_SMALL = ["adv-train", "--epsilon-max", "1", "--dataset-kwargs", '{"n": 64}', "--no-progress"]

CASES = {
    # --device
    "attack --device": (lambda p: ["attack", "--device", "nonsense"], ["unknown device 'nonsense'", "cpu, cuda"]),
    "robustness --device": (lambda p: ["evaluate-robustness", "--device", "nonsense"], ["unknown device 'nonsense'"]),
    "train --device": (lambda p: [*TRAIN_SMALL, "--device", "nonsense"], ["unknown device 'nonsense'"]),
    "adv-train --device": (lambda p: [*ADV_SMALL, "--device", "nonsense"], ["unknown device 'nonsense'"]),
    "evaluate --device": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--device", "nonsense"],
                          ["unknown device 'nonsense'"]),
    # --out: an existing file, a path below a file, a folder that cannot be written
    "attack --out file": (lambda p: ["attack", "--out", p.afile], ["is an existing file", "give a folder path"]),
    "attack --out below a file": (lambda p: ["attack", "--out", p.afile / "run"], ["is a file, not a folder"]),
    "robustness --out file": (lambda p: ["evaluate-robustness", "--out", p.afile], ["is an existing file"]),
    "train --out file": (lambda p: [*TRAIN_SMALL, "--out", p.afile], ["is an existing file"]),
    "adv-train --out file": (lambda p: [*ADV_SMALL, "--out", p.afile], ["is an existing file"]),
    "evaluate --out file": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--out", p.afile], ["is an existing file"]),
    "evaluate --out below a file": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--out", p.afile / "x"],
                                    ["is a file, not a folder"]),
    "merge --out file": (lambda p: ["merge", p.other, "--out", p.afile], ["is an existing file"]),
    # valid JSON, unknown key or wrong type
    "attack-kwargs unknown key": (lambda p: ["attack", "--attack-kwargs", '{"stepz": 3}'],
                                  ["ddn has no hyper-parameter 'stepz'", "it takes: steps, gamma"]),
    "attack-kwargs wrong type": (lambda p: ["attack", "--attack-kwargs", '{"gamma": "fast"}'],
                                 ["ddn gamma must be a number", "got 'fast'"]),
    "attack-kwargs bad value": (lambda p: ["attack", "--attack-kwargs", '{"steps": -5}'],
                                ["--attack-kwargs for ddn", "steps must be a positive integer, got -5"]),
    "attack-kwargs list for a number": (lambda p: ["attack", "--attack-kwargs", '{"init_epsilon": [1]}'],
                                        ["ddn init_epsilon must be a number", "got [1]"]),
    "attack dataset-kwargs unknown key": (
        lambda p: ["attack", "--model", p.wsl2, "--dataset-kwargs", '{"colour": 1}'],
        ["dataset 'synthetic' has no option 'colour' (given 1)", "it takes size"]),
    "attack dataset-kwargs wrong type": (
        lambda p: ["attack", "--model", p.wsl2, "--dataset-kwargs", '{"size": "big"}'],
        ["dataset 'synthetic' rejects the options", "'size': 'big'", "it takes size"]),
    "attack dataset-kwargs wrong type (class count)": (
        lambda p: ["attack", "--model", p.wsl2, "--dataset-kwargs", '{"num_classes": "4"}'],
        ["num_classes must be one of [2, 3, 4], got '4'"]),
    "robustness dataset-kwargs unknown key": (
        lambda p: ["evaluate-robustness", "--model", p.wsl2, "--dataset-kwargs", '{"colour": 1}'],
        ["dataset 'synthetic' has no option 'colour'"]),
    "adv-train dataset-kwargs unknown key": (lambda p: [*ADV_SMALL, "--dataset-kwargs", '{"colour": 1}'],
                                             ["dataset 'digits' has no option 'colour'", "it takes size"]),
    "train --set unknown key": (lambda p: [*TRAIN_SMALL, "--set", "colour=1"],
                                ["no training option 'colour'", "valid options"]),
    "train --set wrong type": (lambda p: [*TRAIN_SMALL, "--set", 'epochs="many"'],
                               ["--set epochs must be an integer, got 'many'"]),
    "train --set dataset option unknown": (
        lambda p: ["train", "--epochs", "1", "--set", 'dataset_kwargs={"colour": 1}'],
        ["dataset 'synthetic' has no option 'colour'"]),
    "train --set dataset option wrong type": (
        lambda p: ["train", "--epochs", "1", "--set", 'dataset_kwargs={"size": "x"}'],
        ["dataset 'synthetic' rejects the options", "'size': 'x'"]),
    # files on disk
    "corrupt mask image": (lambda p: ["attack", "--model", p.wsl2, "--dataset", "glas", "--data-root", p.glas_corrupt,
                                      "--budget", "2"],
                           ["cannot read mask", "testA_2_anno.bmp", "damaged"]),
    "images of mixed sizes, several attacks": (
        lambda p: ["attack", "--model", p.wsl2, "--dataset", "glas", "--data-root", p.glas_mixed, "--attack", "all",
                   "--budget", "2"],
        ["has images of several sizes", "use a split of equal-sized images"]),
    # batch size, CAM class
    "evaluate --batch-size 0": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--batch-size", "0"],
                                ["Invalid value for '--batch-size': 0 is not in the range x>=1"]),
    "evaluate --cam-class 7": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--cam-class", "7"],
                               ["--cam-class 7 is not a class of this 2-class model", "0..1"]),
    "evaluate --cam-class banana": (lambda p: ["evaluate", "--checkpoint", p.wsl2, "--cam-class", "banana"],
                                    ["--cam-class banana is not a class of this 2-class model", "class name"]),
    "train --cam-class 7": (lambda p: [*TRAIN_SMALL, "--cam-class", "7"],
                            ["cam_class 7 is not a class of this 2-class dataset", "0..1"]),
    "train --cam-class banana": (lambda p: [*TRAIN_SMALL, "--cam-class", "banana"],
                                 ["cam_class banana is not a class of this 2-class dataset", "class name"]),
    # a 2-class checkpoint on 4-class data, caught before any evaluation
    "attack 2-class model on 4-class data": (
        lambda p: ["attack", "--model", p.wsl2, "--dataset", "synthetic", "--dataset-kwargs", SYN4, "--budget", "2"],
        ["has 2 classes but synthetic, test split has labels up to 3 (4 classes)"]),
    "robustness 2-class model on 4-class data": (
        lambda p: ["evaluate-robustness", "--model", p.wsl2, "--dataset", "synthetic", "--dataset-kwargs", SYN4,
                   "--budget", "quick"],
        ["has 2 classes but synthetic, test split has labels up to 3 (4 classes)"]),
    "evaluate 2-class model on 4-class data": (
        lambda p: ["evaluate", "--checkpoint", p.wsl2, "--dataset", "bach", "--data-root", p.bach],
        ["has 2 classes but bach (test split) has 4", "evaluate it on the data it was trained for"]),
    # --resume on what is not a resumable run
    "train --resume truncated config.json": (lambda p: ["train", "--resume", p.truncated],
                                             ["config.json is not valid JSON", "truncated or was edited"]),
    "train --resume not a run": (lambda p: ["train", "--resume", p.other],
                                 ["is not an `advwsl train` run directory (no config.json)", "--resume takes the folder"]),
    "adv-train --resume truncated config.json": (lambda p: ["adv-train", "--resume", p.truncated],
                                                 ["config.json is not valid JSON"]),
    "adv-train --resume not a run": (lambda p: ["adv-train", "--resume", p.other],
                                     ["is not an `advwsl adv-train` run directory (no config.json)"]),
    "merge of a folder that is no evaluation": (lambda p: ["merge", p.other], ["holds no robustness evaluation"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_without_traceback(case, paths, monkeypatch):
    # nothing may train, attack or evaluate: each refusal happens before
    for module, name in ((attack_job, "run_attack"), (robustness_job, "evaluate_robustness"),
                         (train_job, "fit_folds"), (evaluate_job, "evaluate"), (adv_train_job, "fit"),
                         (builtin_digits, "_train_digits_cnn")):
        monkeypatch.setattr(module, name, _never)
    build, phrases = CASES[case]
    args = [str(a) for a in build(paths)]
    out = None
    if "--out" not in args and "--resume" not in args:
        out = paths.tmp / "run"
        args += ["--out", str(out)]
    result = invoke(*args)
    assert_refused(result, out, *phrases)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["attack", "evaluate"])
def test_an_unwritable_out_is_refused_before_the_work(command, wsl2, digits_model, monkeypatch):
    monkeypatch.setattr(attack_job, "run_attack", _never)
    monkeypatch.setattr(evaluate_job, "evaluate", _never)
    args = ["attack", "--budget", "2"] if command == "attack" else ["evaluate", "--checkpoint", wsl2]
    result = invoke(*args, "--out", "/proc/advwsl-no-such-dir/run", "--no-progress")
    assert_refused(result, None, "/proc/advwsl-no-such-dir")
    assert "--out" in result.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_refused(tmp_path, digits_model, monkeypatch):
    monkeypatch.setattr(data_job, "resolve_model", _never)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke("attack", "--out", locked / "run", "--no-progress")
    finally:
        locked.chmod(0o700)
    assert_refused(result, locked / "run", "is not a writable folder")


# ------------------------------------------- case 5: options are checked before any model, data or folder
BEFORE_MODEL = {
    "attack --budget 0": (["attack", "--budget", "0"], "a budget is a positive number of steps (e.g. 100), got '0'"),
    "attack --batch-size 0": (["attack", "--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
    "attack bad --attack-kwargs": (["attack", "--attack-kwargs", '{"gamma": 7}'], "gamma must be in (0, 1), got 7"),
    "attack --attack-kwargs not an object": (["attack", "--attack-kwargs", "[1]"], "must be a JSON object"),
    "robustness --budget 0": (["evaluate-robustness", "--budget", "0"], "a budget is a positive number of steps"),
    "robustness --budget cw=0x5": (["evaluate-robustness", "--budget", "cw=0x5"], "a C&W budget is SEARCHESxSTEPS"),
    "robustness --batch-size 0": (["evaluate-robustness", "--batch-size", "0"], "0 is not in the range x>=1"),
}


@pytest.mark.parametrize("case", list(BEFORE_MODEL))
@pytest.mark.parametrize("model", ["wildcat", "digits-cnn"])
def test_bad_attack_options_are_refused_before_the_model_is_built(case, model, tmp_path, monkeypatch):
    """Nothing is trained, loaded or written: the demo model is never resolved."""
    monkeypatch.setattr(data_job, "resolve_model", _never)  # attack and evaluate-robustness resolve it there
    args, message = BEFORE_MODEL[case]
    result = invoke(*args, "--model", model, "--out", tmp_path / "run", "--no-progress")
    assert_refused(result, tmp_path / "run", message)
    assert not (cache_dir("models") / "demo").exists() or not any((cache_dir("models") / "demo").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
    (["--set", "batch_size=0"], "--set batch_size must be >= 1, got 0"),
    (["--set", "lr=-1"], "lr must be > 0"),
    (["--loss", "size-kl", "--set", "size_noise=-1"], "--set size_noise must be >= 0"),
])
def test_train_refuses_bad_options_before_the_run(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr(train_job, "fit_folds", _never)
    result = invoke(*TRAIN_SMALL, *args, "--out", tmp_path / "run")
    assert_refused(result, tmp_path / "run", message)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "Invalid value for '--steps': 0 is not in the range x>=1"),
    (["--batch-size", "0"], "0 is not in the range x>=1"),
    (["--epsilon", "-1"], "epsilon"),
    (["--init-checkpoint", "no-such-checkpoint.safetensors"], "no-such-checkpoint"),
    (["--model-kwargs", '{"input_size": "big"}'], "input_size"),
])
def test_adv_train_refuses_bad_options_before_the_run(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr(adv_train_job, "fit", _never)
    result = invoke(*ADV_SMALL, *args, "--out", tmp_path / "run")
    assert_refused(result, tmp_path / "run", message)


def test_adv_train_steps_zero_from_python_is_refused_before_the_run(tmp_path, monkeypatch):
    from advwsl.errors import ConfigError
    from advwsl.jobs.adv_train import AdvTrainConfig, adv_train_job as job

    monkeypatch.setattr(adv_train_job, "fit", _never)
    with pytest.raises(ConfigError, match="--steps must be >= 1, got 0"):
        job(AdvTrainConfig(epsilon_max=1.0, steps=0, out=str(tmp_path / "run"), progress=False))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--patch-size", "8"], "patch_size must be at least 16, got 8"),
    (["--pn", "2"], "pn must be in [0, 1], got 2.0"),
    (["--labels", "no-such-labels.csv"], "labels file no-such-labels.csv not found"),
    ([], "no slide found under"),
])
def test_data_camelyon16_refuses_bad_input_before_writing(args, message, tmp_path):
    slides, annotations = tmp_path / "slides", tmp_path / "xml"
    slides.mkdir()
    annotations.mkdir()
    result = invoke("data", "camelyon16", "--slides", slides, "--annotations", annotations, "--out",
                    tmp_path / "patches", "--no-progress", *args)
    assert_refused(result, None, message)
    assert not (tmp_path / "patches").exists()


def test_data_camelyon16_refuses_an_out_that_is_a_file(tmp_path):
    slides, annotations = tmp_path / "slides", tmp_path / "xml"
    slides.mkdir()
    annotations.mkdir()
    (tmp_path / "patches").write_text("mine")
    result = invoke("data", "camelyon16", "--slides", slides, "--annotations", annotations, "--out",
                    tmp_path / "patches", "--no-progress")
    assert_refused(result, None, "is an existing file")
    assert (tmp_path / "patches").read_text() == "mine"


# --------------------------------------------------- case 5: an interrupt leaves a marked, resumable run
def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_an_interrupted_attack_says_how_to_rerun(digits_model, tmp_path, monkeypatch):
    monkeypatch.setattr(attack_job, "run_attack", _interrupt)
    out = tmp_path / "run"
    result = invoke("attack", "--budget", "2", "--n-samples", "4", "--out", out, "--no-progress")
    assert result.exit_code == 130 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"Interrupted. The partial run is in {out}" in result.output
    assert f"rerun the command with --out {out}" in result.output
    marker = (out / INCOMPLETE).read_text()
    assert marker.startswith("advwsl attack interrupted") and f"--out {out}" in marker
    digits = get_pretrained(DIGITS_CNN).stem()  # the cached model is still there: the rerun reuses the folder
    monkeypatch.setattr(attack_job, "run_attack", run_attack)
    assert digits.with_suffix(".safetensors").is_file()
    again = invoke("attack", "--budget", "2", "--n-samples", "4", "--out", out, "--no-progress")
    assert again.exit_code == 0, again.output
    assert not (out / INCOMPLETE).exists() and (out / "summary.json").is_file()


def test_an_interrupted_training_says_how_to_resume(tmp_path, monkeypatch):
    fit_module = importlib.import_module("advwsl.training.fit")  # the module (advwsl.training.fit is the function)
    original = fit_module.evaluate
    calls = []

    def stop_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(fit_module, "evaluate", stop_in_the_second_epoch)
    out = tmp_path / "run"
    result = invoke(*TRAIN_SMALL, "--epochs", "2", "--batch-size", "16", "--out", out)
    assert result.exit_code == 130 and isinstance(result.exception, SystemExit)
    assert f"continue it with `advwsl train --resume {out}`" in result.output
    assert "interrupted" in (out / INCOMPLETE).read_text()
    monkeypatch.undo()
    resumed = invoke("train", "--resume", out)
    assert resumed.exit_code == 0, resumed.output
    assert not (out / INCOMPLETE).exists()
    assert list(np.loadtxt(out / "fold_0" / "metrics.csv", delimiter=",", skiprows=1, usecols=0)) == [1.0, 2.0]


# -------------------------------------------------------------- case 4: adv-train --resume keeps its options
ADV_RUN = ["adv-train", "--model", "cw-mnist", "--dataset", "digits", "--attack", "ddn", "--epsilon-max", "2.4",
           "--steps", "2", "--epochs", "2", "--clean-epochs", "1", "--batch-size", "32", "--dataset-kwargs", '{"n": 64}', "--no-progress",
           "--device", "cpu"]


@pytest.fixture
def interrupted_adv_run(tmp_path, monkeypatch):
    """An adv-train run interrupted (Ctrl-C) at the start of its second epoch."""
    from advwsl.defenses.adversarial_training import AdversarialPerturbation

    original = AdversarialPerturbation.reset

    def interrupt_second_epoch(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(AdversarialPerturbation, "reset", interrupt_second_epoch)
    out = tmp_path / "adv"
    result = invoke(*ADV_RUN, "--out", out)
    monkeypatch.setattr(AdversarialPerturbation, "reset", original)
    assert result.exit_code == 130, result.output
    assert f"continue it with `advwsl adv-train --resume {out}`" in result.output
    return out


@pytest.mark.parametrize("changed, name", [(["--epsilon-max", "1.0"], "epsilon"), (["--epochs", "5"], "epochs"),
                                           (["--attack", "pgd"], "attack"), (["--steps", "3"], "steps")])
def test_adv_train_resume_refuses_changed_options(changed, name, interrupted_adv_run, monkeypatch):
    monkeypatch.setattr(adv_train_job, "fit", _never)
    result = invoke("adv-train", "--resume", interrupted_adv_run, *changed)
    assert_refused(result, None, "a resumed run keeps its configuration", f"'{name}'", "start a new run")


def test_adv_train_resume_with_the_same_options_continues(interrupted_adv_run):
    result = invoke("adv-train", "--resume", interrupted_adv_run, "--epsilon-max", "2.4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert not (interrupted_adv_run / INCOMPLETE).exists()
    assert list(np.loadtxt(interrupted_adv_run / "metrics.csv", delimiter=",", skiprows=1, usecols=0)) == [1.0, 2.0]


# ------------------------------------------------------------ case 10: a corrupt cached model says what to do
def test_a_corrupt_cached_model_says_how_to_rebuild_it(tmp_path, monkeypatch):
    monkeypatch.setitem(DIGITS_RECIPE, "epochs", 1)  # a quick rebuild
    stem = get_pretrained(DIGITS_CNN).stem()
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".safetensors").write_bytes(b"\x00" * 100)
    stem.with_suffix(".json").write_text('{"format": "advwsl-checkpoint-v1"')
    result = invoke("attack", "--budget", "2", "--n-samples", "4", "--out", tmp_path / "a", "--no-progress")
    assert_refused(result, tmp_path / "a", "This is a cached built-in model", f"delete {stem}.*",
                   "rerun with --retrain")
    rebuilt = invoke("attack", "--retrain", "--budget", "2", "--n-samples", "4", "--out", tmp_path / "b",
                     "--no-progress")
    assert rebuilt.exit_code == 0, rebuilt.output
    info = json.loads(stem.with_suffix(".json").read_text())
    assert info["training"]["epochs"] == 1 and info["classes"] == [str(c) for c in range(10)]
    again = invoke("attack", "--budget", "2", "--n-samples", "4", "--out", tmp_path / "c", "--no-progress")
    assert again.exit_code == 0, again.output


# -------------------------------------------------------------- case 1: merge refuses shards of other runs
def _shard(tmp_path, name: str, *extra: str):
    args = ["evaluate-robustness", "--model", "digits-cnn", "--n-samples", "4", "--batch-size", "2", "--attack",
            "ddn", "--budget", "2", "--epsilon", "1.0", "--no-checks", "--no-progress", *extra]
    result = invoke(*args, "--out", tmp_path / name)
    assert result.exit_code == 0, result.output
    return tmp_path / name


@pytest.mark.parametrize("other, field", [
    (["--epsilon", "0.5"], "table radii (--epsilon)"),  # a KeyError traceback before
    (["--split", "train"], "evaluation images (dataset, split, sample selection)"),
])
def test_merge_names_the_field_that_differs(other, field, digits_model, tmp_path):
    a = _shard(tmp_path, "s0", "--shard", "0/2")
    b = _shard(tmp_path, "s1", "--shard", "1/2", *other)
    result = invoke("merge", a, b, "--out", tmp_path / "merged")
    assert_refused(result, tmp_path / "merged", "are shards of different evaluations", f"their {field}",
                   "merge only the shards of one evaluation")


def test_merge_refuses_shards_of_other_weights_under_the_same_name(digits_model, tmp_path):
    a = _shard(tmp_path, "s0", "--shard", "0/2")
    x, y = sklearn_digits(16, "train")  # the same file name, other weights
    model = create_model("cw-mnist", input_size=16)
    train_classifier(model, x[:100], y[:100], epochs=1, lr=1e-3, seed=5)
    save_model(model, get_pretrained(DIGITS_CNN).stem(), overwrite=True)
    b = _shard(tmp_path, "s1", "--shard", "1/2")
    result = invoke("merge", a, b, "--out", tmp_path / "merged")
    assert_refused(result, tmp_path / "merged", "their model weights (model_sha256) differ")
    ok = _shard(tmp_path, "s0b", "--shard", "0/2")
    merged = invoke("merge", ok, b, "--out", tmp_path / "merged")
    assert merged.exit_code == 0, merged.output
