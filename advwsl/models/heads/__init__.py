"""Pooling heads: each maps features ``(N, K, h, w)`` to ``(logits (N, C), cams (N, C, h, w))``."""

from .deepmil import DeepMILHead, DeepMILMultiHead
from .pooling import CAMHead, LSEHead, MaxHead, average_pool, lse_pool, max_pool
from .wildcat import WildcatHead, resolve_k, wildcat_pool

__all__ = [
    "CAMHead", "MaxHead", "LSEHead", "WildcatHead", "DeepMILHead", "DeepMILMultiHead",
    "average_pool", "max_pool", "lse_pool", "wildcat_pool", "resolve_k",
]
