"""Pixel-level predictions from class activation maps, as the reference evaluates them (section 3.4.2):
a background score of 0 is added to every pixel's class scores and the arg max is taken, so a pixel is
background when no class scores above 0. For the Deep MIL heads the CAMs are ``hw * A - 1``, so the same
rule gives the reference's "attention > 1/(hw)" (section 1.3.4)."""

from __future__ import annotations

import torch

from ...errors import InputError


def _check(cams: torch.Tensor) -> None:
    if cams.dim() != 4:
        raise InputError(f"CAMs must be a (N, C, h, w) tensor, got shape {tuple(cams.shape)}")


def pixel_predictions(cams: torch.Tensor) -> torch.Tensor:
    """Section 3.4.2: ``argmax([0, M_1, ..., M_C])`` per pixel.

    Returns an int64 tensor ``(N, h, w)`` where 0 is background and ``c + 1`` is class ``c`` (the Pascal
    VOC convention). Ties go to the background, then to the lowest class index.
    """
    _check(cams)
    background = torch.zeros_like(cams[:, :1])
    return torch.cat([background, cams], dim=1).argmax(dim=1)


def foreground_masks(cams: torch.Tensor) -> torch.Tensor:
    """Per-class binary localization ``M_c > 0`` ``(N, C, h, w)`` (bool): the class map of a class is
    active where it scores above the background's 0 (section 3.4.2; ReLU of Grad-CAM, eq. 1.15)."""
    _check(cams)
    return cams > 0


def class_masks(cams: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The binary map ``M_y > 0`` ``(N, h, w)`` of one class per sample (e.g. the label or the
    prediction), the localization a binary histology task is evaluated on."""
    _check(cams)
    if classes.shape != (cams.shape[0],):
        raise InputError(f"classes must have shape ({cams.shape[0]},), got {tuple(classes.shape)}")
    index = classes.to(device=cams.device, dtype=torch.long).view(-1, 1, 1, 1)
    index = index.expand(-1, 1, *cams.shape[2:])
    return cams.gather(1, index)[:, 0] > 0
