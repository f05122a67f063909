"""Adversarial training (section A V-6): DDN training (eq. A V-9) and the Madry PGD-L2 defense (eq. A V-7)
as one ``perturb(model, images, labels) -> images`` hook that :func:`advwsl.training.train_one_epoch` (and
so :func:`advwsl.training.fit`, resumable and distributed) calls on every training batch.

The attack runs with the model frozen (eval mode, parameter gradients off, restored afterwards, so the
update that follows runs in train mode), its perturbation is projected onto the epsilon-ball, and the
statistics of the training adversarials (mean L2 of what the model is trained on, mean L2 the attack
found before projection, share misclassified) are accumulated until the training loop reads them at the
end of the epoch. The first ``clean_epochs`` epochs can be clean (the reference's CIFAR-10 recipe trains
200 clean epochs, then 30 adversarial ones); starting from a clean checkpoint is the other way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..attacks import ddn, get_attack_spec, list_attacks, pgd_l2, project_l2_ball, quantize_toward
from ..errors import ConfigError
from ..registry import Registry
from ..training import train_one_epoch
from ..utils import frozen

#: Maximum training perturbation of the reference (section A V-7): 2.4 on MNIST, 1.0 on CIFAR-10.
EPSILON_MAX = {"mnist": 2.4, "cifar10": 1.0}

Attack = Callable[..., torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel, so the attack does not trigger their
    gradient synchronisation."""
    return getattr(model, "module", model)


class AdversarialPerturbation:
    """Replace a training batch by adversarial examples projected onto an L2 ball of radius ``epsilon``.

    With ``clean_fraction = alpha > 0``, a random share ``round(alpha * N)`` of each batch is left clean,
    so the batch-mean loss is an unbiased estimate of eq. A V-6,
    ``alpha * J(x, y) + (1 - alpha) * J(x_adv, y)`` (and those samples cost no attack). ``alpha = 0`` is
    eq. A V-9 (DDN) or the inner/outer problem of eq. A V-7 (PGD).

    Parameters
    ----------
    attack : callable
        ``attack(model, inputs, labels, *, targeted=False, **attack_kwargs) -> adversarials``.
    epsilon : float
        Radius of the projection (epsilon_max; 2.4 for MNIST, 1.0 for CIFAR-10 in the reference).
    attack_kwargs : dict, optional
        Keyword hyper-parameters passed to ``attack``.
    clean_fraction : float
        Share alpha of each batch kept clean (eq. A V-6); 0 trains on adversarials only.
    levels : int, optional
        Put the projected adversarials back on the lattice of this many levels, never leaving the ball.
    clean_epochs : int
        Number of first epochs left clean (the hook is the identity until then). Epochs are counted by the
        training loop's call of :meth:`reset` at the start of each epoch, and saved in :meth:`state_dict`.
    name : str
        Label used in logs.
    seed : int
        Seed of the generator that picks the clean share of each batch.
    """

    def __init__(self, attack: Attack, epsilon: float, *, attack_kwargs: dict[str, Any] | None = None,
                 clean_fraction: float = 0.0, levels: int | None = None, clean_epochs: int = 0,
                 name: str = "adversarial", seed: int = 0) -> None:
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise ConfigError(f"epsilon (the training epsilon_max) must be a positive L2 radius, got {epsilon!r}; "
                              f"the reference uses {EPSILON_MAX}")
        if not isinstance(clean_epochs, int) or clean_epochs < 0:
            raise ConfigError(f"clean_epochs must be a non-negative integer, got {clean_epochs!r}")
        if not 0.0 <= clean_fraction < 1.0:
            raise ConfigError(f"clean_fraction (alpha of eq. A V-6) must be in [0, 1), got {clean_fraction!r}")
        self.attack = attack
        self.epsilon = float(epsilon)
        self.attack_kwargs = dict(attack_kwargs or {})
        self.clean_fraction = float(clean_fraction)
        self.levels = levels
        self.clean_epochs = clean_epochs
        self.name = name
        self._generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._clear()

    @property
    def active(self) -> bool:
        """Whether the current epoch is adversarial (past the ``clean_epochs``; outside a training loop,
        before any :meth:`reset`, only when ``clean_epochs`` is 0)."""
        return self.epoch > self.clean_epochs if self.epoch else self.clean_epochs == 0

    def reset(self) -> None:
        """Start a new epoch: counts it and clears the statistics (the training loop calls this)."""
        self.epoch += 1
        self._clear()

    def _clear(self) -> None:
        self._n = 0
        self._sum_l2 = 0.0
        self._sum_attack_l2 = 0.0
        self._max_l2 = 0.0
        self._misclassified = 0
        self._seconds = 0.0

    #: How :meth:`stats` combine over DDP ranks (the others are means over equal shards).
    stats_reduction = {"adv_l2_max": "max", "adv_samples": "sum"}

    def stats(self) -> dict[str, float]:
        """Statistics of the adversarials produced since the last :meth:`reset` (attacked samples only):
        ``adv_l2_mean`` (after projection: what the model trains on), ``adv_l2_max``, ``attack_l2_mean``
        (what the attack returned before projection), ``adv_error`` (share misclassified after
        projection), ``attack_seconds`` and ``adv_samples``."""
        n = max(self._n, 1)
        return {"adv_l2_mean": self._sum_l2 / n, "adv_l2_max": self._max_l2,
                "attack_l2_mean": self._sum_attack_l2 / n, "adv_error": self._misclassified / n,
                "attack_seconds": self._seconds, "adv_samples": float(self._n)}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: the epochs counted and the generator of the clean shares."""
        return {"generator": self._generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])
        self.epoch = int(state.get("epoch", 0))

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return images
        net = _unwrap(model)
        n = images.shape[0]
        n_clean = int(round(self.clean_fraction * n))
        if n_clean == 0:
            attacked = torch.arange(n, device=images.device)
        else:
            attacked = torch.randperm(n, generator=self._generator)[n_clean:].sort().values.to(images.device)
        if attacked.numel() == 0:
            return images
        x, y = images[attacked].detach(), labels[attacked]
        start = time.perf_counter()
        with frozen(net):
            adv = self.attack(net, x, y, targeted=False, **self.attack_kwargs).detach()
            attack_l2 = (adv - x).flatten(1).norm(dim=1)
            adv = x + project_l2_ball(adv - x, self.epsilon)
            adv = adv.clamp(0, 1)
            if self.levels is not None:
                adv = quantize_toward(x, adv, int(self.levels))
            with torch.no_grad():
                wrong = net(adv).argmax(1) != y
        self._seconds += time.perf_counter() - start
        l2 = (adv - x).flatten(1).norm(dim=1)
        self._n += int(attacked.numel())
        self._sum_l2 += float(l2.sum())
        self._sum_attack_l2 += float(attack_l2.sum())
        self._max_l2 = max(self._max_l2, float(l2.max()))
        self._misclassified += int(wrong.sum())
        out = images.detach().clone()
        out[attacked] = adv.to(out.dtype)
        return out

    def __repr__(self) -> str:
        return (f"AdversarialPerturbation({self.name}, epsilon={self.epsilon}, clean_fraction={self.clean_fraction}, "
                f"attack_kwargs={self.attack_kwargs})")


def ddn_training(epsilon: float, *, steps: int = 100, gamma: float = 0.05, levels: int | None = 256,
                 clean_fraction: float = 0.0, clean_epochs: int = 0, seed: int = 0,
                 **attack_kwargs: Any) -> AdversarialPerturbation:
    """DDN adversarial training (section A V-6, eq. A V-9): each batch is replaced by DDN adversarials
    (``steps`` iterations, 100 in the reference, quantized to ``levels``) on the true labels, projected
    onto the ``epsilon``-ball (2.4 on MNIST, 1.0 on CIFAR-10)."""
    kwargs = {"steps": steps, "gamma": gamma, "levels": levels, **attack_kwargs}
    return AdversarialPerturbation(ddn, epsilon, attack_kwargs=kwargs, clean_fraction=clean_fraction,
                                   levels=levels, clean_epochs=clean_epochs, name=f"ddn-{steps}", seed=seed)


def madry_training(epsilon: float, *, steps: int = 40, step_size: float | None = None, random_start: bool = True,
                   levels: int | None = None, clean_fraction: float = 0.0, clean_epochs: int = 0,
                   seed: int = 0) -> AdversarialPerturbation:
    """Madry et al.'s defense (eq. A V-7) with an L2 region: each batch is replaced by the PGD-L2
    adversarial that maximizes the loss inside the ``epsilon``-ball (random start, ``steps`` normalized
    steps of ``step_size``, default ``2.5 * epsilon / steps``)."""
    generator = torch.Generator().manual_seed(seed + 1)

    def attack(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
               **kwargs: Any) -> torch.Tensor:
        gen = generator if inputs.device.type == "cpu" else None
        return pgd_l2(model, inputs, labels, targeted=targeted, generator=gen, **kwargs)

    kwargs = {"epsilon": epsilon, "steps": steps, "step_size": step_size, "random_start": random_start,
              "levels": levels}
    return AdversarialPerturbation(attack, epsilon, attack_kwargs=kwargs, clean_fraction=clean_fraction,
                                   levels=levels, clean_epochs=clean_epochs, name=f"pgd-{steps}", seed=seed)


#: The reference's two adversarial trainings by the name of their attack (``advwsl adv-train --attack``):
#: DDN training (eq. A V-9) and the Madry PGD-L2 defense (eq. A V-7; also called ``madry``). Any other
#: registered label attack trains generically (:func:`generic_training`).
TRAININGS: Registry[Callable[..., AdversarialPerturbation]] = Registry("adversarial training")
TRAININGS.register("ddn", ddn_training)
TRAININGS.register("pgd", madry_training)
TRAININGS.register("madry", madry_training)


def generic_training(attack: str, epsilon: float, *, steps: int | None = None, levels: int | None = 256,
                     clean_fraction: float = 0.0, clean_epochs: int = 0, seed: int = 0,
                     **attack_kwargs: Any) -> AdversarialPerturbation:
    """Adversarial training with any registered label attack: a minimal-norm attack runs at its quick
    budget (or ``steps``) and its adversarial is projected on the ``epsilon``-ball; a fixed-radius attack
    gets ``epsilon`` as its radius."""
    if attack not in list_attacks():
        raise ConfigError(f"unknown adversarial training attack {attack!r}; use {', '.join(TRAININGS.names())} or another "
                          f"registered label attack ({', '.join(list_attacks('label'))})")
    spec = get_attack_spec(attack)
    if spec.goal != "label":
        raise ConfigError(f"{attack} does not change labels; adversarial training needs a label attack "
                          f"(ddn, pgd, ...)")
    kwargs = {**spec.kwargs(str(steps) if steps is not None else spec.quick_budget), **attack_kwargs}
    if not spec.minimal_norm:
        kwargs["epsilon"] = epsilon
    kwargs.update(spec.runner_kwargs(levels=levels, bounds=(0.0, 1.0), seed=seed))
    kwargs = spec.check(kwargs, option="adversarial training")
    return AdversarialPerturbation(spec.fn, epsilon, attack_kwargs=kwargs, clean_fraction=clean_fraction,
                                   levels=levels, clean_epochs=clean_epochs, name=f"{attack}-{kwargs.get('steps')}",
                                   seed=seed)


def make_perturbation(attack: str, epsilon: float, *, steps: int | None = None, clean_fraction: float = 0.0,
                      clean_epochs: int = 0, levels: int | None = 256, seed: int = 0,
                      **kwargs: Any) -> AdversarialPerturbation:
    """The adversarial training of ``attack`` (:data:`TRAININGS`, else :func:`generic_training`) at radius
    ``epsilon``. ``steps`` defaults to 100 for DDN and 40 for PGD (the reference's)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"--steps must be a positive number of attack steps per batch, got {steps!r}")
    common = {"levels": levels, "clean_fraction": clean_fraction, "clean_epochs": clean_epochs, "seed": seed}
    if attack in TRAININGS:
        return TRAININGS.get(attack)(epsilon, **({} if steps is None else {"steps": steps}), **common, **kwargs)
    return generic_training(attack, epsilon, steps=steps, **common, **kwargs)


def adversarial_train(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, *,
                      perturbation: AdversarialPerturbation | None, epochs: int, scheduler: Any | None = None,
                      progress: bool = False) -> list[dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs of :func:`advwsl.training.train_one_epoch` with the
    adversarial hook ``perturbation`` (None: clean training of the same length, the baseline). Returns one
    row of training metrics per epoch, including the hook's ``adv_l2_mean`` (mean L2 of the training
    adversarials). For runs with validation, checkpoints, resume and DDP use :func:`advwsl.training.fit`
    with ``perturb=perturbation``."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    history = []
    for epoch in range(epochs):
        row = train_one_epoch(model, loader, optimizer, scheduler=scheduler, perturb=perturbation,
                              progress=progress, desc=f"epoch {epoch + 1}/{epochs}")
        history.append({"epoch": float(epoch + 1), **row,
                        "adversarial": float(perturbation is not None and perturbation.active)})
    return history
