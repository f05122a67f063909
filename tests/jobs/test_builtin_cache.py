"""The cache of built-in models under concurrent first use: two processes that both need a model that is
not cached yet end with one model, trained once (a file lock makes the second wait and load it); every
temporary file name is unique to its process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import advwsl

ROOT = Path(advwsl.__file__).resolve().parent.parent
TINY = {"epochs": 2, "batch_size": 16, "dataset_kwargs": {"size": 32, "n_trainval": 80, "n_test": 16}}


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "ADVWSL_HOME": str(home), "ADVWSL_DEMO_RECIPE": json.dumps(TINY), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MPLBACKEND", None)
    return env


def _start_together(commands: list[list[str]], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.mark.slow
def test_two_attack_processes_on_an_empty_cache_train_the_demo_once(tmp_path):
    home = tmp_path / "home"
    command = [sys.executable, "-m", "advwsl.cli", "attack", "--model", "wildcat", "--budget", "2", "--n-samples",
               "4", "--no-progress"]
    runs = _start_together([[*command, "--out", str(tmp_path / f"run{k}")] for k in range(2)], _env(home), tmp_path)
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    trained = [r for r in runs if "training the demo wildcat model" in r.stderr]
    assert len(trained) == 1, [r.stderr[-500:] for r in runs]  # the other one waited and loaded it
    demo = home / "models" / "demo"
    weights = sorted(demo.glob("*.safetensors"))
    assert len(weights) == 1 and weights[0].with_suffix(".json").is_file()
    training = sorted(demo.glob("*.training"))
    assert len(training) == 1
    metrics = pd.read_csv(training[0] / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]  # each epoch once: no second training appended to the same run
    assert not list(home.rglob("*.tmp")) and not list(home.rglob("*.part"))
    tables = [re.search(r"\| DDN \| 2 \|[^\n]*", r.stdout)[0].rsplit("|", 2)[0] for r in runs]
    assert tables[0] == tables[1]  # the same model, so the same row (run-times aside)


@pytest.mark.slow
def test_two_processes_build_the_digits_model_once(tmp_path):
    home = tmp_path / "home"
    script = ("import advwsl.pretrained.digits as b\n"
              "b.DIGITS_RECIPE['epochs'] = 1\n"
              "original = b.train_classifier\n"
              "def counted(*a, **k):\n"
              "    print('TRAINING', flush=True)\n"
              "    return original(*a, **k)\n"
              "b.train_classifier = counted\n"
              "model, info = b.digits_cnn()\n"
              "print('ACCURACY', info['metrics']['test_accuracy'])\n")
    runs = _start_together([[sys.executable, "-c", script]] * 2, _env(home), tmp_path)
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert sum(r.stdout.count("TRAINING") for r in runs) == 1
    accuracies = {r.stdout.split("ACCURACY")[1].strip() for r in runs}
    assert len(accuracies) == 1  # both hold the one cached model
    names = sorted(p.name for p in (home / "models").iterdir() if not p.name.endswith(".lock"))
    assert len(names) == 2 and all(re.fullmatch(r"digits-cnn-[0-9a-f]{12}\.(json|safetensors)", n) for n in names)
    assert len({n.rsplit(".", 1)[0] for n in names}) == 1  # one model: its weights and sidecar, keyed by recipe


def test_no_fixed_temporary_file_names_in_the_package():
    """A temporary file beside its target must have a name unique to the process (io.atomic_path), or two
    processes writing the same folder tear each other's files."""
    fixed = []
    for path in (ROOT / "advwsl").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""["'][^"']*\.(tmp|part|partial)["']""", line) and "mkstemp" not in line:
                fixed.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not fixed, fixed


def test_built_in_models_are_built_with_one_thread_whatever_the_process_uses(tmp_path):
    """On a CPU the thread count changes the sums of a backward pass, so the same recipe gives another model
    at another count: built-in models are trained at BUILD_THREADS, and the caller's count is restored."""
    import torch

    from advwsl.pretrained import BUILD_THREADS, cached_model
    from advwsl.models import create_model, save_model

    seen = []

    def build():
        seen.append(torch.get_num_threads())
        save_model(create_model("cw-mnist", input_size=16), tmp_path / "m")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cached_model(tmp_path / "m", build)
        assert seen == [BUILD_THREADS] == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_the_demo_trains_to_the_same_weights_at_any_thread_count(tmp_path, monkeypatch):
    """The README's numbers are what a user gets: the demo model does not depend on OMP_NUM_THREADS."""
    import torch

    from advwsl.pretrained.demo import demo_model

    monkeypatch.setenv("ADVWSL_DEMO_RECIPE", json.dumps(TINY))
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / f"home{threads}"))
            torch.set_num_threads(threads)
            model, info = demo_model("wildcat", progress=False)
            weights.append((model.state_dict(), info["metrics"]["test"]))
    finally:
        torch.set_num_threads(before)
    (a, test_a), (b, test_b) = weights
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert test_a == test_b
