"""advwsl's native C&W L2 and DeepFool against foolbox's, side by side in one run, on real MNIST digits
(mnist-5k): success, median L2 and the time ratios (wall and process time) of the same attack with the
same hyper-parameters on the same images.

    OMP_NUM_THREADS=1 python benchmarks/bench_cw_deepfool.py --cache DIR [--n 200] [--n-cw9 8] [--threads 1]
        [--skip-cw9] [--cw-only]

C&W has its own section and table (:func:`cw_section`): advwsl and foolbox back to back on each budget and
model (the order alternating between rows), with the gradients per digit, in total and per binary-search
step; the measured ratios are in the results comment below ``CW_1X100``.

Models, trained here on the 4,000 mnist-5k training digits and cached in ``--cache`` as checkpoints
(safetensors + JSON sidecar):

* ``clean``: the C&W MNIST network (Table A V-7, dropout 0.5 before the second fully connected layer), 4
  epochs of :func:`advwsl.pretrained.digits.train_classifier` on the training digits and their four 1-pixel
  shifts (20,000 images);
* ``pgd``: that network fine-tuned for 3 epochs with Madry's PGD-L2 adversarial training
  (:func:`advwsl.defenses.madry_training`, epsilon 2.0, 10 steps).

Attacks (untargeted, float images, no quantization), on the first ``--n`` test digits, except C&W 9 x 10 000
and 9 x 1000 on the first ``--n-cw9``:

* C&W 9 x 10 000 (stepsize 0.01, initial constant 0.01, early abort: section A V-5) and 9 x 1000 (the same
  with 1000 steps per c);
* C&W 4 x 25 (stepsize 0.5, c = 1) and 1 x 100 (stepsize 0.1, c = 1): Table A V-9's MNIST values, every
  step run (as the reference's 100 gradients per sample), then again with early abort;
* DeepFool, 50 steps, overshoot 0.02, the 10 classes as candidates.

Success is the share of correctly classified digits made adversarial; the median L2 is over those digits,
a failure counting as the distance to a uniform gray image (as in Table A V-1). Ratios are foolbox / advwsl
for times (above 1: advwsl is faster) and advwsl / foolbox for medians (below 1: advwsl finds smaller
perturbations). adv_lib's carlini_wagner_l2 and deepfool join when adv_lib is importable.

DeepFool in detail (``--deepfool``: this section alone, on the same models and test digits):

    OMP_NUM_THREADS=1 python benchmarks/bench_cw_deepfool.py --deepfool --cache DIR [--n 50 200] [--repeats 3]

advwsl's DeepFool against foolbox 3's (50 steps, overshoot 0.02, 10 candidates), also with ``prune=3`` (after
the first step, only the candidates estimated near the nearest boundary take a gradient), and ``deepfool-fb1``
(foolbox 1.x's variant, the reference's: 100 steps, 1.05 per step), run interleaved ``--repeats`` times per model and
number of images; per attack: success, success once the adversarials are rounded to 8 bits (Table A V-1's
75.4 %), median L2, the images forwarded and back-propagated per digit (the gradients per digit), and the
median process time, with the paired ratio foolbox / advwsl.

Table A V-1's DeepFool row (75.4 % success on MNIST) against the 8-bit lattice (``--lattice``: the built-in
``mnist-cnn``, trained on first use, on mnist-5k's 1,000 test digits, 100 steps):

    OMP_NUM_THREADS=1 python benchmarks/bench_cw_deepfool.py --deepfool --lattice --cache DIR [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import functools
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from advwsl.attacks import carlini_wagner_l2, deepfool, quantize
from advwsl.attacks.deepfool import deepfool_fb1
from advwsl.data.mnist5k import mnist5k
from advwsl.defenses import adversarial_train, madry_training
from advwsl.pretrained.digits import accuracy, train_classifier
from advwsl.models import create_model, load_model, save_model

CLEAN_RECIPE = {"epochs": 4, "batch_size": 64, "lr": 2e-3, "seed": 0, "dropout": 0.5, "shifts": 1}
PGD_RECIPE = {"epsilon": 2.0, "steps": 10, "epochs": 3, "batch_size": 64, "lr": 1e-3, "seed": 0}
CW_9X10000 = {"binary_search_steps": 9, "steps": 10000, "stepsize": 0.01, "initial_const": 0.01}
CW_4X25 = {"binary_search_steps": 4, "steps": 25, "stepsize": 0.5, "initial_const": 1.0}
CW_1X100 = {"binary_search_steps": 1, "steps": 100, "stepsize": 0.1, "initial_const": 1.0}


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 + dy:29 + dy, 1 + dx:29 + dx]


def clean_model(cache: Path) -> torch.nn.Module:
    stem = cache / "cw-mnist-mnist5k"
    if stem.with_suffix(".json").is_file():
        return load_model(stem)
    x, y = mnist5k("train")
    shifts = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    x_aug = torch.cat([x] + [_shifted(x, dy, dx) for dy, dx in shifts])
    torch.manual_seed(CLEAN_RECIPE["seed"])
    model = create_model("cw-mnist", dropout=CLEAN_RECIPE["dropout"])
    train_classifier(model, x_aug, y.repeat(len(shifts) + 1), epochs=CLEAN_RECIPE["epochs"],
                     batch_size=CLEAN_RECIPE["batch_size"], lr=CLEAN_RECIPE["lr"], seed=CLEAN_RECIPE["seed"])
    save_model(model, stem, metadata={"classes": [str(c) for c in range(10)], "training": CLEAN_RECIPE,
                                      "dataset": "mnist-5k train (+ 1-pixel shifts)",
                                      "metrics": {"test_accuracy": accuracy(model, *mnist5k("test"))}})
    return model


def pgd_model(cache: Path, clean: torch.nn.Module) -> torch.nn.Module:
    stem = cache / "cw-mnist-mnist5k-pgd"
    if stem.with_suffix(".json").is_file():
        return load_model(stem)
    model = create_model("cw-mnist", dropout=CLEAN_RECIPE["dropout"])
    model.load_state_dict(clean.state_dict())
    x, y = mnist5k("train")
    g = torch.Generator().manual_seed(PGD_RECIPE["seed"])
    loader = DataLoader(TensorDataset(x, y), batch_size=PGD_RECIPE["batch_size"], shuffle=True, generator=g)
    hook = madry_training(PGD_RECIPE["epsilon"], steps=PGD_RECIPE["steps"], seed=PGD_RECIPE["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=PGD_RECIPE["lr"])
    history = adversarial_train(model, loader, optimizer, perturbation=hook, epochs=PGD_RECIPE["epochs"])
    model.eval()
    save_model(model, stem, metadata={"classes": [str(c) for c in range(10)], "training": PGD_RECIPE,
                                      "dataset": "mnist-5k train", "history": history,
                                      "metrics": {"test_accuracy": accuracy(model, *mnist5k("test"))}})
    return model


def peers() -> dict[str, object]:
    """adv_lib's C&W and DeepFool behind this script's keyword names, when adv_lib is importable (skipped
    silently otherwise). adv_lib's DeepFool considers every class."""
    try:
        from _peers import import_adv_lib_ddn

        import_adv_lib_ddn()  # installs the visdom stand-in adv_lib needs
        from adv_lib.attacks import carlini_wagner_l2 as adv_lib_cw
        from adv_lib.attacks import df as adv_lib_df
    except ImportError:
        return {}

    def cw(model, x, y, *, binary_search_steps, steps, stepsize, initial_const, abort_early=True):
        return adv_lib_cw(model, x, y, binary_search_steps=binary_search_steps, max_iterations=steps,
                          learning_rate=stepsize, initial_const=initial_const, abort_early=abort_early)

    def deepfool_(model, x, y, *, steps, overshoot, candidates=None):
        return adv_lib_df(model, x, y, steps=steps, overshoot=overshoot)

    return {"cw": cw, "deepfool": deepfool_}


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def summarize(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> tuple[float, float]:
    """(success % among correctly classified, median L2 with failures at the distance to uniform gray)."""
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        success = (model(adv).argmax(1) != y) & correct
    norms = torch.where(success, (adv - x).flatten(1).norm(dim=1), (x - 0.5).flatten(1).norm(dim=1))
    return 100 * float(success[correct].float().mean()), float(norms[correct].median())


class CWCounter(torch.nn.Module):
    """``model`` counting the gradients C&W takes: the rows of every backward pass through its logits, in
    total and per binary-search step (``per_search``, filled by :func:`cw_search_marks`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.gradients, self.per_search = model, 0, [0] * 10

    def _count(self, grad: torch.Tensor) -> None:
        self.gradients += grad.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if out.requires_grad:
            out.register_hook(self._count)
        return out


class cw_search_marks:
    """Attribute a :class:`CWCounter`'s gradients to binary-search steps, by instrumentation only (a context
    manager): advwsl's rows carry their own search step (its private ``_adam_step`` is wrapped to count
    them); foolbox runs the whole batch through one search step after the other, each with a new
    ``AdamOptimizer`` (its creation is the mark)."""

    def __init__(self, counter: CWCounter, backend: str) -> None:
        self.counter, self.backend, self.marks = counter, backend, []

    def __enter__(self) -> None:
        import foolbox.attacks.carlini_wagner as fb_cw

        import advwsl.attacks.cw_search as cw

        self.modules, self.saved = (cw, fb_cw), (cw._adam_step, fb_cw.AdamOptimizer)
        adam_step, adam, counter, marks = *self.saved, self.counter, self.marks

        def counted_step(model, s, **kwargs):
            for search, rows in enumerate(torch.bincount(s["search"], minlength=10).tolist()):
                counter.per_search[search] += rows
            return adam_step(model, s, **kwargs)

        class MarkedAdam(adam):
            def __init__(self, *a, **k):
                marks.append(counter.gradients)
                super().__init__(*a, **k)

        if self.backend == "native":
            cw._adam_step = counted_step
        else:
            fb_cw.AdamOptimizer = MarkedAdam

    def __exit__(self, *exc) -> None:
        (cw, fb_cw), (cw._adam_step, fb_cw.AdamOptimizer) = self.modules, self.saved
        ends = self.marks[1:] + [self.counter.gradients]
        for search, (a, b) in enumerate(zip(self.marks, ends)):
            self.counter.per_search[search] = b - a


#: C&W budgets compared with foolbox: (name, hyper-parameters, digits: "n" or "n_cw9"). Without
#: ``abort_early`` each budget runs as :func:`advwsl.attacks.carlini_wagner.cw_budget` gives it (early abort
#: from 1000 steps per c on: the 100-step budgets run every step, as the reference's 100 gradients).
CW_RUNS = [("9x10000", CW_9X10000, "n_cw9"), ("9x1000", {**CW_9X10000, "steps": 1000}, "n_cw9"),
           ("4x25", CW_4X25, "n"), ("1x100", CW_1X100, "n"),
           ("4x25 abort", {**CW_4X25, "abort_early": True}, "n"), ("1x100 abort", {**CW_1X100, "abort_early": True}, "n")]


def cw_pair(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, kwargs: dict, foolbox_first: bool,
            variants: dict[str, dict] | None = None) -> dict:
    """advwsl's and foolbox's C&W with the same ``kwargs`` on the same digits, back to back (``foolbox_first``
    alternates the order between rows, so that load changes hit both sides alike); ``variants``: the native
    runs, by label, each with its extra keyword arguments (default: one, ``"native"``, as ``cw_budget``
    gives the budget)."""
    variants = variants or {"native": {}}
    out = {}
    order = ["foolbox", *variants] if foolbox_first else [*variants, "foolbox"]
    for label in order:
        backend = "foolbox" if label == "foolbox" else "native"
        counter = CWCounter(model)
        extra = {} if label == "foolbox" else variants[label]
        with cw_search_marks(counter, backend):
            adv, wall, cpu = timed(carlini_wagner_l2, counter, x, y, backend=backend, **kwargs, **extra)
        success, median = summarize(model, x, y, adv)
        out[label] = {"wall": wall, "cpu": cpu, "success": success, "median": median,
                      "gradients": counter.gradients / len(x), "per_search": [g / len(x) for g in counter.per_search]}
    return out


def _native_variants(kwargs: dict, args: argparse.Namespace) -> dict[str, dict]:
    """The native runs of a row: as ``cw_budget`` gives it, and from 1000 steps per c on each ``--cw-variant``
    (its own row, labelled by its settings: ``{"abort_window": 300}`` is "window 300")."""
    variants = {"native": {}}
    if kwargs["steps"] >= 1000:
        for text in args.cw_variant or ():
            extra = json.loads(text)
            variants[" ".join(f"{k.replace('abort_', '').replace('_', '-')} {v}" for k, v in extra.items())] = extra
        if args.cw_variants_only and len(variants) > 1:
            del variants["native"]
    return variants


def cw_section(models: dict, x_test: torch.Tensor, y_test: torch.Tensor, args: argparse.Namespace) -> list[str]:
    """The C&W comparison (:data:`CW_RUNS` on every model, paired), printed as it goes; the table's lines."""
    lines, row, others = [], 0, peers()
    for budget, kwargs, digits in CW_RUNS:
        n = getattr(args, digits)
        if (budget == "9x10000" and args.skip_cw9) or (args.cw_budgets and budget not in args.cw_budgets):
            continue
        variants = _native_variants(kwargs, args)
        for model_name, model in models.items():
            r = cw_pair(model, x_test[:n], y_test[:n], kwargs, foolbox_first=row % 2 == 1, variants=variants)
            row += 1
            theirs = r["foolbox"]
            searches = kwargs["binary_search_steps"]
            for label in variants:
                ours = r[label]
                per_search = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(ours["per_search"][:searches],
                                                                         theirs["per_search"][:searches]))
                name = budget if label == "native" else f"{budget} {label}"
                cells = [name, model_name, str(n), f"{ours['success']:.1f} / {theirs['success']:.1f}",
                         f"{ours['median']:.4f} / {theirs['median']:.4f}", f"{ours['median'] / theirs['median']:.4f}",
                         f"{theirs['wall'] / ours['wall']:.2f}", f"{theirs['cpu'] / ours['cpu']:.2f}",
                         f"{ours['cpu']:.1f} / {theirs['cpu']:.1f}",
                         f"{ours['gradients']:.0f} / {theirs['gradients']:.0f}", per_search]
                lines.append("| " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
            if budget in ("4x25", "1x100") and "cw" in others:  # abort as advwsl's default: off below 1000
                peer_adv, _, peer_cpu = timed(others["cw"], model, x_test[:n], y_test[:n], **kwargs,
                                              abort_early=kwargs["steps"] >= 1000)
                s_peer, m_peer = summarize(model, x_test[:n], y_test[:n], peer_adv)
                print(f"  adv_lib C&W {budget} {model_name}: success {s_peer:.1f} %, median L2 {m_peer:.4f}, "
                      f"process time {peer_cpu:.1f} s (advwsl {ours['cpu']:.1f} s)", flush=True)
    return lines


def print_cw_table(lines: list[str]) -> None:
    print("| C&W budget | model | images | success % advwsl / foolbox | median L2 advwsl / foolbox | L2 ratio "
          "| time ratio wall | time ratio process | process s advwsl / foolbox | gradients per digit advwsl / "
          "foolbox | gradients per digit per search step, advwsl/foolbox |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(lines))
    print("\nL2 ratio = advwsl / foolbox median; time ratios = foolbox / advwsl, the two run back to back (the order "
          "alternates between rows). Gradients per digit: backward rows through the model / images given (foolbox "
          "also attacks the misclassified ones). 'abort': early abort on at a 100-step budget (advwsl per sample, "
          "foolbox per batch); otherwise the budgets run as cw_budget gives them (abort from 1000 steps per c).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder of the trained checkpoints (created)")
    parser.add_argument("--n", type=int, default=200, help="test digits for DeepFool and the 100-step C&W")
    parser.add_argument("--n-cw9", type=int, default=8, help="test digits for C&W 9 x 10 000 and 9 x 1000")
    parser.add_argument("--skip-cw9", action="store_true", help="leave out C&W 9 x 10 000")
    parser.add_argument("--cw-only", action="store_true", help="only the C&W section")
    parser.add_argument("--cw-variant", action="append", default=None, metavar="JSON",
                        help="also run the native C&W with these keyword arguments at 1000+ steps per c, e.g. "
                             "'{\"abort_window\": 300, \"abort_window_found\": 100}' (repeatable)")
    parser.add_argument("--cw-variants-only", action="store_true",
                        help="at 1000+ steps per c, run only the variants above, not the default native C&W")
    parser.add_argument("--cw-budgets", nargs="+", default=None, choices=[r[0] for r in CW_RUNS],
                        help="only these C&W rows (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    tic = time.perf_counter()
    clean = clean_model(args.cache)
    models = {"clean": clean, "pgd": pgd_model(args.cache, clean)}
    x_test, y_test = mnist5k("test")
    print(f"models ready in {time.perf_counter() - tic:.0f} s; test accuracy (1,000 digits): "
          + ", ".join(f"{k} {100 * accuracy(m, x_test, y_test):.1f} %" for k, m in models.items()))

    cw_lines = cw_section(models, x_test, y_test, args)  # C&W: its own, paired section and table
    runs = [] if args.cw_only else [  # (attack, budget, kwargs, n)
             ("DeepFool", "50", {"steps": 50, "overshoot": 0.02, "candidates": 10}, args.n)]
    others = peers()
    rows = []
    for model_name, model in models.items():
        for attack, budget, kwargs, n in runs:
            fn = carlini_wagner_l2 if attack == "C&W" else deepfool
            x, y = x_test[:n], y_test[:n]
            ours, ours_wall, ours_cpu = timed(fn, model, x, y, **kwargs)
            theirs, wall, cpu = timed(fn, model, x, y, backend="foolbox", **kwargs)
            (s_ours, m_ours), (s_theirs, m_theirs) = summarize(model, x, y, ours), summarize(model, x, y, theirs)
            rows.append((attack, budget, model_name, str(n), f"{s_ours:.1f} / {s_theirs:.1f}", f"{m_ours:.4f}",
                         f"{m_theirs:.4f}", f"{m_ours / m_theirs:.4f}", f"{wall / ours_wall:.2f}",
                         f"{cpu / ours_cpu:.2f}", f"{ours_cpu:.1f} / {cpu:.1f}"))
            print(" | ".join(rows[-1]), flush=True)
            key = "cw" if attack == "C&W" else "deepfool"
            if key in others and "abort" not in budget:
                peer_adv, _, peer_cpu = timed(others[key], model, x, y, **kwargs)
                s_peer, m_peer = summarize(model, x, y, peer_adv)
                print(f"  adv_lib {attack} {budget} {model_name}: success {s_peer:.1f} %, median L2 {m_peer:.4f}, "
                      f"process time {peer_cpu:.1f} s (advwsl {ours_cpu:.1f} s)", flush=True)

    print(f"\n`{command}`  (torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU)\n")
    print_cw_table(cw_lines)
    if not rows:
        return
    print()
    print("| attack | budget | model | images | success % advwsl / foolbox | median L2 advwsl | median L2 foolbox "
          "| L2 ratio | time ratio wall | time ratio process | process s advwsl / foolbox |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print("\nL2 ratio = advwsl / foolbox median; time ratios = foolbox / advwsl. 'abort' budgets use early abort "
          "(advwsl per sample, foolbox per batch); the other C&W 100-step budgets run every step.")


class RowCounter(torch.nn.Module):
    """``model`` with the images it forwards and the images each backward pass through its logits carries
    counted (rows, not calls: a pass over a batch of 50 counts 50)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.forward_rows, self.backward_rows = model, 0, 0

    def _count(self, grad: torch.Tensor) -> None:
        self.backward_rows += grad.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.forward_rows += x.shape[0]
        if out.requires_grad:
            out.register_hook(self._count)
        return out


DEEPFOOL_ATTACKS = {
    "advwsl": functools.partial(deepfool, steps=50, overshoot=0.02, candidates=10),
    "foolbox": functools.partial(deepfool, steps=50, overshoot=0.02, candidates=10, backend="foolbox"),
    "advwsl prune=3": functools.partial(deepfool, steps=50, overshoot=0.02, candidates=10, prune=3.0),
    "advwsl fb1": functools.partial(deepfool_fb1, steps=100, overshoot=0.05, candidates=10),
}


def deepfool_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, dict]:
    """Each of :data:`DEEPFOOL_ATTACKS` run ``repeats`` times, interleaved (the order rotates), with its
    results, counts and process times."""
    names, out = list(DEEPFOOL_ATTACKS), {}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            counted = RowCounter(model)
            adv, _, cpu = timed(DEEPFOOL_ATTACKS[name], counted, x, y)
            row = out.setdefault(name, {"cpu": [], "adv": adv, "counted": counted})
            row["cpu"].append(cpu)
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    for row in out.values():
        row["success"], row["median"] = summarize(model, x, y, row["adv"])
        row["rounded"], _ = summarize(model, x, y, quantize(row["adv"], 256))
        row["per_digit"] = (row["counted"].forward_rows / correct, row["counted"].backward_rows / correct)
    return out


def _deepfool_table_row(model_name: str, n: int, name: str, rows: dict[str, dict]) -> str:
    row, theirs = rows[name], rows["foolbox"]
    paired = sorted(f / o for f, o in zip(theirs["cpu"], row["cpu"]))
    cpu = sorted(row["cpu"])[len(row["cpu"]) // 2]
    l2_ratio = "-" if name == "foolbox" else f"{row['median'] / theirs['median']:.4f}"
    ratio = "-" if name == "foolbox" else f"{paired[len(paired) // 2]:.2f} ({paired[0]:.2f}-{paired[-1]:.2f})"
    forward, backward = row["per_digit"]
    differ = "-"
    if name.startswith("advwsl ") and "fb1" not in name:  # a variant of advwsl's: the same adversarials?
        differ = str(int(((row["adv"] - rows["advwsl"]["adv"]).flatten(1).abs().amax(1) > 0).sum()))
    cells = [model_name, str(n), name, f"{row['success']:.1f}", f"{row['rounded']:.1f}", f"{row['median']:.4f}",
             l2_ratio, differ, f"{forward:.1f} / {backward:.1f}", f"{cpu:.2f}", ratio]
    return "| " + " | ".join(cells) + " |"


def lattice_check(n: int) -> None:
    """advwsl's DeepFool and deepfool-fb1 (100 steps) on ``mnist-cnn``: success, mean and median L2 in float
    and once the adversarials are rounded to the nearest 8-bit values; linearizations per digit."""
    from advwsl.pretrained.mnist import mnist_cnn

    model = mnist_cnn(progress=False)[0].eval()
    x, y = (t[:n] for t in mnist5k("test"))
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    print(f"mnist-cnn, {n} test digits, {int(correct.sum())} correctly classified; Table A V-1 (DeepFool 100): "
          f"success 75.4 %, mean L2 1.9685, median 2.2909, 98 gradients")
    for name, fn in (("advwsl", deepfool), ("advwsl fb1", deepfool_fb1)):
        counted = RowCounter(model)
        adv, _, cpu = timed(fn, counted, x, y, steps=100)
        steps = counted.backward_rows / 9 / int(correct.sum())  # 9 candidates a step
        for label, a in (("float", adv), ("rounded to 8 bits", quantize(adv, 256))):
            with torch.no_grad():
                success = (model(a).argmax(1) != y) & correct
            norms = (a - x).flatten(1).norm(dim=1)
            median = torch.where(success, norms, (x - 0.5).flatten(1).norm(dim=1))[correct].median()
            print(f"{name:10s} {label:17s}: success {100 * float(success[correct].float().mean()):5.1f} %, mean L2 "
                  f"{float(norms[success].mean()):.4f}, median L2 {float(median):.4f}; {steps:.1f} linearizations "
                  f"per digit, {cpu:.0f} s", flush=True)


def deepfool_main() -> None:
    """The DeepFool section (see the module docstring)."""
    parser = argparse.ArgumentParser(description="DeepFool: advwsl against foolbox, and deepfool-fb1")
    parser.add_argument("--deepfool", action="store_true", help="run this section (required)")
    parser.add_argument("--cache", type=Path, required=True, help="folder of the trained checkpoints (created)")
    parser.add_argument("--n", type=int, nargs="+", default=[50, 200], help="numbers of test digits")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per attack")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--lattice", action="store_true", help="the 8-bit lattice check on mnist-cnn instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    if args.lattice:
        lattice_check(max(args.n))
        print(f"\n`{command}`  (torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU)")
        return
    clean = clean_model(args.cache)
    models = {"clean": clean, "PGD-trained": pgd_model(args.cache, clean)}
    x_test, y_test = mnist5k("test")
    lines = []
    for n in args.n:
        for model_name, model in models.items():
            rows = deepfool_rows(model, x_test[:n], y_test[:n], args.repeats)
            lines += [_deepfool_table_row(model_name, n, name, rows) for name in DEEPFOOL_ATTACKS]
            print("\n".join(lines[-len(DEEPFOOL_ATTACKS):]), flush=True)
    print(f"\n`{command}`  (torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU)\n")
    print("| model | images | attack | success % | success % rounded to 8 bits | median L2 | L2 ratio to foolbox "
          "| digits not identical to advwsl's | images forwarded / back-propagated per digit | process s (median) "
          "| time ratio foolbox / this (median, range) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    print(f"\nadvwsl and foolbox: 50 steps, overshoot 0.02, 10 candidates (prune=3: the same, candidates estimated "
          f"far skipped after the first step); fb1: foolbox 1.x's variant, 100 steps, 1.05 per step. Per digit: "
          f"over the correctly classified digits. Time ratios are paired per repeat ({args.repeats} interleaved "
          f"repeats). 'not identical': digits whose adversarial differs in any bit from advwsl's.")


if __name__ == "__main__":
    deepfool_main() if "--deepfool" in sys.argv else main()
