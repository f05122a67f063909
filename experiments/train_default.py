"""Reproduce the built-in demo models of ``advwsl attack --model NAME`` (see advwsl/demo.py): each WSL zoo
model trained with the demo recipe on the built-in synthetic histology set, cached where the command
looks for it, and its test accuracy and CAM localization printed as a table.

    python experiments/train_default.py                  # the default WILDCAT
    python experiments/train_default.py --model cam --model max
    python experiments/train_default.py --all --retrain  # every WSL head, trained again

The numbers are those of a synthetic demo (procedurally generated tiles, not patient data).
"""

from __future__ import annotations

import argparse
import time

from advwsl.pretrained.demo import DEMO_DATASET, DEMO_RECIPE, demo_model, is_demo_cached
from advwsl.models import list_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="WSL zoo name (repeatable); default: wildcat")
    parser.add_argument("--all", action="store_true", help="every WSL zoo model")
    parser.add_argument("--retrain", action="store_true", help="train again even when cached")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    names = list_models("wsl") if args.all else (args.model or ["wildcat"])
    print(f"recipe: {DEMO_RECIPE}\ndataset: synthetic {DEMO_DATASET}\n")
    rows = []
    for name in names:
        cached = is_demo_cached(name) and not args.retrain
        tic = time.perf_counter()
        model, info = demo_model(name, retrain=args.retrain, progress=not args.no_progress, log=print)
        seconds = time.perf_counter() - tic
        test = info["metrics"]["test"]
        rows.append((name, test["accuracy"], test["cam_dice"], test["cam_iou"], info.get("epoch"),
                     "cached" if cached else f"{seconds:.0f} s", info["checkpoint"]))
    print("\n| model | test accuracy (%) | CAM Dice | CAM IoU | best epoch | training | checkpoint |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, acc, dice, iou, epoch, took, path in rows:
        print(f"| {name} | {100 * acc:.1f} | {dice:.3f} | {iou:.3f} | {epoch} | {took} | {path} |")


if __name__ == "__main__":
    main()
