"""Time the main job, ``advwsl attack --model wildcat --budget 100``, as a new user meets it: first on an
empty cache (the demo model is trained, then attacked) and then again with the cached model.

    python benchmarks/bench_main_job.py               # the real job (targets: 300 s, then 90 s)
    python benchmarks/bench_main_job.py --quick       # a small recipe and 16 images, a smoke run
    python benchmarks/bench_main_job.py --device cuda
    python benchmarks/bench_main_job.py --goal cam    # the CAM-goal attack (cam-ddn) instead of DDN
    python benchmarks/bench_main_job.py --threads 1   # one thread per process (shared machines)

Each run is a fresh ``advwsl`` process (imports included) with ``ADVWSL_HOME`` pointing at a temporary
cache, so nothing of the user's cache is used or touched. Printed: the wall time of each run, its ratio
to the target, the share of the first run spent training, the attack's own run time (Table A V-1), the
load average of the machine before and after (other processes sharing the CPU slow every number down),
and the demo model's test accuracy and CAM Dice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"first": 300.0, "second": 90.0}
QUICK_RECIPE = {"epochs": 2, "dataset_kwargs": {"n_trainval": 320, "n_test": 32}}


def run_once(args: argparse.Namespace, home: Path, out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "advwsl.cli", "attack", "--model", "wildcat", "--budget",
           str(20 if args.quick else args.budget), "--attack", "cam-ddn" if args.goal == "cam" else "ddn",
           "--out", str(out), "--no-progress"]
    if args.quick:
        cmd += ["--n-samples", "16"]
    if args.device:
        cmd += ["--device", args.device]
    env = {**os.environ, "ADVWSL_HOME": str(home)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    if args.quick:
        env["ADVWSL_DEMO_RECIPE"] = json.dumps(QUICK_RECIPE)
    tic = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return seconds, json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--quick", action="store_true", help="small recipe and 16 images (smoke run)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--goal", choices=["label", "cam"], default="label")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the runs (1 avoids oversubscription when other processes share "
                             "the cores; default: torch's choice)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary cache and run directories")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="advwsl-bench-"))
    home = work / "home"
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        first, s1 = run_once(args, home, work / "run1")
        second, s2 = run_once(args, home, work / "run2")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    attack1, attack2 = s1["attacks"][0]["table"]["seconds"], s2["attacks"][0]["table"]["seconds"]
    metrics = (s1.get("model") or {}).get("metrics") or {}
    test = metrics.get("test", {})
    print(f"advwsl attack --model wildcat --budget {args.budget} --goal {args.goal}"
          f"{' (quick)' if args.quick else ''}: {s1['n_samples']} images, device {args.device or 'auto'}, "
          f"threads {args.threads or 'default'}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {load_after:.1f} after")
    print("| run | wall (s) | target (s) | wall / target | attack run-time (s) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| first (trains the demo) | {first:.1f} | {TARGETS['first']:.0f} | {first / TARGETS['first']:.2f} | "
          f"{attack1:.1f} |")
    print(f"| second (cached model) | {second:.1f} | {TARGETS['second']:.0f} | "
          f"{second / TARGETS['second']:.2f} | {attack2:.1f} |")
    print(f"training share of the first run: about {max(first - second, 0.0) / first:.0%} "
          f"(first - second = {first - second:.1f} s)")
    if test:
        print(f"demo model: test accuracy {100 * test['accuracy']:.1f} %, CAM Dice {test['cam_dice']:.3f}, "
              f"CAM IoU {test['cam_iou']:.3f} on {test['n']} images")
    print(f"run 1 == run 2 (same numbers from the cached model): "
          f"{s1['attacks'][0]['table']['median_l2'] == s2['attacks'][0]['table']['median_l2']}")


if __name__ == "__main__":
    main()
