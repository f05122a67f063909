"""Grad-CAM (Selvaraju et al. 2017), eq. 1.15-1.16 / 3.5: the CAM of class ``c`` is
``ReLU(sum_k A_ck F_k)`` with ``A_ck = (1/hw) sum_ij d s_c / d F_kij``, the spatially averaged gradient
of the class score with respect to the feature maps ``F`` of a chosen layer.

For a linear classification layer on globally averaged features (the CAM head, eq. 3.4),
``A_ck = W_ck / (hw)``, so Grad-CAM before the ReLU is ``(M_c - b_c) / (hw)``: the CAM of eq. 3.3 up to
its bias and a positive factor (section 1.3.4).

The maps come at the layer's resolution, unnormalized and (with ``create_graph``) differentiable, which is
what an attack on them needs; ``size=`` upsamples them bilinearly (section 1.3.4) and ``normalize=True``
min-max normalizes each map of each image to [0, 1], for display (:func:`advwsl.plotting.save_cam_overlays`)
and for the Dice of a thresholded map.

:class:`GradCAMClassifier` (zoo name ``gradcam``) is that CAM architecture localized by Grad-CAM, and
:func:`gradcam_view` turns a trained CAM model into it, so the CAM metrics evaluate Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError, ModelError
from .cams import normalize_maps, upsample_cams
from .heads.pooling import CAMHead
from .normalize import IMAGENET_MEAN, IMAGENET_STD
from .wsl import WSLClassifier
from .zoo import register_head

__all__ = ["grad_cam", "GradCAMClassifier", "gradcam_view", "GradCAMView", "with_grad_cam", "last_feature_layer"]


def _default_layer(model: nn.Module) -> nn.Module:
    for attr in ("backbone", "features"):
        layer = getattr(model, attr, None)
        if isinstance(layer, nn.Module):
            return layer
    raise ModelError(f"{type(model).__name__} has no 'backbone' or 'features' module; pass layer=<the module "
                     "whose output feature maps Grad-CAM should weight>")


def grad_cam(model: nn.Module, inputs: torch.Tensor, *, classes: torch.Tensor | None = None,
             layer: nn.Module | None = None, create_graph: bool = False, relu: bool = True,
             normalize: bool = False, size: int | tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of a batch (eq. 1.15-1.16).

    Parameters
    ----------
    model:
        Any model returning logits ``(N, C)``.
    inputs:
        Images ``(N, D, H, W)`` in [0, 1].
    classes:
        ``None``: the maps of every class, ``(N, C, h, w)`` like ``model.cams``; an int tensor ``(N,)``:
        one map per sample for that class (label or prediction), ``(N, 1, h, w)``.
    layer:
        Module whose output is ``F`` (4-D). Defaults to ``model.backbone`` (WSL models) or
        ``model.features`` (C&W networks).
    create_graph:
        Keep the graph of the gradients so that the maps are differentiable (w.r.t. the input and the
        parameters), e.g. for attacks on the maps. Otherwise they are detached.
    relu:
        Apply the ReLU of eq. 1.15.
    normalize:
        Min-max normalize every map (per image and class) to [0, 1]; a constant map becomes zeros.
    size:
        Upsample the maps bilinearly to ``size`` (``H`` or ``(H, W)``; the input size is
        ``inputs.shape[-2:]``), before normalizing.

    Returns
    -------
    ``(logits, maps)``, ``maps`` ``(N, C or 1, h, w)`` (``(N, C or 1, H, W)`` with ``size``). Samples are independent only when the model is in eval mode (batch norm in
    training mode mixes the batch). The model's mode, parameters and ``.grad`` are left untouched.
    """
    if inputs.dim() != 4:
        raise InputError(f"inputs must be images (N, D, H, W), got shape {tuple(inputs.shape)}")
    layer = _default_layer(model) if layer is None else layer
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: object, output: torch.Tensor) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ModelError(f"Grad-CAM layer {type(_module).__name__} must output (N, K, h, w) feature maps")
        if not output.requires_grad:  # frozen model and plain inputs: track from the features on
            output = output.detach().requires_grad_()
            captured.append(output)
            return output
        captured.append(output)
        return None

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(inputs)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ModelError(f"Grad-CAM layer ran {len(captured)} times in one forward pass; choose a module "
                         "that runs once")
    if logits.dim() != 2:
        raise ModelError(f"Grad-CAM needs logits (N, C), the model returned shape {tuple(logits.shape)}")
    with torch.enable_grad():  # also under an outer torch.no_grad()
        cams = _weighted_maps(logits, captured[0], classes, create_graph)
        if relu:
            cams = torch.relu(cams)
        if size is not None:
            cams = upsample_cams(cams, size)
        if normalize:
            cams = normalize_maps(cams.flatten(0, 1)).view_as(cams)
    if not create_graph:
        cams, logits = cams.detach(), logits.detach()
    return logits, cams


def _weighted_maps(logits: torch.Tensor, features: torch.Tensor, classes: torch.Tensor | None,
                   create_graph: bool) -> torch.Tensor:
    """Eq. 1.15 before the ReLU, with the weights of eq. 1.16, for every class or one class per sample."""
    n, num_classes = logits.shape
    if classes is None:
        targets = [logits[:, c] for c in range(num_classes)]
    else:
        classes = torch.as_tensor(classes, device=logits.device).long().view(-1)
        if classes.shape[0] != n or classes.min() < 0 or classes.max() >= num_classes:
            raise InputError(f"classes must be {n} class indices in [0, {num_classes}), got "
                             f"{classes.tolist()}")
        targets = [logits.gather(1, classes.view(-1, 1))[:, 0]]
    maps = []
    for i, score in enumerate(targets):
        (grad,) = torch.autograd.grad(score.sum(), features, create_graph=create_graph,
                                      retain_graph=create_graph or i < len(targets) - 1)
        weights = grad.mean(dim=(2, 3), keepdim=True)  # eq. 1.16
        maps.append((weights * features).sum(dim=1))  # eq. 1.15
    return torch.stack(maps, dim=1)


class GradCAMClassifier(WSLClassifier):
    """A plain classifier whose localization is Grad-CAM (the "GradCAM" rows of Tables 2.7 and 2.9): the
    CAM architecture (global average pooling + linear layer, eq. 3.4, trained exactly like ``cam``: same
    weights, same logits), but ``cams(x)`` returns the Grad-CAM maps of the backbone's last feature maps
    (eq. 1.15-1.16, ReLU applied) for every class instead of its class activation maps, so every CAM metric
    and binarization rule evaluates Grad-CAM. The maps keep their graph when gradients are enabled (e.g.
    inside an attack) and are computed without it under ``torch.no_grad()``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))[0]

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad_cam(self, x, layer=self.backbone, create_graph=torch.is_grad_enabled())


def gradcam_view(model: WSLClassifier) -> GradCAMClassifier:
    """The Grad-CAM classifier sharing the modules (and so the trained weights) of the weakly supervised
    ``model``: its logits are ``model``'s, its ``cams`` Grad-CAM (the reference evaluates the trained CAM
    model with Grad-CAM, section 2.2)."""
    if not isinstance(model, WSLClassifier):
        raise ModelError(f"gradcam_view needs a weakly supervised model (backbone + head), got {type(model).__name__}")
    config = dict(model.config or {})
    view = GradCAMClassifier(model.backbone, model.head, mean=config.get("mean", IMAGENET_MEAN),
                             std=config.get("std", IMAGENET_STD), config={**config, "name": "gradcam"})
    view.normalize.load_state_dict(model.normalize.state_dict())
    return view.train(model.training)


register_head("gradcam", CAMHead, model_cls=GradCAMClassifier,
              description="CAM architecture localized by Grad-CAM of the backbone (eq. 1.15-1.16; Tables 2.7, 2.9)")


def last_feature_layer(model: nn.Module, inputs: torch.Tensor) -> tuple[str, nn.Module]:
    """The module whose output is the last spatial feature map of ``model`` on ``inputs``: of the modules that
    output ``(N, K, h, w)`` with ``h * w > 1``, the last one to run (the usual Grad-CAM layer: the last
    convolutional block). Returns its name and the module; a :class:`ModelError` when the model has none."""
    order: list[tuple[str, nn.Module]] = []
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def record(module: nn.Module, _args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
            order.append((names.get(id(module), type(module).__name__), module))

    for module in model.modules():
        if module is not model:
            handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ModelError(f"{type(model).__name__} has no module with spatial feature maps (N, K, h, w): Grad-CAM "
                         "needs one; give its name (--cam-layer)")
    return order[-1]


class GradCAMView(nn.Module):
    """Any image classifier with Grad-CAM as its class maps (eq. 1.15-1.16): ``forward`` is the model's,
    ``cams(x)`` the Grad-CAM of ``layer`` for every class, differentiable when gradients are enabled (so the
    CAM report and the CAM attacks apply to a classifier without built-in CAMs)."""

    def __init__(self, model: nn.Module, layer: nn.Module, layer_name: str = "") -> None:
        super().__init__()
        self.model, self.layer, self.layer_name = model, layer, layer_name
        self.num_classes = getattr(model, "num_classes", None)
        self.train(model.training)  # a new module starts in train mode; the view takes the model's mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad_cam(self.model, x, layer=self.layer, create_graph=torch.is_grad_enabled())


def with_grad_cam(model: nn.Module, inputs: torch.Tensor, layer: str | None = None) -> GradCAMView:
    """``model`` seen through :class:`GradCAMView`, its layer named (``layer``, a name of
    ``model.named_modules()``) or found by :func:`last_feature_layer` on ``inputs``."""
    if layer is None:
        name, module = last_feature_layer(model, inputs)
        return GradCAMView(model, module, name)
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ModelError(f"the model has no module {layer!r} for Grad-CAM; its modules with parameters: "
                         f"{', '.join(n for n, m in modules.items() if n and any(True for _ in m.parameters()))[:400]}")
    return GradCAMView(model, modules[layer], layer)
