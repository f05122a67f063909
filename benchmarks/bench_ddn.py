"""Wall time of DDN against foolbox's DDNAttack and adv_lib's ddn on the same model, inputs and number of
steps, measured in one run (interleaved repeats, median), with the cost floor: ``steps x`` one forward +
backward pass of the model on the batch. Ratios > 1 mean slower than advwsl's ddn.

    python benchmarks/bench_ddn.py [--device cuda] [--quick] [--repeats 3]

CPU: a small CNN (C&W MNIST net, 28 x 28) and ResNet-18 at 64 x 64. ``--device cuda`` adds ResNet-18 at
224 x 224 and the C&W CIFAR-10 CNN (32 x 32). Models are randomly initialized (timing only); the labels are
the model's own predictions so that every sample is attacked.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from _peers import import_adv_lib_ddn
from advwsl.attacks import ddn
from advwsl.models.small import cw_cifar, cw_mnist


def resnet18(size):
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def cases(device, quick):
    """(name, model builder, input shape, batch size, steps)."""
    if device.type == "cuda":
        return [("C&W MNIST CNN 28x28", lambda: cw_mnist(), (1, 28, 28), 1000, 100),
                ("C&W CIFAR CNN 32x32", lambda: cw_cifar(), (3, 32, 32), 128, 100),
                ("C&W CIFAR CNN 32x32", lambda: cw_cifar(), (3, 32, 32), 1000, 100),
                ("ResNet-18 64x64", lambda: resnet18(64), (3, 64, 64), 256, 100),
                ("ResNet-18 224x224", lambda: resnet18(224), (3, 224, 224), 64, 100)]
    if quick:
        return [("C&W MNIST CNN 28x28", lambda: cw_mnist(), (1, 28, 28), 32, 30),
                ("ResNet-18 64x64", lambda: resnet18(64), (3, 64, 64), 8, 10)]
    return [("C&W MNIST CNN 28x28", lambda: cw_mnist(), (1, 28, 28), 128, 100),
            ("ResNet-18 64x64", lambda: resnet18(64), (3, 64, 64), 16, 30)]


def floor(model, x, y, steps):
    """steps x (forward + backward with respect to the input): the least any gradient attack can cost."""
    x = x.clone()
    for _ in range(steps):
        xr = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xr), y, reduction="sum")
        torch.autograd.grad(loss, xr)
    return x


def runners(steps):
    import foolbox as fb

    out = {
        "advwsl ddn (q256)": lambda m, x, y: ddn(m, x, y, steps=steps),
        "advwsl ddn (float)": lambda m, x, y: ddn(m, x, y, steps=steps, levels=None),
        "foolbox DDNAttack (float)": lambda m, x, y: fb.attacks.DDNAttack(steps=steps).run(
            fb.PyTorchModel(m, (0, 1), device=x.device), x, y),
        "floor: steps x fwd+bwd": lambda m, x, y: floor(m, x, y, steps),
    }
    try:
        adv_lib_ddn = import_adv_lib_ddn()

        out["adv_lib ddn (q256)"] = lambda m, x, y: adv_lib_ddn(m, x, y, steps=steps, levels=256)
        out["adv_lib ddn (float)"] = lambda m, x, y: adv_lib_ddn(m, x, y, steps=steps, levels=None)
    except ImportError:
        print("adv_lib not installed (pip install --no-deps adv-lib); skipping it")
    return out


def timed(fn, device):
    """(wall seconds, process CPU seconds). On a shared CPU the process time is the steadier measure: it
    does not count the time other processes hold the cores."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tic, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, build, shape, batch, steps in cases(device, args.quick):
        if args.only and args.only not in name:
            continue
        torch.manual_seed(0)
        model = build().to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.rand((batch, *shape), device=device)
        with torch.no_grad():
            y = model(x).argmax(1)
        table = runners(steps)
        for fn in table.values():  # warm-up (cudnn autotuning, allocator)
            timed(lambda: fn(model, x, y), device)
        walls = {k: [] for k in table}
        cpus = {k: [] for k in table}
        for _ in range(args.repeats):
            for key, fn in table.items():
                wall, cpu = timed(lambda: fn(model, x, y), device)
                walls[key].append(wall)
                cpus[key].append(cpu)
        wall = {k: statistics.median(v) for k, v in walls.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"\n{name}: batch {batch}, {steps} steps, median of {args.repeats} interleaved runs")
        print(f"  {'':<28} {'wall s':>8} {'ratio':>6} {'CPU s':>8} {'ratio':>6}   (ratios to advwsl q256)")
        for key in table:
            print(f"  {key:<28} {wall[key]:8.3f} {wall[key] / wall['advwsl ddn (q256)']:6.3f} "
                  f"{cpu[key]:8.3f} {cpu[key] / cpu['advwsl ddn (q256)']:6.3f}")
        for label, t in (("wall", wall), ("CPU", cpu)):
            fl = t["floor: steps x fwd+bwd"]
            print(f"  advwsl ddn / floor ({label}): q256 {t['advwsl ddn (q256)'] / fl:.3f}, "
                  f"float {t['advwsl ddn (float)'] / fl:.3f}")


if __name__ == "__main__":
    main()
