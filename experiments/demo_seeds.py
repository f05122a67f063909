"""How stable the built-in demo model is across training seeds: the demo recipe (``DEMO_RECIPE`` on
``DEMO_DATASET`` of advwsl/pretrained/demo.py) trained with seeds 0-4, exactly as ``advwsl attack --model
wildcat`` trains it on first use (same code path, one thread, on the CPU, cached under ``$ADVWSL_HOME``;
seed 0 is the default demo model), and the test accuracy and the CAM localization (Dice and IoU of the
min-max normalized CAM of the predicted class with the lesion mask, lesion tiles only) of each, with
mean ± std and the worst seed.

    python experiments/demo_seeds.py                       # WILDCAT, seeds 0-4
    python experiments/demo_seeds.py --model cam --seeds 0 1 2
    python experiments/demo_seeds.py --jobs 2              # two seeds at a time (one thread each)

The numbers are those of a synthetic demo (procedurally generated tiles, not patient data).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from advwsl.io import markdown_table, mean_std
from advwsl.pretrained.demo import DEMO_DATASET, DEMO_RECIPE, DEMO_VERSION, demo_model, is_demo_cached


def train_seed(name: str, seed: int, retrain: bool, progress: bool) -> dict[str, Any]:
    """Train (or load from the cache) the demo model ``name`` with training seed ``seed``; the training's
    wall-clock and CPU seconds (None when cached; one thread, so the CPU time is what an idle core takes)."""
    cached = is_demo_cached(name, seed=seed) and not retrain
    wall, cpu = time.perf_counter(), time.process_time()
    _, info = demo_model(name, seed=seed, retrain=retrain, progress=progress)
    test = info["metrics"]["test"]
    return {"seed": seed, "accuracy": test["accuracy"], "cam_dice": test["cam_dice"], "cam_iou": test["cam_iou"],
            "epoch": info.get("epoch"), "wall": None if cached else time.perf_counter() - wall,
            "cpu": None if cached else time.process_time() - cpu}


def table(name: str, rows: list[dict[str, Any]]) -> str:
    """The per-seed rows, then mean ± std and the worst seed (accuracy in %); the training times below."""
    body = [[r["seed"], f"{100 * r['accuracy']:.1f}", f"{r['cam_dice']:.3f}", f"{r['cam_iou']:.3f}", r["epoch"]]
            for r in rows]
    stats = {k: mean_std([r[k] for r in rows]) for k in ("accuracy", "cam_dice", "cam_iou")}
    body.append(["mean ± std", f"{100 * stats['accuracy'][0]:.1f} ± {100 * stats['accuracy'][1]:.1f}",
                 f"{stats['cam_dice'][0]:.3f} ± {stats['cam_dice'][1]:.3f}",
                 f"{stats['cam_iou'][0]:.3f} ± {stats['cam_iou'][1]:.3f}", ""])
    body.append(["min", f"{100 * min(r['accuracy'] for r in rows):.1f}", f"{min(r['cam_dice'] for r in rows):.3f}",
                 f"{min(r['cam_iou'] for r in rows):.3f}", ""])
    header = ["seed", "test accuracy (%)", "CAM Dice", "CAM IoU", "best epoch"]
    times = [f"seed {r['seed']} {r['wall']:.0f} s ({r['cpu']:.0f} CPU s)" for r in rows if r["wall"] is not None]
    return (f"{name} (demo v{DEMO_VERSION}), {len(rows)} training seeds, synthetic test split "
            f"({DEMO_DATASET['n_test']} tiles)\n\n" + markdown_table(header, body, align="lrrrr")
            + f"\ntraining: {'; '.join(times) if times else 'every seed cached'}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wildcat", help="WSL zoo name (default: wildcat)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at the same time (one thread each)")
    parser.add_argument("--retrain", action="store_true", help="train again even when cached")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    print(f"recipe: {DEMO_RECIPE}\ndataset: synthetic {DEMO_DATASET}\n")
    progress = not args.no_progress and args.jobs == 1
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(train_seed, [args.model] * len(args.seeds), args.seeds,
                                 [args.retrain] * len(args.seeds), [False] * len(args.seeds)))
    else:
        rows = [train_seed(args.model, s, args.retrain, progress) for s in args.seeds]
    print(table(args.model, rows))


if __name__ == "__main__":
    main()
