"""The size-constrained baseline of Jia et al. (2017), section 4.2 (eq. 4.1-4.3), for two classes
(normal vs positive): the positive probability is a generalized mean of the sigmoid of the positive
class activation map (eq. 4.1), trained by binary cross-entropy (eq. 4.2) plus a one-sided penalty on a
predicted positive area larger than the true one (eq. 4.3); total l = l_c + lambda_s l_s."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError, ModelError

__all__ = ["jia_probability", "jia_size_penalty", "JiaLoss"]


def _positive_map(cams: Tensor, positive_class: int) -> Tensor:
    if cams.dim() != 4:
        raise InputError(f"CAMs must be (N, C, h, w), got shape {tuple(cams.shape)}")
    if not 0 <= positive_class < cams.shape[1]:
        raise ModelError(f"positive_class={positive_class} but the model has {cams.shape[1]} class maps; the Jia "
                         "et al. loss needs the positive (e.g. metastatic) class map")
    return cams[:, positive_class]


def jia_probability(cams: Tensor, r: float = 4.0, positive_class: int = 1) -> Tensor:
    """Eq. 4.1: p = ((1 / H W) sum_{i,j} sigma(M_ij)^r)^(1/r), the positive probability ``(N,)`` from the
    positive class map; ``r`` controls how closely it approximates the max."""
    if r <= 0:
        raise InputError(f"the generalized-mean exponent r must be > 0, got {r}")
    m = _positive_map(cams, positive_class)
    return torch.sigmoid(m.float()).pow(r).mean(dim=(1, 2)).pow(1.0 / r)


def jia_size_penalty(cams: Tensor, labels: Tensor, true_sizes: Tensor, positive_class: int = 1) -> Tensor:
    """Eq. 4.3: l_s = y max(0, v_hat - a)^2 with v_hat = (1 / H W) sum sigma(M_ij), per sample ``(N,)``;
    ``true_sizes`` a (N,) is the positive-region fraction, ``labels`` y (N,) is 1 for positive images."""
    v_hat = torch.sigmoid(_positive_map(cams, positive_class).float()).mean(dim=(1, 2))
    y = (labels == positive_class).float()
    return y * torch.relu(v_hat - true_sizes.to(v_hat)) ** 2


class JiaLoss(nn.Module):
    """Eq. 4.1-4.3: l = l_c + lambda_s l_s, averaged over the batch.

    Same interface as the other training criteria of :mod:`advwsl.losses`: called with the model's
    logits, the labels and the CAMs and true sizes (the ``(N, K + 1)`` size vectors of
    :func:`~advwsl.losses.size.size_targets`, of which the positive component is used). Its
    :meth:`scores` turns the CAMs into the class probabilities ``[1 - p, p]`` it is trained on.
    """

    needs_cams = True
    needs_sizes = True
    needs_masks = False

    def __init__(self, *, lambda_size: float = 10.0, r: float = 4.0, positive_class: int = 1,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if lambda_size < 0:
            raise InputError(f"lambda_size must be >= 0, got {lambda_size}")
        self.lambda_size, self.r, self.positive_class, self.eps = float(lambda_size), float(r), positive_class, eps

    def forward(self, logits: Tensor, labels: Tensor, *, cams: Tensor | None = None,
                sizes: Tensor | None = None, input_size: tuple[int, int] | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        if cams is None or sizes is None:
            raise InputError("the Jia et al. loss needs the CAMs and the true sizes of the batch")
        if cams.shape[1] != 2:
            raise ModelError(f"the Jia et al. loss is for two classes (normal vs positive); the model has "
                             f"{cams.shape[1]}")
        p = jia_probability(cams, self.r, self.positive_class).clamp(self.eps, 1 - self.eps)
        y = (labels == self.positive_class).float()
        l_c = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))                     # eq. 4.2
        a = sizes[:, self.positive_class + 1] if sizes.dim() == 2 else sizes
        l_s = jia_size_penalty(cams, labels, a, self.positive_class)              # eq. 4.3
        loss = (l_c + self.lambda_size * l_s).mean()
        return loss, {"cls": l_c.mean().detach(), "size": l_s.mean().detach()}

    def scores(self, logits: Tensor, cams: Tensor | None = None) -> Tensor:
        """Class probabilities ``(N, 2)``: ``[1 - p, p]`` from eq. 4.1 (needs the CAMs)."""
        if cams is None:
            raise InputError("the Jia et al. scores need the CAMs")
        p = jia_probability(cams, self.r, self.positive_class)
        out = torch.stack([1 - p, p], dim=1)
        return out if self.positive_class == 1 else out.flip(1)
