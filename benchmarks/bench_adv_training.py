"""Cost of adversarial training (section A V-6): the time of one epoch of DDN-100 training (eq. A V-9) and
of Madry PGD-40 training (eq. A V-7) relative to a clean epoch of the same model on the same batches, all
measured in this run with :func:`advwsl.training.train_one_epoch`.

Each adversarial batch costs ``steps`` forward + backward passes to the input plus the update, so about
``steps`` x a clean epoch is the floor (a clean step also updates the weights, so the true floor is a bit
lower). The script prints the measured ratios next to that floor.

    python benchmarks/bench_adv_training.py [--device cuda] [--quick] [--model cw-mnist|cw-cifar|wrn-28-10]
                                             [--batches N] [--batch-size 128] [--threads T]

cw-mnist trains on the scikit-learn digits upsampled to 28 x 28 (real images); cw-cifar and wrn-28-10 on
uniform random 32 x 32 images (timing only). The model starts untrained, so the mean-L2 column (training
adversarials after projection) is informative only; every attack runs all its steps whatever it finds.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from advwsl.data.digits import sklearn_digits
from advwsl.defenses import ddn_training, madry_training
from advwsl.models.zoo import create_model
from advwsl.training import train_one_epoch
from advwsl.utils import select_device


def _data(model: str, n: int) -> TensorDataset:
    if model == "cw-mnist":
        x, y = sklearn_digits(28)
        reps = -(-n // len(x))
        return TensorDataset(x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n])
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))


def _epoch(net: torch.nn.Module, loader: DataLoader, hook, device: torch.device) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic = time.perf_counter()
    train_one_epoch(net, loader, opt, perturb=hook)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="2 batches per epoch, DDN-20 and PGD-10")
    parser.add_argument("--model", default="cw-mnist", choices=["cw-mnist", "cw-cifar", "wrn-28-10"])
    parser.add_argument("--batches", type=int, default=None, help="batches per epoch (default 8; quick 2)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--ddn-steps", type=int, default=None, help="default 100 (quick 20)")
    parser.add_argument("--pgd-steps", type=int, default=None, help="default 40 (quick 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    batches = args.batches or (2 if args.quick else 8)
    ddn_steps = args.ddn_steps or (20 if args.quick else 100)
    pgd_steps = args.pgd_steps or (10 if args.quick else 40)
    eps = 2.4 if args.model == "cw-mnist" else 1.0  # epsilon_max of section A V-7
    torch.manual_seed(0)
    kwargs = {"input_size": 28} if args.model == "cw-mnist" else {}
    net = create_model(args.model, num_classes=10, **kwargs).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    loader = DataLoader(_data(args.model, batches * args.batch_size), batch_size=args.batch_size, shuffle=False)
    print(f"{args.model} on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads), {batches} batches of {args.batch_size}, epsilon_max {eps}")
    _epoch(net, loader, None, device)  # warm-up (allocator, cudnn autotuning, first-call overheads)
    clean = min(_epoch(net, loader, None, device) for _ in range(2))
    rows = [("clean", clean, 1.0, None)]
    for label, hook, steps in ((f"DDN-{ddn_steps} (eq. A V-9)", ddn_training(eps, steps=ddn_steps), ddn_steps),
                               (f"PGD-{pgd_steps} (Madry, eq. A V-7)", madry_training(eps, steps=pgd_steps),
                                pgd_steps)):
        seconds = _epoch(net, loader, hook, device)
        stats = hook.stats()
        rows.append((label, seconds, seconds / clean, steps, stats["attack_seconds"] / seconds,
                     stats["adv_l2_mean"]))
    print(f"{'training':<28} {'epoch (s)':>10} {'x clean':>8} {'floor ~':>8} {'attack share':>13} {'mean L2':>8}")
    for row in rows:
        label, seconds, ratio, steps = row[:4]
        extra = f"{row[4]:>12.1%} {row[5]:>8.3f}" if len(row) > 4 else f"{'':>12} {'':>8}"
        print(f"{label:<28} {seconds:>10.3f} {ratio:>8.1f} {steps or 1:>8} {extra}")


if __name__ == "__main__":
    main()
