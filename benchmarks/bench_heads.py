"""Forward+backward throughput of a backbone + each advwsl pooling head against the plain classifier of the
same backbone (torchvision's ResNet-18 by default; timm's own classifier, global pooling + linear layer, for
a timm backbone), measured side by side in one process (round-robin, median of repeats).

    python benchmarks/bench_heads.py [--quick] [--device cuda] [--batch N] [--size 224] [--repeats R]
                                     [--backbone resnet18 | efficientnet_b0 | timm:convnext_atto | ...]

Prints images/s per model and the ratio to the plain classifier (overhead of the head + normalization;
goal: at most 10 %). On CUDA it also measures bf16 autocast with channels_last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torch.nn.functional as F
from torchvision.models import resnet as tv_resnet

from advwsl.models import create_backbone, create_model, list_backbones, list_models


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


class TrunkClassifier(torch.nn.Module):
    """The plain classifier on a backbone's feature maps: global average pooling + a linear layer."""

    def __init__(self, backbone: str, num_classes: int = 2) -> None:
        super().__init__()
        self.trunk = create_backbone(backbone)
        self.fc = torch.nn.Linear(self.trunk.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x).mean(dim=(2, 3)))


def baselines(backbone: str) -> dict[str, torch.nn.Module]:
    """The plain classifier of ``backbone`` (the reference of the ratios: torchvision's for the registered
    ResNets; for a timm model, its feature trunk + global average pooling + linear layer), and for a timm model
    also timm's own classifier (which may add layers the trunk ends before, e.g. EfficientNet's 1x1 conv_head)."""
    if backbone in list_backbones():
        if not hasattr(tv_resnet, backbone):
            raise SystemExit(f"{backbone} has no plain classifier to compare with; use a ResNet or a timm model")
        return {f"torchvision {backbone}": getattr(tv_resnet, backbone)(num_classes=2)}
    name = backbone.removeprefix("timm:")
    return {"trunk + pool + fc": TrunkClassifier(backbone), f"timm {name}": timm.create_model(name, num_classes=2)}


def run(device: str, batch: int, size: int, iters: int, repeats: int, amp: bool, channels_last: bool,
        names: list[str], backbone: str = "resnet18") -> list[tuple[str, float, float]]:
    dev = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    models = baselines(backbone)
    for name in names:
        models[name] = create_model(name, num_classes=2, backbone=backbone)
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
    parser.add_argument("--backbone", default="resnet18",
                        help="resnet18 (torchvision baseline) or any timm model (timm baseline), e.g. efficientnet_b0")
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
        results = run(args.device, batch, args.size, iters, repeats, amp, channels_last, names, args.backbone)
        base, base_flops = results[0][1], results[0][2]
        print(f"\n[{label}] forward+backward, {args.backbone} backbone, {args.size}x{args.size}")
        print(f"{'model':<26} {'images/s':>10} {'time ratio':>11} {'overhead':>9} {'GFLOP/img':>10} "
              f"{'FLOP overhead':>14}")
        for key, ips, flops in results:
            ratio = base / ips
            print(f"{key:<26} {ips:>10.1f} {ratio:>11.3f} {100 * (ratio - 1):>8.1f}% {flops / 1e9:>10.3f} "
                  f"{100 * (flops / base_flops - 1):>13.2f}%")


if __name__ == "__main__":
    main()
