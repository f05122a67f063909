"""Evaluation on every core: ``advwsl evaluate-robustness`` in one process against ``--workers N`` and against
N ``torchrun`` ranks (gloo), on the same images, wall-clock time and whether the per-sample records are equal.

    PYTHONPATH=. python benchmarks/bench_workers.py [--n 200] [--batch-size 50] [--workers 2] [--budget quick]
        [--model mnist-cnn]

Each configuration runs as its own command, one after the other (run nothing else beside it: the point is
the use of the cores). The single process uses every core (PyTorch's default thread count); with workers or
ranks the cores are divided among the processes. Records equal to one process's at one thread each are
checked by ``tests/commands/test_scale_out.py``; at other thread counts floating-point summation may differ
in the last bits, so this script reports the largest norm difference instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _run(argv: list[str], env: dict[str, str]) -> float:
    tic = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - tic


def _records(run_dir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted(run_dir.glob("*.csv")):
        frame = pd.read_csv(path)
        if {"index", "l2"} <= set(frame.columns):
            out[path.stem] = frame.sort_values("index").reset_index(drop=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--batch-size", type=int, default=50, help="the shards split the batches")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-torchrun", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    common = ["evaluate-robustness", "--model", args.model, "--budget", args.budget, "--n-samples", str(args.n),
              "--batch-size", str(args.batch_size), "--no-progress"]
    cli = [sys.executable, "-m", "advwsl.cli"]
    runs = {"one process": cli + common + ["--out", str(root / "one")],
            f"--workers {args.workers}": cli + common + ["--workers", str(args.workers), "--out", str(root / "workers")]}
    if not args.skip_torchrun and shutil.which("torchrun"):
        runs[f"torchrun, {args.workers} ranks"] = ["torchrun", "--standalone", "--nproc-per-node", str(args.workers),
                                                   "-m", "advwsl.cli"] + common + ["--out", str(root / "ranks")]
    # the model is trained (or read from the cache) once before timing (on one image: its chance-level warning
    # is expected, and silenced)
    subprocess.run(cli + common[:5] + ["--n-samples", "1", "--no-progress", "--out", str(root / "warm")],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = {name: _run(argv, env) for name, argv in runs.items()}
    base = _records(root / "one")
    print(f"`{' '.join(['python', 'benchmarks/bench_workers.py'] + sys.argv[1:])}` on {os.cpu_count()} CPU cores, "
          f"{args.n} images, budget {args.budget}\n")
    print("| run | wall (s) | speed-up | largest L2 difference to one process | same successes |")
    print("|---|---:|---:|---:|---|")
    for (name, seconds), folder in zip(times.items(), ("one", "workers", "ranks")):
        other = _records(root / folder)
        diff = max(float(np.max(np.abs(base[k]["l2"].to_numpy() - other[k]["l2"].to_numpy()))) for k in base)
        same = all((base[k]["success"].to_numpy() == other[k]["success"].to_numpy()).all() for k in base)
        print(f"| {name} | {seconds:.1f} | {times['one process'] / seconds:.2f}x | {diff:.2e} | "
              f"{'yes' if same else 'no'} |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
