"""Attention-based Deep MIL heads.

- :class:`DeepMILHead`: Ilse et al. (2018), eq. 1.4-1.6 / 3.9. An attention ``A`` (softmax over the
  ``h*w`` instances of a scoring function ``psi``, plain eq. 1.5 or gated eq. 1.6) weights the instance
  features into one bag representation, which a linear layer classifies. It is a binary method; for more
  than two classes the reference (section 1.3.4) "replicates the pooling and scoring module" per class:
  the *adapted* version, with one attention and one scoring vector per class.
- :class:`DeepMILMultiHead`: the multi-class / multi-label pooling of chapter 3 (eq. 3.10-3.11). The
  classifier's own instance scores (the CAMs) give one softmax attention per class, ``s_c = sum_ij
  A_cij M_cij``; during training a fraction ``d`` of the instance scores is set to 0 before the softmax.

Localization (section 1.3.4): an instance is positive when its attention exceeds ``1/(hw)``. The CAMs of
:class:`DeepMILHead` are therefore ``hw * A - 1``, positive exactly there, so the generic rule of
:func:`~advwsl.models.cams.foreground_masks` (score > 0) applies to every head.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ...errors import InputError
from ..zoo import register_head


def _check_sizes(in_channels: int, num_classes: int) -> None:
    if in_channels < 1 or num_classes < 1:
        raise InputError(f"a head needs in_channels >= 1 and num_classes >= 1, got {in_channels}, "
                         f"{num_classes}")


class DeepMILHead(nn.Module):
    """Ilse et al. attention pooling of the instance features (eq. 1.4), scoring ``psi`` of eq. 1.5
    (``w tanh(V f)``) or, with ``gated=True``, eq. 1.6 (``w [tanh(V f) * sigmoid(U f)]``).

    Parameters
    ----------
    in_channels, num_classes:
        ``K`` and ``C``.
    hidden:
        ``L``, the size of ``V`` and ``U`` (128 in Ilse et al.).
    gated:
        Gated attention (eq. 1.6).
    per_class:
        One attention and one scoring module per class (the "adapted" multi-class Deep MIL of chapter 2).
        ``None`` chooses it when ``num_classes > 2``, as the reference does; with one attention the class
        scores are a linear layer on the single bag representation.

    ``forward`` returns logits and CAMs ``hw * A - 1`` ``(N, C, h, w)`` (the single attention is shared by
    every class); :meth:`attention` returns ``A`` itself, which sums to 1 over positions.
    """

    def __init__(self, in_channels: int, num_classes: int, *, hidden: int = 128, gated: bool = False,
                 per_class: bool | None = None) -> None:
        super().__init__()
        _check_sizes(in_channels, num_classes)
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise InputError(f"Deep MIL hidden size must be a positive int, got {hidden!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.hidden = int(hidden)
        self.gated = bool(gated)
        self.per_class = num_classes > 2 if per_class is None else bool(per_class)
        branches = num_classes if self.per_class else 1
        self.branches = branches
        # V (and U) of every branch in one 1x1 convolution (fewer kernels: the head stays cheap next to
        # the backbone); w of each branch on its own group.
        self.attention_vu = nn.Conv2d(in_channels, (2 if self.gated else 1) * branches * self.hidden, 1)
        self.attention_w = nn.Conv2d(branches * self.hidden, branches, 1, groups=branches)
        if self.per_class:
            # one scoring vector per class, applied to that class's bag representation
            self.weight = nn.Parameter(torch.empty(num_classes, in_channels))
            self.bias = nn.Parameter(torch.zeros(num_classes))
            bound = 1 / math.sqrt(in_channels)
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)
            self.classifier = None
        else:
            self.classifier = nn.Linear(in_channels, num_classes)

    def attention_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``psi(F_ij)`` for every position and branch, ``(N, B, h, w)`` (eq. 1.5-1.6)."""
        projected = self.attention_vu(features)
        if self.gated:
            v, u = projected.chunk(2, dim=1)
            hidden = torch.tanh(v) * torch.sigmoid(u)
        else:
            hidden = torch.tanh(projected)
        return self.attention_w(hidden)

    def attention(self, features: torch.Tensor) -> torch.Tensor:
        """Attention weights ``A`` ``(N, B, h, w)``, softmax over positions (eq. 1.4): each sums to 1."""
        logits = self.attention_logits(features)
        return torch.softmax(logits.flatten(2), dim=2).view_as(logits)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k, h, w = features.shape
        attention = self.attention(features)
        bags = torch.einsum("nbp,nkp->nbk", attention.flatten(2), features.flatten(2))  # eq. 1.4
        if self.per_class:
            logits = (bags * self.weight).sum(dim=2) + self.bias
        else:
            logits = self.classifier(bags[:, 0])
        cams = attention * (h * w) - 1.0
        if not self.per_class:
            cams = cams.expand(n, self.num_classes, h, w)
        return logits, cams

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, gated={self.gated}, per_class={self.per_class}"


class DeepMILMultiHead(nn.Module):
    """Chapter 3 Deep MIL for multi-class and multi-label classification (eq. 3.10-3.11, Figure 3.1).

    A 1x1 convolution ``phi`` gives the CAMs ``M`` (instance scores). Class ``c`` attends to the instances
    with ``A_c = softmax_ij(M_c)`` and scores ``s_c = sum_ij A_cij M_cij`` (eq. 3.11, ``phi`` linear).
    In training mode each instance score entering the softmax is set to 0 with probability ``dropout``
    (``d``; 0.3-0.4 on Pascal VOC, 0.03 on BreakHis/BACH, 0.1 on CAMELYON16, the default). With ``d = 1``
    every weight is ``1/(hw)`` and the head is average pooling (section 3.4.4). The CAMs returned are
    ``M`` itself, never dropped.
    """

    def __init__(self, in_channels: int, num_classes: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        _check_sizes(in_channels, num_classes)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise InputError(f"Deep MIL dropout fraction must be in [0, 1], got {dropout!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dropout = float(dropout)
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def attention(self, cams: torch.Tensor) -> torch.Tensor:
        """``A_c`` of eq. 3.10 from the CAMs, with the training-time dropout of the instance scores."""
        scores = cams.flatten(2)
        if self.training and self.dropout > 0:
            keep = torch.rand_like(scores) >= self.dropout
            scores = scores * keep
        return torch.softmax(scores, dim=2).view_as(cams)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cams = self.classifier(features)
        logits = (self.attention(cams) * cams).sum(dim=(2, 3))
        return logits, cams

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


register_head("deepmil", DeepMILHead, fixed={"gated": False},
              description="Deep MIL attention (Ilse et al., eq. 1.4-1.5); per-class (adapted) when num_classes > 2")
register_head("deepmil-gated", DeepMILHead, fixed={"gated": True},
              description="Deep MIL gated attention (eq. 1.6); per-class (adapted) when num_classes > 2")
register_head("deepmil-adapted", DeepMILHead, fixed={"per_class": True},
              description="Deep MIL with one attention and scoring module per class (section 1.3.4)")
register_head("deepmil-multi", DeepMILMultiHead,
              description="multi-class / multi-label Deep MIL of chapter 3, dropout d = 0.1 (eq. 3.10-3.11)")
