"""Forward+backward throughput of ResNet-18 + each advwsl pooling head against the plain torchvision
ResNet-18 classifier, measured side by side in one process (round-robin, median of repeats).

    python benchmarks/bench_heads.py [--quick] [--device cuda] [--batch N] [--size 224] [--repeats R]

Prints images/s per model and the ratio to the plain ResNet-18 (overhead of the head + normalization;
goal: at most 10 %). On CUDA it also measures bf16 autocast with channels_last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from advwsl.models import create_model, list_models


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x), y)
    loss.backward()


def _time(model, x, y, iters: int, amp: bool) -> float:
    """Seconds per iteration (forward + backward of one batch)."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        _step(model, x, y, amp)
    sync()
    return (time.perf_counter() - start) / iters


def _flops(model: torch.nn.Module, size: int) -> float:
    """Forward+backward FLOPs of one image (torch's counter): a noise-free companion to the timings."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        _step(model, x, torch.zeros(1, dtype=torch.long, device=x.device), False)
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run(device: str, batch: int, size: int, iters: int, repeats: int, amp: bool, channels_last: bool,
        names: list[str]) -> list[tuple[str, float, float]]:
    dev = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    models = {"torchvision resnet18": resnet18(num_classes=2)}
    for name in names:
        models[name] = create_model(name, num_classes=2, backbone="resnet18")
    for m in models.values():
        m.to(dev, memory_format=fmt).train()
        for p in m.parameters():  # gradients w.r.t. the input only would skip the weight grads: keep both
            p.requires_grad_(True)
    flops = {key: _flops(m, size) for key, m in models.items()}
    x = torch.rand(batch, 3, size, size, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), device=dev)
    for m in models.values():  # warm-up (allocator, cudnn autotune)
        _time(m, x, y, 1, amp)
    samples: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):  # round-robin so that a noisy neighbour hits every model alike
        for key, m in models.items():
            samples[key].append(_time(m, x, y, iters, amp))
            m.zero_grad(set_to_none=True)
    return [(key, batch / statistics.median(v), flops[key]) for key, v in samples.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny run (batch 2, 1 iteration, 3 repeats)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--heads", default=",".join(list_models("wsl")))
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (1 is steadier on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    batch = args.batch or (2 if args.quick else (64 if cuda else 8))
    iters = args.iters or (1 if args.quick else (10 if cuda else 2))
    repeats = args.repeats or (3 if args.quick else 5)
    names = [n for n in args.heads.split(",") if n]
    settings = [("fp32", False, False)]
    if cuda:
        torch.backends.cudnn.benchmark = True
        settings.append(("bf16 autocast + channels_last", True, True))
    print(f"device={args.device} ({torch.cuda.get_device_name() if cuda else f'{torch.get_num_threads()} threads'})"
          f" batch={batch} size={args.size} iters={iters} repeats={repeats} torch={torch.__version__}")
    for label, amp, channels_last in settings:
        results = run(args.device, batch, args.size, iters, repeats, amp, channels_last, names)
        base, base_flops = results[0][1], results[0][2]
        print(f"\n[{label}] forward+backward, ResNet-18 backbone, {args.size}x{args.size}")
        print(f"{'model':<22} {'images/s':>10} {'time ratio':>11} {'overhead':>9} {'GFLOP/img':>10} "
              f"{'FLOP overhead':>14}")
        for key, ips, flops in results:
            ratio = base / ips
            print(f"{key:<22} {ips:>10.1f} {ratio:>11.3f} {100 * (ratio - 1):>8.1f}% {flops / 1e9:>10.3f} "
                  f"{100 * (flops / base_flops - 1):>13.2f}%")


if __name__ == "__main__":
    main()
