"""Table A V-5 and Figure A V-4 on the scikit-learn digits: a clean-trained baseline, DDN adversarial
training (eq. A V-9) and Madry PGD-L2 training (eq. A V-7) of the same CNN for the same epochs, at the same
epsilon_max and the same number of attack steps per batch, evaluated with C&W, DeepFool and DDN and their
per-sample minimum ("All").

    python experiments/digits_defense.py [--out DIR] [--epochs 15] [--eps-max 1.2] [--epsilon 0.75]
                                         [--train-steps 20] [--n 200] [--device cuda] [--quick]

The digits are 16 x 16 (256 pixels against MNIST's 784), so the radii are scaled down from the reference's
(epsilon_max 2.4, table epsilon 1.5 on MNIST) in about the same proportion to the clean model's median
adversarial norm. Writes one robustness report per model, ``table.md`` (Table A V-5 layout) and
``curves.png`` (Figure A V-4) into the run directory. The defaults take about 11 CPU-minutes (one thread)
and 1.5 minutes on one GPU; ``--quick`` (8 epochs, 10 attack steps per batch in training, 100 test samples,
smaller evaluation budgets) takes a few CPU-minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from advwsl.data.digits import sklearn_digits
from advwsl.defenses import adversarial_train, ddn_training, madry_training
from advwsl.evaluation.robustness import evaluate_robustness
from advwsl.models.small import CWNet
from advwsl.plotting import plot_robustness_curves
from advwsl.runs import create_run_dir
from advwsl.utils import seed_everything, select_device


def _train(kind: str, args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, list[dict]]:
    seed_everything(args.seed)
    x, y = sklearn_digits(16, "train")
    model = CWNet(1, 10, 16, (32, 64, 128)).to(device)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    hook = {"clean": None,
            "ddn": ddn_training(args.eps_max, steps=args.train_steps, seed=args.seed),
            "madry": madry_training(args.eps_max, steps=args.train_steps, seed=args.seed)}[kind]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * len(loader))
    history = adversarial_train(model, loader, opt, perturbation=hook, epochs=args.epochs, scheduler=sched)
    return model.eval(), history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="run directory (new)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--eps-max", type=float, default=1.2, help="epsilon_max of both defenses")
    parser.add_argument("--epsilon", type=float, default=0.75, help="radius of the table's accuracy column")
    parser.add_argument("--train-steps", type=int, default=20, help="attack steps per batch in training (both)")
    parser.add_argument("--n", type=int, default=200, help="test samples evaluated")
    parser.add_argument("--ddn-steps", type=int, default=300, help="evaluation budget of DDN")
    parser.add_argument("--cw", default="5x200", help="evaluation budget of C&W, SEARCHESxSTEPS")
    parser.add_argument("--deepfool-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="a few-minute CPU run with smaller budgets")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.train_steps, args.n = 8, 10, 100
        args.ddn_steps, args.cw, args.deepfool_steps = 100, "4x100", 50
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    run_dir = create_run_dir("digits-defense", args.out, config=vars(args))
    xt, yt = sklearn_digits(16, "test")
    xt, yt = xt[: args.n].to(device), yt[: args.n].to(device)
    searches, cw_steps = (int(v) for v in args.cw.split("x"))
    budgets = {"cw": {"binary_search_steps": searches, "steps": cw_steps},
               "deepfool": {"steps": args.deepfool_steps}, "ddn": {"steps": args.ddn_steps}}
    names = {"clean": "Baseline", "madry": f"Madry PGD-{args.train_steps}", "ddn": f"DDN-{args.train_steps} (ours)"}
    lines = [f"| Defense | Attack | Attack success | Mean L2 | Median L2 | Accuracy at eps <= {args.epsilon:g} |",
             "|---|---|---:|---:|---:|---:|"]
    curves, notes = {}, []
    for kind in ("clean", "madry", "ddn"):
        tic = time.perf_counter()
        model, history = _train(kind, args, device)
        train_s = time.perf_counter() - tic
        clean_acc = 100 * float((model(xt).argmax(1) == yt).float().mean())
        tic = time.perf_counter()
        report = evaluate_robustness(model, xt.cpu(), yt.cpu(), epsilon=args.epsilon, attacks=("cw", "deepfool", "ddn"),
                                     budgets=budgets, batch_size=100, seed=args.seed, model_name=names[kind],
                                     progress=False)
        eval_s = time.perf_counter() - tic
        report.save(Path(run_dir) / kind)
        table = report.table()
        acc_col = table.columns[-1]
        for i, row in enumerate(table.to_dict(orient="records")):
            attack = "**All**" if row["attack"] == "All" else f"{row['attack']} {row['budget']}"
            lines.append(f"| {names[kind] if i == 0 else ''} | {attack} | {100 * row['success']:.1f} | {row['mean_l2']:.4f} | "
                         f"{row['median_l2']:.4f} | {100 * row[acc_col]:.1f} |")
        curves[names[kind]] = report.curves()
        adv = history[-1].get("adv_l2_mean")
        notes.append(f"- {names[kind]}: clean test accuracy {clean_acc:.1f}%, training {train_s:.0f} s"
                     + (f" (last-epoch mean L2 of training adversarials {adv:.3f})" if adv is not None else "")
                     + f", evaluation {eval_s:.0f} s; checks: "
                     + ", ".join(f"{c.name} {'ok' if c.passed else 'FAILED'}" for c in report.checks()))
        print(notes[-1], flush=True)
    text = "\n".join(lines + [""] + notes)
    (Path(run_dir) / "table.md").write_text(text + "\n")
    plot_robustness_curves(curves, Path(run_dir) / "curves.png", epsilon=args.epsilon, attacks=("All",),
                           title=f"scikit-learn digits: accuracy under L2 attacks (epsilon_max {args.eps_max})")
    plot_robustness_curves(curves, Path(run_dir) / "curves_per_attack.png", epsilon=args.epsilon,
                           title="per attack")
    print(text)
    print(f"\nrun: {run_dir}")


if __name__ == "__main__":
    main()
