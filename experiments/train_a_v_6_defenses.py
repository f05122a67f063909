"""Train the MNIST defenses of Table A V-5 with the reference's recipe (section A V-6), from scratch:
the C&W MNIST network (Table A V-7) with C&W's optimizer (SGD, Nesterov momentum 0.9, batches of 128,
dropout 0.5), 30 epochs at learning rate 0.01 then 20 at 0.001, every training batch replaced by its
adversarial projected on the L2 ball of epsilon_max = 2.4: DDN with 100 steps (eq. A V-9) or Madry's
PGD-L2 with 40 steps (eq. A V-7; the reference evaluated MadryLab's L-infinity model instead).

    python experiments/train_a_v_6_defenses.py --defense ddn --out DIR      # resumable: run it again

Each run directory holds checkpoints/last (what ``advwsl reproduce A-V-5 --set defense.checkpoints.ddn=...``
evaluates), metrics.csv, state/ (resume) and summary.json. On mnist-5k (4,000 training digits) one DDN epoch
is about 400,000 forward-backward passes of the network.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from advwsl.defenses import make_perturbation
from advwsl.pretrained.mnist import mnist_recipe

RECIPE = {"epochs": 50, "lr": 0.01, "schedule": "step", "milestones": [0.6], "gamma": 0.1}
ATTACKS = {"ddn": {"attack": "ddn", "steps": 100}, "madry": {"attack": "pgd", "steps": 40}}
EPSILON_MAX = 2.4


def main() -> None:
    from advwsl.training import TrainConfig, fit

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defense", choices=sorted(ATTACKS), required=True)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--out", required=True, help="run directory (created; resumed when it holds a run)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig.from_dict({**mnist_recipe(args.dataset), **RECIPE, "progress": not args.no_progress})
    attack = ATTACKS[args.defense]
    hook = make_perturbation(attack["attack"], EPSILON_MAX, steps=attack["steps"], levels=256, seed=config.seed)
    out = Path(args.out)
    resume = (out / "state").is_dir()
    out.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    result = fit(config, out, perturb=hook, resume=resume)
    print(f"{args.defense}: {len(result.history)} epochs, last {result.history[-1]}, "
          f"{time.perf_counter() - tic:.0f} s in this process")


if __name__ == "__main__":
    main()
