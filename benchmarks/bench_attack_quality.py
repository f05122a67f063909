"""Attack quality on real images: success rate and median L2 of DDN (cross-entropy and margin loss,
quantized and not) against foolbox's DDNAttack, adv_lib's ddn and DeepFool, on a clean-trained and a
PGD-L2 adversarially trained CNN on the scikit-learn digits (16 x 16). Also the 10-class linear model
whose minimal adversarial is known in closed form (ratio to the optimum).

    python benchmarks/bench_attack_quality.py [--device cuda] [--quick] [--n 300] [--steps 100]

Trained models are cached under the advwsl cache (``benchmarks`` folder) so reruns only attack.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from _peers import import_adv_lib_ddn
from advwsl.attacks import ddn, deepfool
from advwsl.data.digits import sklearn_digits
from advwsl.pretrained.digits import accuracy, train_classifier
from advwsl.utils import cache_dir

#: L2 radius of the PGD adversarial training (the clean model's median minimal norm is about 0.8).
PGD_EPS = 1.5


def pgd_l2(model, x, y, eps, steps, generator):
    """Madry PGD-L2 (eq. A V-7) for adversarial training: random start in the ball, normalized steps."""
    step = 2.5 * eps / steps
    delta = torch.randn(x.shape, generator=generator, device=x.device)
    delta *= eps * torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device) / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x + delta), y)
        (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += step * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta *= torch.where(norm > eps, eps / norm, torch.ones_like(norm))
            delta.copy_((x + delta).clamp(0, 1) - x)
    return (x + delta).detach()


def small_cnn(widths):
    c1, c2 = widths
    return torch.nn.Sequential(torch.nn.Conv2d(1, c1, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(c1, c2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(c2 * 16, 10))


def train_models(device, quick, pgd_eps=PGD_EPS, epochs=None):
    widths = (16, 32) if quick else (32, 64)
    epochs = epochs or (4 if quick else 20)
    tag = f"digits16-cnn{'x'.join(map(str, widths))}-e{epochs}"
    folder = cache_dir("benchmarks")
    x, y = sklearn_digits(16, "train")
    x, y = x.to(device), y.to(device)
    models = {}
    for kind in ("clean", "pgd"):
        path = folder / (f"{tag}-clean.pt" if kind == "clean" else f"{tag}-pgd{pgd_eps}.pt")
        model = small_cnn(widths).to(device)
        if path.is_file():
            model.load_state_dict(torch.load(path, map_location=device))
        elif kind == "clean":
            train_classifier(model, x, y, epochs=epochs, lr=5e-3)
            torch.save(model.state_dict(), path)
        else:
            g = torch.Generator(device=device).manual_seed(0)
            opt = torch.optim.Adam(model.parameters(), lr=5e-3)
            for _ in range(epochs):
                perm = torch.randperm(len(x), device=device)
                for s in range(0, len(x), 64):
                    idx = perm[s:s + 64]
                    model.eval()
                    adv = pgd_l2(model, x[idx], y[idx], eps=pgd_eps, steps=7, generator=g)
                    model.train()
                    loss = F.cross_entropy(model(adv), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            torch.save(model.state_dict(), path)
        models[kind] = model.eval()
    return models


def evaluate(model, x, y, adv, levels):
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        success = (model(adv).argmax(1) != y) & correct
    if levels is not None:
        off = float((adv * (levels - 1) - (adv * (levels - 1)).round()).abs().max())
        assert off < 1e-3, f"off the lattice by {off} of a level"
    norms = (adv - x).flatten(1).norm(dim=1)
    gray = (x - 0.5).flatten(1).norm(dim=1)
    ok = correct
    med = torch.where(success, norms, gray)[ok].median().item()
    return 100 * success[ok].float().mean().item(), norms[success].mean().item(), med


def attacks(steps):
    import foolbox as fb

    table = {
        "advwsl ddn ce q256": lambda m, x, y: ddn(m, x, y, steps=steps),
        "advwsl ddn margin q256": lambda m, x, y: ddn(m, x, y, steps=steps, loss="margin"),
        "advwsl ddn ce float": lambda m, x, y: ddn(m, x, y, steps=steps, levels=None),
        "advwsl ddn margin float": lambda m, x, y: ddn(m, x, y, steps=steps, levels=None, loss="margin"),
        "foolbox DDNAttack float": lambda m, x, y: fb.attacks.DDNAttack(steps=steps).run(
            fb.PyTorchModel(m, (0, 1), device=x.device), x, y),
        "foolbox DeepFool-100 float": lambda m, x, y: deepfool(m, x, y, steps=100),
    }
    try:
        adv_lib_ddn = import_adv_lib_ddn()

        table["adv_lib ddn q256"] = lambda m, x, y: adv_lib_ddn(m, x, y, steps=steps, levels=256)
        table["adv_lib ddn float"] = lambda m, x, y: adv_lib_ddn(m, x, y, steps=steps, levels=None)
    except ImportError:
        print("adv_lib not installed (pip install --no-deps adv-lib); skipping it")
    return table


def linear_closed_form(steps, device):
    g = torch.Generator().manual_seed(0)
    d, c, n = 108, 10, 64
    w = torch.randn(c, d, generator=g) * 0.1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, c)).to(device).eval()
    model[1].weight.data = w.to(device)
    model[1].bias.data.zero_()
    x = (0.5 + 0.05 * torch.randn(n, d, generator=g)).clamp(0.3, 0.7).to(device)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    w = w.to(device)
    dist = (z.gather(1, y[:, None]) - z) / (w[None] - w[y][:, None]).norm(dim=2).clamp_min(1e-12)
    dist[torch.arange(n), y] = float("inf")
    opt = dist.min(1).values
    print(f"\n10-class linear model, {n} inputs, median ratio of the L2 norm to the closed-form optimum:")
    for name, fn in attacks(steps).items():
        if "q256" in name:
            continue
        adv = fn(model, x, y)
        ratio = ((adv - x).flatten(1).norm(dim=1) / opt).median().item()
        print(f"  {name:<28} {ratio:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer training epochs and samples")
    parser.add_argument("--n", type=int, default=None, help="test samples attacked (default 300, quick 100)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--pgd-eps", type=float, default=PGD_EPS, help="L2 radius of the PGD training")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 20, quick 4)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    n = args.n or (100 if args.quick else 300)
    t0 = time.perf_counter()
    models = train_models(device, args.quick, args.pgd_eps, args.epochs)
    x, y = sklearn_digits(16, "test")
    x, y = x[:n].to(device), y[:n].to(device)
    print(f"trained/loaded models in {time.perf_counter() - t0:.1f}s; {n} test samples, {args.steps} steps")
    for kind, model in models.items():
        print(f"\n{kind} model: clean accuracy {100 * accuracy(model, x, y):.1f}%")
        print(f"  {'attack':<28} {'success %':>9} {'mean L2':>8} {'median L2':>9} {'seconds':>8}")
        for name, fn in attacks(args.steps).items():
            tic = time.perf_counter()
            adv = fn(model, x, y)
            sec = time.perf_counter() - tic
            levels = 256 if "q256" in name else None
            success, mean, med = evaluate(model, x, y, adv, levels)
            print(f"  {name:<28} {success:9.1f} {mean:8.4f} {med:9.4f} {sec:8.1f}")
    linear_closed_form(args.steps, device)


if __name__ == "__main__":
    main()
