"""Any timm model as the backbone of a weakly supervised model: its last feature map,
``timm.create_model(name, features_only=True, out_indices=(-1,), output_stride=S)``.

Names: ``timm:NAME`` always means timm's ``NAME`` (``timm:resnet18`` is timm's ResNet-18, ``resnet18``
the registered torchvision one); a plain ``NAME`` that is no registered backbone but a timm model
(``efficientnet_b0``, ``convnext_atto``, ``mobilenetv3_small_050``; with a pretrained tag,
``convnext_atto.d2_in1k``) is timm's too. The model config stores the name as given.

- Stride (section 4.4.2): 32 builds timm's model as it is; 16 and 8 pass ``output_stride``, which timm
  implements by dilating the last stages (every weight keeps its shape, as with the ResNets). A model that
  has no such option, or whose last feature map is at another stride (a ViT's 16), is a
  :class:`ModelError` naming the strides it has.
- ``pretrained=True`` reads timm's weights from the local caches only, never from the network: the
  Hugging Face hub cache where timm keeps them (``timm/<name>.<tag>``, ``model.safetensors``), then
  the torch hub folder (``$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>``); when neither
  holds them the error says which file to put where.
- ``weights=PATH`` loads a local state dict (``.pth``/``.pt``/``.safetensors``) of the whole timm
  model (``timm.create_model(name).state_dict()``; classifier keys are ignored) or of this backbone.
  Missing and unexpected keys are an error that lists them.
- Normalization: the model's pretrained configuration gives ``mean``/``std`` (ImageNet's for most models),
  which the WSL model uses unless told otherwise.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError, ModelError
from .backbones import STRIDES, Builder, key_mismatch, list_backbones, read_state_dict, register_backbone_resolver
from .normalize import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["TimmFeatures", "timm_name", "timm_weights_paths"]

PREFIX = "timm:"


def _timm() -> Any:
    # imported on first use: timm adds about 2 s to the start of every command that does not need it
    return importlib.import_module("timm")


def timm_name(name: str) -> str | None:
    """The timm model name ``name`` stands for (``timm:NAME`` or a plain timm name that is no registered
    backbone), or None when it is none."""
    if name.startswith(PREFIX):
        return name[len(PREFIX):]
    if not name or name in list_backbones():
        return None
    return name if _timm().is_model(name) else None


def _pretrained_cfg(name: str) -> Any:
    return importlib.import_module("timm.models").get_pretrained_cfg(name)


def timm_weights_paths(name: str) -> list[Path]:
    """Where :class:`TimmFeatures` looks for the pretrained weights of ``name``, in order."""
    cfg = _pretrained_cfg(name)
    if cfg is None:
        return []
    paths = []
    if cfg.hf_hub_id:
        hub = importlib.import_module("huggingface_hub")
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = hub.try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                paths.append(Path(found))
    if cfg.url:
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / cfg.url.rsplit("/", 1)[-1])
    elif cfg.hf_hub_id:
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / f"{cfg.hf_hub_id.split('/')[-1]}.safetensors")
    return paths


def _missing_weights(name: str) -> ModelError:
    cfg = _pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        return ModelError(f"timm model {name!r} has no pretrained weights; use pretrained=False or weights=PATH")
    target = timm_weights_paths(name)[-1]
    url = cfg.url or f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    return ModelError(
        f"timm's pretrained weights for {name} were not found in the local caches (Hugging Face hub cache "
        f"{cfg.hf_hub_id or '-'}, {target}); advwsl does not download them. Download {url} on a machine with "
        f"internet access and copy it to {target} (or set TORCH_HOME; or copy the Hugging Face cache that "
        f"`timm.create_model({name!r}, pretrained=True)` fills there), pass weights=PATH to a local state dict, "
        "or use pretrained=False.")


def _full_key(key: str, full_keys: set[str]) -> str | None:
    """The whole model's name of a backbone key: timm's feature wrapper flattens ``stages.0`` to
    ``stages_0``."""
    if key in full_keys:
        return key
    first, _, rest = key.partition(".")
    head, sep, index = first.rpartition("_")
    candidate = f"{head}.{index}.{rest}"
    return candidate if sep and index.isdigit() and candidate in full_keys else None


class TimmFeatures(nn.Module):
    """The last feature map of timm model ``name`` (see the module docstring), with ``out_channels``,
    ``stride``, ``arch`` (``timm:NAME``) and the normalization ``mean``/``std`` it was trained with.

    ``options`` go to ``timm.create_model`` (e.g. ``in_chans=1``, ``drop_path_rate=0.1``)."""

    def __init__(self, name: str, *, stride: int = 32, pretrained: bool = False,
                 weights: str | os.PathLike | None = None, **options: Any) -> None:
        super().__init__()
        if stride not in STRIDES:
            raise InputError(f"stride must be one of {STRIDES}, got {stride!r}")
        timm = _timm()
        if not timm.is_model(name):
            raise InputError(f"{name!r} is not a timm model; timm.list_models() lists them (e.g. efficientnet_b0)")
        source = None
        if weights is not None:
            source = Path(weights)
        elif pretrained:
            found = [p for p in timm_weights_paths(name) if p.is_file()]
            if not found:
                raise _missing_weights(name)
            source = found[0]
        state = read_state_dict(source) if source is not None else None
        extra = {} if stride == 32 else {"output_stride": stride}
        try:
            self.net = timm.create_model(name, features_only=True, out_indices=(-1,), **extra, **options)
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
            raise ModelError(f"timm cannot build {name!r} as a feature extractor at stride {stride} with "
                             f"options {options}: {type(exc).__name__}: {exc}; try --stride 32, other backbone "
                             "options, or another model") from None
        native = int(self.net.feature_info.reduction()[-1])
        if native != stride:
            raise ModelError(f"timm model {name!r} gives its last feature map at stride {native}, not {stride}; "
                             f"use stride={native}")
        if state is not None:
            self._load(name, state, str(source), options)
        cfg = _pretrained_cfg(name)
        self.mean = tuple(cfg.mean) if cfg is not None and cfg.mean else IMAGENET_MEAN
        self.std = tuple(cfg.std) if cfg is not None and cfg.std else IMAGENET_STD
        self.arch = PREFIX + name
        self.stride = stride
        self.out_channels = int(self.net.feature_info.channels()[-1])

    def _load(self, name: str, state: dict[str, torch.Tensor], source: str, options: dict[str, Any]) -> None:
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if state and all(k.startswith("net.") for k in state):  # saved from this module
            state = {k.removeprefix("net."): v for k, v in state.items()}
        own = self.net.state_dict()
        with torch.device("meta"), _quiet():
            full_keys = set(_timm().create_model(name, **options).state_dict())
        picked, missing = {}, []
        for key in own:
            full = _full_key(key, full_keys)
            if key in state:
                picked[key] = state[key]
            elif full is not None and full in state:
                picked[key] = state[full]
            else:
                missing.append(key)
        unexpected = [k for k in state if k not in own and k not in full_keys]
        if missing or unexpected:
            raise key_mismatch(source, f"timm {name}", missing, unexpected,
                               f"give a state dict of timm.create_model({name!r}) (its classifier keys are "
                               "ignored) or of this backbone")
        try:
            self.net.load_state_dict(picked)
        except RuntimeError as exc:
            raise ModelError(f"{source} does not fit timm {name}: {str(exc).splitlines()[-1].strip()}") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[-1]


class _quiet:
    """Silence timm's logger (it reports the weights it skips) for the duration of a block."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("timm")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


def _resolve(name: str) -> Builder | None:
    model = timm_name(name)
    if model is None:
        return None

    def build(*, stride: int = 32, pretrained: bool = False, weights: str | os.PathLike | None = None,
              **options: Any) -> TimmFeatures:
        return TimmFeatures(model, stride=stride, pretrained=pretrained, weights=weights, **options)

    return build


register_backbone_resolver("any timm model, as timm:NAME or a plain timm name (timm.list_models())", _resolve)
