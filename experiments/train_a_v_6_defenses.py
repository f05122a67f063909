"""Train one MNIST defense of Table A V-5 ahead of ``advwsl reproduce A-V-5``, in a process of its own, into
the model cache where the reproduce run finds it (interrupted trainings resume where they stopped).

By default the reference's recipe (section A V-6): the C&W MNIST network (Table A V-7) with C&W's optimizer
(SGD, Nesterov momentum 0.9, batches of 128, dropout 0.5), trained from scratch 30 epochs at learning rate
0.01 then 20 at 0.001, every training batch replaced by its adversarial projected on the L2 ball of
epsilon_max = 2.4: DDN with 100 steps (eq. A V-9) or Madry's PGD-L2 with 40 steps (eq. A V-7; the reference
evaluated MadryLab's L-infinity model instead). ``--set`` changes the recipe as ``advwsl reproduce A-V-5
--set defense.<key>=...`` does. The model lands at ``OUT/model`` (``OUT/model.training`` holds the resumable
training run: run the command again after an interruption), for the reproduce run to evaluate:

    python experiments/train_a_v_6_defenses.py --defense ddn --out runs/ddn          # the reference's recipe
    python experiments/train_a_v_6_defenses.py --defense ddn --out runs/ddn --set from_scratch=false --set epochs=10
    advwsl reproduce A-V-5 --set defense.checkpoints.ddn=runs/ddn/model --set defense.checkpoints.madry=...

On mnist-5k (4,000 training digits) one DDN epoch is about 400,000 forward-backward passes of the network.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from advwsl.config.reproduce import DefenseSettings
from advwsl.pretrained.trained import train_and_save
from advwsl.reproduce.appendix_v import DATASETS
from advwsl.reproduce.appendix_v_defenses import defense_model, defense_recipe
from advwsl.reproduce.appendix_v_entries import A_V_5_DEFENSE
from advwsl.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defense", choices=("ddn", "madry"), required=True)
    parser.add_argument("--dataset", default="mnist-5k", choices=("mnist-5k", "mnist"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", required=True, help="folder of the trained model (OUT/model) and its training run")
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="a defense setting (epochs, lr, milestone, ddn_steps, pgd_steps, epsilon, from_scratch)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    changes = {}
    for item in args.changes:
        key, _, value = item.partition("=")
        changes[key] = json.loads(value)
    defense = DefenseSettings.from_mapping({**A_V_5_DEFENSE, **changes})
    base = DATASETS[args.dataset]["recipe"](args.data_root)
    tic = time.perf_counter()
    init = None if defense.from_scratch else defense_model(args.dataset, "baseline", defense, base, log=print,
                                                           data_root=args.data_root, progress=not args.no_progress)[1]["checkpoint"]
    _, recipe, adversarial = defense_recipe(args.dataset, args.defense, defense, base)
    config = TrainConfig.from_dict({**recipe, "progress": not args.no_progress})
    stem = Path(args.out) / "model"
    stem.parent.mkdir(parents=True, exist_ok=True)
    train_and_save(config, stem, adversarial=adversarial, init=init, metadata={"defense": defense.to_dict()})
    print(f"{args.defense}: {stem}.safetensors ({time.perf_counter() - tic:.0f} s in this process)")


if __name__ == "__main__":
    main()
