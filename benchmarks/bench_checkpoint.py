"""What a checkpoint costs: ``run_attack`` with and without ``checkpoint=DIR`` (each finished chunk saved in
a folder, keyed by the attack's code, options, model and data; :mod:`advwsl.attacks.chunks`), on the same
images, paired run by run; and what reading every chunk back costs against attacking.

    PYTHONPATH=. python benchmarks/bench_checkpoint.py [--model mnist-cnn] [--n 256] [--batch-size 32]
        [--attack ddn] [--budget 100] [--repeats 3]

Times are the process's CPU time (user + system) of each call, so that other jobs on the machine change
them less than wall time would; the records of the two runs are checked to be equal.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from advwsl.attacks import get_attack_spec, run_attack
from advwsl.jobs.data import load_data
from advwsl.pretrained.resolve import resolve_model


def _cpu(fn) -> tuple[float, object]:
    tic = time.process_time()
    out = fn()
    return time.process_time() - tic, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--attack", default="ddn")
    parser.add_argument("--budget", default="100")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = resolve_model(args.model, progress=False).model.eval()
    data = load_data(args.dataset, split="test", n_samples=args.n)
    kwargs = get_attack_spec(args.attack).kwargs(args.budget)
    options = dict(attack=args.attack, attack_kwargs=kwargs, batch_size=args.batch_size, progress=False)
    plain, saving, reading = [], [], []
    for _ in range(args.repeats):
        folder = Path(tempfile.mkdtemp(prefix="bench-checkpoint-"))
        try:
            t0, a = _cpu(lambda: run_attack(model, data.images, data.labels, **options))
            t1, b = _cpu(lambda: run_attack(model, data.images, data.labels, checkpoint=folder, **options))
            t2, c = _cpu(lambda: run_attack(model, data.images, data.labels, checkpoint=folder, **options))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for other in (b, c):
            assert np.array_equal(a.l2, other.l2) and np.array_equal(a.success, other.success)
        plain.append(t0)
        saving.append(t1)
        reading.append(t2)
    chunks = -(-args.n // args.batch_size)
    print(f"{args.attack} {args.budget} on {args.n} {args.dataset} images of {args.model}, {chunks} chunks of "
          f"{args.batch_size}, one thread, {args.repeats} repeats (process CPU seconds, median):")
    print(f"  without checkpoint: {np.median(plain):.3f} s")
    print(f"  with checkpoint (saving every chunk): {np.median(saving):.3f} s "
          f"({np.median(np.array(saving) / np.array(plain)):.3f}x, paired)")
    print(f"  reading every chunk back: {np.median(reading):.3f} s "
          f"({np.median(np.array(reading) / np.array(plain)):.4f}x of attacking)")
    print("  records equal in all three: yes")


if __name__ == "__main__":
    main()
