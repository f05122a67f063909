"""advwsl's FMN, FAB and APGD (CE, DLR, APGD-T) against the same attacks in adv_lib and torchattacks (and
foolbox's FMN), side by side in one run on real MNIST digits (mnist-5k), and what FMN and FAB add to the
"All" row of the reference's attacks.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_new_attacks.py --cache DIR [--n 100] [--threads 1]
        [--skip-peers | --skip-all]

Peers: ``pip install --no-deps adv-lib torchattacks`` (the ``peers`` extra); a peer that does not import is
left out. Models:

* ``clean``: the built-in ``mnist-cnn`` (the C&W MNIST network trained with C&W's recipe on the 4,000
  mnist-5k training digits; :func:`advwsl.pretrained.mnist.mnist_cnn`, trained on first use and cached);
* ``pgd``: that network fine-tuned with Madry's PGD-L2 adversarial training as in
  ``benchmarks/bench_cw_deepfool.py`` (epsilon 2.0, 10 steps, 3 epochs), cached in ``--cache``.

Attacks, untargeted, float images (no quantization), on the first ``--n`` test digits, at equal budgets
(every implementation gets the same steps and restarts):

* FMN-L2, 100 steps (the authors' default); peers adv_lib ``fmn`` and foolbox ``L2FMNAttack``;
* FAB-L2, 100 steps, 1 restart, alpha_max 0.1, eta 1.05, beta 0.9; advwsl with its final search (3 forward
  passes) and without (as AutoAttack); peers adv_lib ``fab`` and torchattacks ``FAB`` (given a huge
  epsilon, as it only returns adversarials within epsilon);
* APGD-CE, APGD-DLR (100 steps, 1 restart) and APGD-T (9 target classes) at ``--epsilon`` per model; peers
  adv_lib ``apgd`` / ``apgd_targeted`` and torchattacks ``APGD`` / ``APGDT``.

Minimal-norm rows report success (share of correctly classified digits made adversarial) and the median L2
with failures at the distance to a uniform gray image (Table A V-1; ``torch.median``, the lower middle value
for an even count, as ``bench_cw_deepfool.py``, where the "All" rows' AttackResult averages the two); APGD rows report robust accuracy at
epsilon (lower is stronger). Ratios: advwsl / best peer for medians (below 1: advwsl finds smaller
perturbations), best-peer process time / advwsl's (above 1: advwsl is faster). The implementations of one
row run one after the other on the same images, so machine load affects them alike.

The "All" rows: :func:`advwsl.attacks.run_attack` (quantized to 8 bits, as the reference) runs DDN 100,
C&W 4 x 25 and DeepFool 50, then FMN 100 and FAB 100; :func:`advwsl.attacks.combine_results` gives the
per-sample best with and without the new attacks, and the script counts the images whose "All" norm the
new attacks lower, and by how much.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from advwsl.attacks import apgd, apgd_t, combine_results, fab, fmn, run_attack
from advwsl.data.mnist5k import mnist5k
from advwsl.pretrained.digits import accuracy
from advwsl.pretrained.mnist import mnist_cnn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cw_deepfool import pgd_model  # noqa: E402
from _peers import import_adv_lib_ddn  # noqa: E402

#: Untargeted 100-step budgets of the reference's attacks for the "All" rows (C&W: Table A V-9's MNIST 4 x 25).
ALL_RUNS = {"ddn": "100", "cw": "4x25", "deepfool": "50"}


def peers() -> dict[str, dict[str, object]]:
    """Per attack, the peer implementations that import here, behind one calling convention
    ``fn(model, x, y, steps=..., epsilon=...)``."""
    out: dict[str, dict[str, object]] = {"fmn": {}, "fab": {}, "apgd-ce": {}, "apgd-dlr": {}, "apgd-t": {}}
    try:
        import_adv_lib_ddn()  # installs the visdom stand-in adv_lib needs
        from adv_lib import attacks as al

        out["fmn"]["adv_lib"] = lambda m, x, y, steps, **_: al.fmn(m, x, y, norm=2, steps=steps)
        out["fab"]["adv_lib"] = lambda m, x, y, steps, **_: al.fab(m, x, y, norm=2, n_iter=steps)
        for loss in ("ce", "dlr"):
            out[f"apgd-{loss}"]["adv_lib"] = (lambda loss: lambda m, x, y, steps, epsilon: al.apgd(
                m, x, y, eps=epsilon, norm=2, n_iter=steps, loss_function=loss))(loss)
        out["apgd-t"]["adv_lib"] = lambda m, x, y, steps, epsilon: al.apgd_targeted(
            m, x, y, eps=epsilon, norm=2, n_iter=steps, num_targets=9)
    except ImportError:
        pass
    try:
        import torchattacks as ta

        out["fab"]["torchattacks"] = lambda m, x, y, steps, **_: ta.FAB(
            m, norm="L2", eps=1e6, steps=steps, n_restarts=1, alpha_max=0.1, eta=1.05, beta=0.9)(x, y)
        for loss in ("ce", "dlr"):
            out[f"apgd-{loss}"]["torchattacks"] = (lambda loss: lambda m, x, y, steps, epsilon: ta.APGD(
                m, norm="L2", eps=epsilon, steps=steps, n_restarts=1, loss=loss, seed=0)(x, y))(loss)
        out["apgd-t"]["torchattacks"] = lambda m, x, y, steps, epsilon: ta.APGDT(
            m, norm="L2", eps=epsilon, steps=steps, n_restarts=1, n_classes=10, seed=0)(x, y)
    except ImportError:
        pass
    import foolbox as fb

    out["fmn"]["foolbox"] = lambda m, x, y, steps, **_: fb.attacks.L2FMNAttack(steps=steps).run(
        fb.PyTorchModel(m, (0, 1)), x, y)
    return out


def ours() -> dict[str, dict[str, object]]:
    return {
        "fmn": {"advwsl": lambda m, x, y, steps, **_: fmn(m, x, y, steps=steps, levels=None)},
        "fab": {"advwsl": lambda m, x, y, steps, **_: fab(m, x, y, steps=steps, levels=None),
                "advwsl (no final search)": lambda m, x, y, steps, **_: fab(m, x, y, steps=steps, levels=None,
                                                                          final_search=0)},
        "apgd-ce": {"advwsl": lambda m, x, y, steps, epsilon: apgd(m, x, y, epsilon=epsilon, steps=steps, seed=0)},
        "apgd-dlr": {"advwsl": lambda m, x, y, steps, epsilon: apgd(m, x, y, epsilon=epsilon, steps=steps,
                                                                   loss="dlr", seed=0)},
        "apgd-t": {"advwsl": lambda m, x, y, steps, epsilon: apgd_t(m, x, y, epsilon=epsilon, steps=steps, seed=0)},
    }


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor,
            epsilon: float | None) -> tuple[float, float]:
    """(success % among correctly classified, median L2 with failures at the gray distance); with
    ``epsilon``, (robust accuracy % at epsilon, largest L2 of a success) instead."""
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        success = (model(adv).argmax(1) != y) & correct
    norms = (adv - x).flatten(1).norm(dim=1)
    if epsilon is not None:
        success &= norms <= epsilon * (1 + 1e-4)
        robust = correct & ~success
        return 100 * float(robust.float().mean()), float(norms[success].max()) if bool(success.any()) else 0.0
    norms = torch.where(success, norms, (x - 0.5).flatten(1).norm(dim=1))
    return 100 * float(success[correct].float().mean()), float(norms[correct].median())


def compare(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, epsilons: dict[str, float],
            steps: int) -> list[tuple[str, ...]]:
    """One row per model, attack and implementation."""
    rows = []
    implementations, others = ours(), peers()
    for model_name, model in models.items():
        for attack in implementations:
            eps = epsilons[model_name] if attack.startswith("apgd") else None
            runs = {**implementations[attack], **others[attack]}
            results = {}
            for impl, fn in runs.items():
                torch.manual_seed(0)
                cpu = time.process_time()
                adv = fn(model, x, y, steps=steps, epsilon=eps)
                results[impl] = (*measure(model, x, y, adv.detach(), eps), time.process_time() - cpu)
            peer_values = [v for k, v in results.items() if not k.startswith("advwsl")]
            for impl, (a, b, seconds) in results.items():
                ratio = time_ratio = "-"
                if peer_values and eps is None:
                    ratio = f"{b / min(v[1] for v in peer_values):.4f}"
                if peer_values:
                    time_ratio = f"{min(v[2] for v in peer_values) / seconds:.2f}"
                label = f"{a:.1f}" if eps is not None else f"{a:.1f} / {b:.4f}"
                rows.append((model_name, attack + (f" eps {eps}" if eps else ""), impl, label, ratio, time_ratio,
                             f"{seconds:.1f}"))
                print(" | ".join(rows[-1]), flush=True)
    return rows


def all_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[str]:
    """The "All" row of the reference's attacks, with and without FMN and FAB (8-bit, verified)."""
    run = {name: run_attack(model, x, y, attack=name, attack_kwargs={**_budget(name, budget)}, progress=False)
           for name, budget in {**ALL_RUNS, "fmn": str(steps), "fab": str(steps)}.items()}
    base = combine_results([run[n] for n in ALL_RUNS])
    full = combine_results([run[n] for n in (*ALL_RUNS, "fmn", "fab")])
    b, f = base.norms, full.norms
    moved = np.isfinite(f) & (f < b - 1e-6)
    lines = [f"{r.attack} {r.budget}: success {100 * r.summary()['success']:.1f} %, median L2 "
             f"{r.summary()['median_l2']:.4f}" for r in run.values()]
    lines.append(f"All (reference's three): success {100 * base.summary()['success']:.1f} %, median L2 "
                 f"{base.summary()['median_l2']:.4f}")
    lines.append(f"All (+ FMN, FAB): success {100 * full.summary()['success']:.1f} %, median L2 "
                 f"{full.summary()['median_l2']:.4f}; images moved {int(moved.sum())} of {len(f)}"
                 + (f", by a median {100 * float(np.median(1 - f[moved] / b[moved])):.1f} % (largest "
                    f"{100 * float(np.max(1 - f[moved] / b[moved])):.1f} %) of their norm" if moved.any() else ""))
    return lines


def _budget(name: str, budget: str) -> dict[str, object]:
    from advwsl.attacks import get_attack_spec

    return get_attack_spec(name).kwargs(budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder of the PGD-trained checkpoint (created)")
    parser.add_argument("--n", type=int, default=100, help="test digits")
    parser.add_argument("--steps", type=int, default=100, help="steps of every attack")
    parser.add_argument("--epsilon", type=float, nargs=2, default=(1.5, 2.0), metavar=("CLEAN", "PGD"),
                        help="APGD radius on each model")
    parser.add_argument("--skip-all", action="store_true", help="leave out the 'All' rows")
    parser.add_argument("--skip-peers", action="store_true", help="only the 'All' rows")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    clean, _ = mnist_cnn(progress=False)
    models = {"clean": clean.eval(), "pgd": pgd_model(args.cache, clean).eval()}
    x_test, y_test = mnist5k("test")
    print("test accuracy (1,000 digits): " + ", ".join(f"{k} {100 * accuracy(m, x_test, y_test):.1f} %"
                                                       for k, m in models.items()), flush=True)
    x, y = x_test[:args.n], y_test[:args.n]
    rows = [] if args.skip_peers else compare(models, x, y, dict(zip(models, args.epsilon)), args.steps)
    print(f"\n`{command}`  (torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, {args.n} digits)\n")
    print("| model | attack | implementation | success % / median L2 (APGD: robust accuracy %) | L2 ratio to best "
          "peer | time ratio (best peer / this) | process s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not args.skip_all:
        for name, model in models.items():
            print(f"\n{name}:")
            for line in all_rows(model, x, y, args.steps):
                print(f"- {line}")


if __name__ == "__main__":
    main()
