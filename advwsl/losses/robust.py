"""The general and adaptive robust loss of Barron (2019) used for size supervision (eq. 4.10-4.11).

``robust_rho`` is rho(x, alpha, gamma) of eq. 4.10. Learning alpha and the scale gamma needs the negative
log-likelihood of the density p(x | alpha, gamma) = exp(-rho(x, alpha, gamma)) / (gamma Z(alpha)) of
eq. 4.11, whose partition function Z(alpha) has no closed form. It is computed here by numerical
quadrature on a grid of alpha in [0, 4] (denser next to alpha = 0 and alpha = 2, where log Z behaves like
b log b) and interpolated by a cubic spline evaluated in torch, so log Z is differentiable in alpha.
Reference values: Z(0) = pi sqrt(2), Z(1) = 2e K_1(1), Z(2) = sqrt(2 pi).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import InputError

__all__ = ["robust_rho", "log_partition", "robust_nll", "AdaptiveRobustLoss", "ALPHA_MAX"]

#: largest shape parameter for which log Z(alpha) is tabulated
ALPHA_MAX = 4.0


def _general_rho(z2: Tensor, alpha: Tensor) -> Tensor:
    """The "otherwise" branch of eq. 4.10 on z2 = (x/gamma)^2, written with log1p/expm1 so it is exact
    for small residuals and its gradient at x = 0 is finite."""
    b = (alpha - 2).abs()
    return b / alpha * torch.expm1(alpha / 2 * torch.log1p(z2 / b))


def robust_rho(x: Tensor, alpha: float | Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """Eq. 4.10: rho(x, alpha, gamma), the general robust loss.

    alpha = 2 gives L2 (x/gamma)^2 / 2, alpha = 0 the Cauchy loss log((x/gamma)^2 / 2 + 1), alpha = -inf
    the Welsch loss 1 - exp(-(x/gamma)^2 / 2); alpha = 1 is the Charbonnier (pseudo-Huber) loss.
    ``alpha`` and ``scale`` broadcast against ``x``; ``scale`` must be positive.
    """
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    if bool((scale <= 0).any()):
        raise InputError(f"the scale of the robust loss must be > 0, got {scale.min().item()}")
    if bool(torch.isnan(alpha).any()):
        raise InputError("alpha is NaN; pass a real shape parameter (alpha >= 0 to learn it)")
    z2 = (x / scale) ** 2
    is_two, is_zero, is_minf = alpha == 2, alpha == 0, torch.isneginf(alpha)
    special = is_two | is_zero | is_minf
    # evaluate the general branch on a harmless alpha where a closed form applies (no 0/0 in gradients)
    safe_alpha = torch.where(special, torch.ones_like(alpha), alpha)
    out = _general_rho(z2, safe_alpha)
    out = torch.where(is_two, 0.5 * z2, out)
    out = torch.where(is_zero, torch.log1p(0.5 * z2), out)
    return torch.where(is_minf, -torch.expm1(-0.5 * z2), out)


# ------------------------------------------------------------------------------ partition function
def _rho_np(x: np.ndarray | float, alpha: float) -> np.ndarray | float:
    if alpha == 0:
        return np.log1p(0.5 * x * x)
    if alpha == 2:
        return 0.5 * x * x
    b = abs(alpha - 2)
    return b / alpha * np.expm1(alpha / 2 * np.log1p(x * x / b))


def partition_quadrature(alpha: float) -> float:
    """Z(alpha) = integral over the real line of exp(-rho(x, alpha, 1)) (eq. 4.11), by adaptive
    quadrature (scipy). Finite for alpha >= 0 only."""
    from scipy import integrate

    if not 0 <= alpha <= ALPHA_MAX:
        raise InputError(f"Z(alpha) is tabulated for 0 <= alpha <= {ALPHA_MAX} (it diverges for alpha < 0); "
                         f"got alpha={alpha}")
    f = lambda x: math.exp(-_rho_np(x, alpha))  # noqa: E731
    head = integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    tail = integrate.quad(f, 1.0, math.inf, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    return 2.0 * (head + tail)


def _alpha_knots() -> np.ndarray:
    offsets = 10.0 ** (-np.arange(1.0, 6.0 + 1e-9, 1 / 8))
    knots = np.concatenate([np.linspace(0.0, ALPHA_MAX, 161), offsets, 2 - offsets, 2 + offsets])
    return np.unique(np.round(knots, 12))


@functools.lru_cache(maxsize=1)
def _spline_table() -> tuple[Tensor, Tensor]:
    """Knots (n,) and cubic-spline coefficients (4, n-1) of log Z(alpha), float64, computed once."""
    from scipy.interpolate import CubicSpline

    knots = _alpha_knots()
    values = np.log([partition_quadrature(float(a)) for a in knots])
    spline = CubicSpline(knots, values)
    return torch.from_numpy(knots), torch.from_numpy(np.ascontiguousarray(spline.c))


def log_partition(alpha: float | Tensor) -> Tensor:
    """log Z(alpha) of eq. 4.11 for 0 <= alpha <= ALPHA_MAX, differentiable in alpha.

    Tabulated once by quadrature and interpolated by a cubic spline (absolute error about 1e-6).
    """
    alpha = torch.as_tensor(alpha)
    if not alpha.is_floating_point():
        alpha = alpha.double()
    if bool(((alpha < 0) | (alpha > ALPHA_MAX) | torch.isnan(alpha)).any()):
        raise InputError(f"log Z(alpha) is defined for 0 <= alpha <= {ALPHA_MAX} (Z diverges for alpha < 0); "
                         f"got alpha in [{alpha.min().item()}, {alpha.max().item()}]")
    knots, coef = _spline_table()
    knots, coef = knots.to(alpha.device), coef.to(alpha.device)
    a = alpha.double()
    idx = (torch.searchsorted(knots, a.detach().contiguous(), right=True) - 1).clamp(0, knots.numel() - 2)
    dx = a - knots[idx]
    c = coef[:, idx]
    return (((c[0] * dx + c[1]) * dx + c[2]) * dx + c[3]).to(alpha.dtype)


def robust_nll(x: Tensor, alpha: Tensor, scale: Tensor) -> Tensor:
    """Eq. 4.11 as a loss: -log p(x | alpha, gamma) = rho(x, alpha, gamma) + log gamma + log Z(alpha)."""
    return robust_rho(x, alpha, scale) + torch.log(scale) + log_partition(alpha)


# --------------------------------------------------------------------------------- learned version
def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class AdaptiveRobustLoss(nn.Module):
    """Eq. 4.10-4.11 with the shape alpha and scale gamma learned by minimizing the NLL (Barron, 2019).

    alpha = lo + (hi - lo) * sigmoid(latent) stays inside ``alpha_range`` and gamma = scale_min +
    softplus(latent) stays positive; both latents are parameters of this module (put them in the
    optimizer; they are saved in its ``state_dict``). ``num_dims`` independent (alpha, gamma) pairs, one per
    last-dimension entry of the residuals, or one shared pair (``num_dims=1``).
    """

    def __init__(self, num_dims: int = 1, *, alpha_range: tuple[float, float] = (0.001, 1.999),
                 alpha_init: float = 1.0, scale_init: float = 1.0, scale_min: float = 1e-5) -> None:
        super().__init__()
        lo, hi = alpha_range
        if not 0 <= lo < hi <= ALPHA_MAX:
            raise InputError(f"alpha_range must satisfy 0 <= lo < hi <= {ALPHA_MAX}; got {alpha_range}")
        if not lo < alpha_init < hi:
            raise InputError(f"alpha_init must lie strictly inside alpha_range {alpha_range}; got {alpha_init}")
        if scale_init <= scale_min or scale_min < 0:
            raise InputError(f"need 0 <= scale_min < scale_init; got scale_min={scale_min}, scale_init={scale_init}")
        self.alpha_lo, self.alpha_hi, self.scale_min = float(lo), float(hi), float(scale_min)
        t = (alpha_init - lo) / (hi - lo)
        self.alpha_latent = nn.Parameter(torch.full((num_dims,), math.log(t / (1 - t))))
        self.scale_latent = nn.Parameter(torch.full((num_dims,), _inverse_softplus(scale_init - scale_min)))

    def alpha(self) -> Tensor:
        return self.alpha_lo + (self.alpha_hi - self.alpha_lo) * torch.sigmoid(self.alpha_latent)

    def scale(self) -> Tensor:
        return self.scale_min + nn.functional.softplus(self.scale_latent)

    def forward(self, residuals: Tensor) -> Tensor:
        """Element-wise NLL (same shape as ``residuals``)."""
        n = self.alpha_latent.numel()
        if n > 1 and residuals.shape[-1] != n:
            raise InputError(f"residuals have {residuals.shape[-1]} entries in their last dimension but the loss "
                             f"was built with num_dims={n}")
        alpha, scale = self.alpha().to(residuals.dtype), self.scale().to(residuals.dtype)
        return robust_nll(residuals, alpha, scale)

    def extra_repr(self) -> str:
        return f"num_dims={self.alpha_latent.numel()}, alpha_range=({self.alpha_lo}, {self.alpha_hi})"
