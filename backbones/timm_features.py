"""Build a timm feature extractor the way a detector needs it, and describe its pyramid.

Conventions shared by every family (so detection configs are interchangeable):

* `out_indices` index *pyramid levels*: level i has stride 4 * 2**i (mmdet's ResNet/Swin/ConvNeXt
  convention). ResNet's stride-2 stem map is therefore never a level; a level a model does not produce is
  a user error naming the strides it has.
* Plain (single-stride) ViTs such as DeiT give one stride-16 map (the last block, no final norm); the
  backbone turns it into levels 0..3 with a ViTDet simple pyramid (see `backbones.vit_pyramid`).
  With `vit_blocks=(2, 5, 8, 11)` they instead output those blocks' stride-16 maps as they are (no final
  norm, no pyramid), as mmseg's `VisionTransformer(out_indices=(2, 5, 8, 11))` does for UperNet.
* Detection defaults added unless the caller sets them: `dynamic_img_size=True` where the model class
  accepts it (Swin, ViT: any input size), and `always_partition=True` for Swin (every shifted block shifts,
  as in the official and mmdet Swin detectors; timm would skip the shift where a stage is no larger
  than the window at the construction size).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import timm
import torch
from torch import nn

from etcore.errors import UserInputError

PLAIN_VIT_STRIDE = 16
PYRAMID_STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class PyramidSpec:
    """What a backbone built from `model_name` + kwargs outputs (no weights needed to know it)."""

    model_name: str
    timm_kwargs: dict  # kwargs passed to timm.create_model (detection defaults resolved)
    timm_out_indices: tuple  # indices into timm's feature_info
    out_indices: tuple  # pyramid levels (stride 4 * 2**i)
    out_channels: tuple
    strides: tuple
    plain_vit: bool  # single-stride ViT: simple pyramid on the last block, or the `vit_blocks` maps
    vit_dim: int  # embed dim of a plain ViT (0 otherwise)
    vit_blocks: tuple = ()  # plain ViT: output these blocks' stride-16 maps instead of the simple pyramid


def _check_model_name(model_name: str) -> None:
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:6]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise UserInputError(
            f"model_name={model_name!r} is not a timm model{hint}: use a name from timm.list_models(), or, for a "
            "model of your own, import the module that registers it: custom_imports = dict(imports=['backbones', "
            "'your.module'], allow_failed_imports=False) in the config"
        )


def create_on_meta(model_name: str, **kwargs: Any) -> nn.Module:
    """`timm.create_model(model_name, pretrained=False, ...)` on the meta device: no memory, no init.

    Through torch's device context rather than timm's `device=` argument, which a model of one's own
    (registered with `@register_model`, imported with custom_imports) need not accept.
    """
    with torch.device("meta"):
        return timm.create_model(model_name, pretrained=False, **kwargs)


def _class_accepts(model_name: str, kwargs: dict) -> set[str]:
    """Names of the constructor arguments of the timm class behind `model_name` (built on 'meta')."""
    model = create_on_meta(model_name, **kwargs)
    return set(inspect.signature(type(model).__init__).parameters)


def detection_kwargs(model_name: str, timm_kwargs: dict) -> dict:
    """`timm_kwargs` plus the detection defaults described in the module docstring."""
    _check_model_name(model_name)
    kwargs = dict(timm_kwargs)
    if kwargs.pop("pretrained", False):
        raise UserInputError(
            f"TimmBackbone({model_name!r}, pretrained=True) would download from the hub: "
            "set checkpoint=<file> instead (convert it with tools/convert_checkpoint.py)"
        )
    for key in ("features_only", "out_indices", "num_classes"):
        if key in kwargs:
            raise UserInputError(
                f"TimmBackbone: do not pass {key}= in the timm kwargs; the backbone sets it "
                "(use out_indices= of TimmBackbone for pyramid levels)"
            )
    try:
        accepted = _class_accepts(model_name, kwargs)
    except TypeError as err:
        raise UserInputError(
            f"TimmBackbone({model_name!r}): timm rejected the kwargs {sorted(kwargs)} ({err}): remove or fix them"
        ) from None
    if "dynamic_img_size" in accepted:
        kwargs.setdefault("dynamic_img_size", True)
    if "always_partition" in accepted:
        kwargs.setdefault("always_partition", True)
    return kwargs


def _all_feature_info(model_name: str, kwargs: dict) -> list[dict]:
    # out_indices=1 (the last level) works for every family; the info list still holds all levels
    model = create_on_meta(model_name, features_only=True, out_indices=1, **kwargs)
    return [dict(info) for info in model.feature_info.info]


def pyramid_spec(
    model_name: str,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    vit_blocks: Sequence[int] | None = None,
    **timm_kwargs: Any,
) -> PyramidSpec:
    """Resolve levels, channels and strides of a TimmBackbone; cheap (meta device, no weights)."""
    kwargs = detection_kwargs(model_name, timm_kwargs)
    out_indices = tuple(int(i) for i in out_indices)
    if not out_indices or sorted(set(out_indices)) != list(out_indices) or min(out_indices) < 0:
        raise UserInputError(
            f"out_indices={out_indices!r}: give increasing pyramid levels from 0..3, level i has stride 4*2**i"
        )
    try:
        infos = _all_feature_info(model_name, kwargs)
    except (RuntimeError, AssertionError, TypeError) as err:
        raise UserInputError(
            f"timm model {model_name!r} has no feature pyramid (features_only failed: {err}): "
            "choose a model that supports features_only"
        ) from None
    reductions = [info["reduction"] for info in infos]
    strides = tuple(4 * 2**i for i in out_indices)
    if vit_blocks is not None:
        return _vit_blocks_spec(model_name, kwargs, out_indices, tuple(vit_blocks), infos)
    if len(set(reductions)) == 1:  # plain ViT: every block at one stride
        if reductions[0] != PLAIN_VIT_STRIDE:
            raise UserInputError(
                f"{model_name}: plain ViT with stride {reductions[0]}; the simple pyramid "
                f"needs patch size {PLAIN_VIT_STRIDE}: pick a /16 model"
            )
        if max(out_indices) >= len(PYRAMID_STRIDES):
            raise UserInputError(
                f"out_indices={out_indices!r} for plain ViT {model_name}: levels are 0..3 (strides {PYRAMID_STRIDES})"
            )
        dim = infos[-1]["num_chs"]
        channels = {4: dim // 4, 8: dim // 2, 16: dim, 32: dim}
        return PyramidSpec(
            model_name, kwargs, (len(infos) - 1,), out_indices, tuple(channels[s] for s in strides), strides, True, dim
        )
    missing = [s for s in strides if s not in reductions]
    if missing:
        raise UserInputError(
            f"out_indices={out_indices!r} ask {model_name} for strides {missing}, but it "
            f"gives strides {sorted(set(reductions))}: use levels whose stride 4*2**i exists"
        )
    timm_indices = tuple(reductions.index(s) for s in strides)
    channels = tuple(infos[i]["num_chs"] for i in timm_indices)
    return PyramidSpec(model_name, kwargs, timm_indices, out_indices, channels, strides, False, 0)


def _vit_blocks_spec(model_name: str, kwargs: dict, out_indices: tuple, blocks: tuple, infos: list) -> PyramidSpec:
    """Spec of a plain ViT that outputs the stride-16 maps of `blocks` (block indices, 0-based)."""
    if len({info["reduction"] for info in infos}) != 1:
        raise UserInputError(
            f"vit_blocks={blocks!r}: {model_name} is not a plain (single-stride) ViT: "
            "drop vit_blocks and choose pyramid levels with out_indices"
        )
    if out_indices != (0, 1, 2, 3):
        raise UserInputError(
            f"out_indices={out_indices!r} with vit_blocks={blocks!r}: the outputs are the blocks themselves "
            "(all at stride 16), so leave out_indices at its default"
        )
    depth = len(infos)
    if not blocks or list(blocks) != sorted(set(blocks)) or blocks[0] < 0 or blocks[-1] >= depth:
        raise UserInputError(
            f"vit_blocks={blocks!r}: give increasing block indices in 0..{depth - 1} ({model_name} has {depth} blocks)"
        )
    dim = infos[-1]["num_chs"]
    n = len(blocks)
    return PyramidSpec(model_name, kwargs, blocks, blocks, (dim,) * n, (PLAIN_VIT_STRIDE,) * n, True, dim, blocks)


def feature_channels(model_name: str, out_indices: Sequence[int] = (0, 1, 2, 3), **timm_kwargs: Any) -> list[int]:
    """Channels of each output level of `TimmBackbone(model_name, out_indices, **timm_kwargs)`.

    For configs (`neck=dict(in_channels=feature_channels('swin_tiny_patch4_window7_224', (1, 2, 3)))`) and
    tests; builds the model on the meta device, so no weights are allocated.
    """
    return list(pyramid_spec(model_name, out_indices, **timm_kwargs).out_channels)


def create_feature_net(spec: PyramidSpec) -> nn.Module:
    """The timm features_only network for `spec` (random init; weights come from the checkpoint bridge)."""
    return timm.create_model(
        spec.model_name, pretrained=False, features_only=True, out_indices=spec.timm_out_indices, **spec.timm_kwargs
    )


def create_reference_model(spec: PyramidSpec, device: str | torch.device = "meta") -> nn.Module:
    """The full timm classifier with the same kwargs: the key layout and shapes checkpoints are read in."""
    if str(device) == "meta":
        return create_on_meta(spec.model_name, **spec.timm_kwargs)
    return timm.create_model(spec.model_name, pretrained=False, device=device, **spec.timm_kwargs)
