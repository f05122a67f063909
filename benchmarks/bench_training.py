"""Training throughput (images/s) of each WSL head with advwsl's loop (train_one_epoch) against a plain
torchvision classification loop on the same backbone (global average pooling + linear layer, hand-written
SGD loop), measured side by side in one process. ``--device cuda`` adds fp32 vs bf16 autocast +
channels_last. Prints ratios (advwsl head / plain loop); absolute numbers are noisy on shared CPUs.

    python benchmarks/bench_training.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advwsl.models.backbones import create_backbone
from advwsl.models.zoo import create_model
from advwsl.training import TrainConfig, build_optimizer
from advwsl.training import train_one_epoch

HEADS = ("cam", "max", "lse", "wildcat", "deepmil")


class PlainClassifier(nn.Module):
    """The torchvision-style reference: backbone, global average pooling, linear layer."""

    def __init__(self, backbone: str, stride: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, stride=stride)
        self.fc = nn.Linear(self.backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).mean((2, 3)))


def plain_epoch(model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, device: torch.device,
                amp: bool, channels_last: bool) -> float:
    model.train()
    n, start = 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    parser.add_argument("--backbone", default=None, help="default: resnet-mini on CPU, resnet18 on CUDA")
    parser.add_argument("--size", type=int, default=None, help="image side (default 64 on CPU, 224 on CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    backbone = args.backbone or ("resnet18" if cuda else "resnet-mini")
    size = args.size or (224 if cuda else 64)
    n = (64 if args.quick else 256) * (4 if cuda else 1)
    batch = 64 if cuda else 32
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(n, 3, size, size, generator=g), torch.randint(0, 2, (n,), generator=g))
    loader = DataLoader(data, batch_size=batch, shuffle=False, drop_last=True)
    settings = [("fp32", False, False)] + ([("bf16+channels_last", True, True)] if cuda else [])
    cfg = TrainConfig(backbone=backbone, stride=8 if not cuda else 32)
    print(f"device={device} backbone={backbone} stride={cfg.stride} images={n} size={size} batch={batch}")
    print(f"{'setting':<20} {'model':<12} {'images/s':>10} {'ratio vs plain':>15}")
    for name, amp, cl in settings:
        torch.manual_seed(0)
        plain = PlainClassifier(backbone, cfg.stride, 2).to(device)
        if cl:
            plain = plain.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
        plain_epoch(plain, loader, opt, device, amp, cl)  # warm-up
        base = plain_epoch(plain, loader, opt, device, amp, cl)
        print(f"{name:<20} {'plain':<12} {base:>10.1f} {1.0:>15.2f}")
        for head in HEADS:
            torch.manual_seed(0)
            model = create_model(head, num_classes=2, backbone=backbone, stride=cfg.stride).to(device)
            if cl:
                model = model.to(memory_format=torch.channels_last)
            opt = build_optimizer(cfg, model)
            train_one_epoch(model, loader, opt, amp=amp, channels_last=cl)  # warm-up
            rate = train_one_epoch(model, loader, opt, amp=amp, channels_last=cl)["images_per_s"]
            print(f"{name:<20} {head:<12} {rate:>10.1f} {rate / base:>15.2f}")


if __name__ == "__main__":
    main()
