"""Fast precision: advwsl's DDN-100 in fp32, TF32 and bf16 + channels_last (every result verified in fp32,
repaired or failed) against foolbox's DDNAttack in fp32, on the same model and inputs, in one run: time
ratios, success and median L2 (ratio to advwsl fp32).

    python benchmarks/bench_precision.py --device cuda        # ResNet-18 and ResNet-50 at 224, batch 64
    python benchmarks/bench_precision.py --quick              # CPU smoke run (ResNet-18 at 64, batch 8)

Models are ImageNet-shaped torchvision ResNets with random weights (timing); labels are their own
predictions. Both DDNs run without quantization (foolbox's has none). The goal on a GPU: bf16 DDN-100 at least 1.9x faster than foolbox's DDN at median L2 within 1 %
and equal success.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from advwsl.attacks import run_attack


def foolbox_ddn(model, x, y, steps):
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
    attack = fb.attacks.DDNAttack(steps=steps)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    _, adv, ok = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - tic
    norms = (adv - x).flatten(1).norm(dim=1)
    gray = (0.5 - x).flatten(1).norm(dim=1)
    median = float(torch.where(ok, norms, gray).median())
    return seconds, float(ok.float().mean()), median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    device = torch.device(args.device)
    size, batch = (64, 8) if args.quick else (224, 64)
    steps = 20 if args.quick else args.steps
    print(f"DDN-{steps}, {device}, batch {batch} at {size}x{size}, median of {args.repeats} runs")
    print("| model | advwsl fp32 (s) | tf32 / fp32 | bf16+cl / fp32 | foolbox fp32 / advwsl bf16+cl | success fp32 / "
          "bf16 / foolbox | median L2 bf16 / fp32 | foolbox / fp32 | repaired (bf16) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for name in ("resnet18",) if args.quick else ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(num_classes=1000).to(device).eval()
        x = (torch.rand(batch, 3, size, size, device=device) * 255).round() / 255
        with torch.no_grad():
            y = model(x).argmax(1)
        runs: dict[str, list] = {"fp32": [], "tf32": [], "bf16": [], "foolbox": []}
        for _ in range(args.repeats):
            for key, prec, cl in (("fp32", "fp32", False), ("tf32", "tf32", False), ("bf16", "bf16", True)):
                r = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": steps}, batch_size=batch,
                               levels=None, progress=False, precision=prec, channels_last=cl)
                s = r.summary()
                runs[key].append((s["seconds"], s["success"], s["median_l2"], r.params["repaired"]))
            runs["foolbox"].append(foolbox_ddn(model, x, y, steps))
        t = {k: statistics.median(v[0] for v in runs[k]) for k in runs}
        last = {k: runs[k][-1] for k in runs}
        print(f"| {name} | {t['fp32']:.2f} | {t['tf32'] / t['fp32']:.2f} | {t['bf16'] / t['fp32']:.2f} | "
              f"{t['foolbox'] / t['bf16']:.2f} | {last['fp32'][1]:.3f} / {last['bf16'][1]:.3f} / "
              f"{last['foolbox'][1]:.3f} | {last['bf16'][2] / last['fp32'][2]:.4f} | "
              f"{last['foolbox'][2] / last['fp32'][2]:.4f} | {last['bf16'][3]} |")


if __name__ == "__main__":
    main()
