"""Project exception types. Every error a user can cause is one of these, with a message that says what
was wrong (the offending value) and what to do about it."""

from __future__ import annotations


class AdvwslError(Exception):
    """Base class of every error raised on purpose by advwsl."""


class InputError(AdvwslError, ValueError):
    """Bad tensors or arguments: wrong range, NaN, wrong shape, unknown name."""


class ModelError(AdvwslError, ValueError):
    """A model that cannot be used as asked (too few classes, no CAMs, ...)."""


class CheckpointError(AdvwslError):
    """A checkpoint that cannot be loaded (missing sidecar, truncated file, other architecture)."""


class DatasetError(AdvwslError):
    """A dataset folder that is missing or not in the expected layout."""


class ConfigError(AdvwslError, ValueError):
    """A configuration value that is invalid or inconsistent."""


class VerificationError(AdvwslError):
    """An attack returned something it must not: out of bounds, off the lattice, NaN, wrong shape."""


class AdvwslWarning(UserWarning):
    """Something that makes results questionable but not wrong (probabilities, nondeterminism, mode)."""
