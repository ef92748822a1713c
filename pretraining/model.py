"""timm models for pretraining: build by name, and change their input size between curriculum stages.

ConvNets take any input size. ViT/DeiT and Swin have size-bound parameters (`pos_embed`; the relative
position bias tables of the windows); timm's `set_input_size` resamples them and replaces those
parameters, so `resize_model_input` also swaps the new tensors into the optimizer and resamples
their AdamW moments the same way (as the official EfficientTrain code does).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Callable

import timm
import torch
from timm.layers import resample_abs_pos_embed, resize_rel_pos_bias_table

from etcore.errors import UserInputError

Resizer = Callable[[torch.Tensor], torch.Tensor]


def build_model(
    name: str, num_classes: int, final_size: int, model_kwargs: dict[str, Any], drop_path: float | None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """`timm.create_model(name, pretrained=False, ...)`; returns the model and the kwargs it was built with.

    Models that take `img_size` (ViT, Swin, PVT) are built for `final_size`. Unknown names and kwargs
    the model refuses raise `UserInputError`.
    """
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        if not close:
            close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models()"
        raise UserInputError(
            f"--model {name!r} is not a timm model ({hint}); a model of your own: pass --import MODULE, "
            "the module that registers it with @timm.models.register_model"
        )
    kwargs = dict(model_kwargs)
    if drop_path is not None:
        kwargs["drop_path_rate"] = drop_path
    kwargs["num_classes"] = num_classes
    with_size = dict(kwargs)
    with_size.setdefault("img_size", final_size)
    try:
        return timm.create_model(name, pretrained=False, **with_size), with_size
    except TypeError as err:
        if "img_size" not in str(err) or "img_size" in kwargs:
            raise UserInputError(
                f"model kwargs {sorted(model_kwargs)} not accepted by timm model {name} ({err}): "
                "fix model_kwargs / --drop-path"
            ) from None
    try:
        return timm.create_model(name, pretrained=False, **kwargs), kwargs
    except (TypeError, ValueError, AssertionError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise UserInputError(
            f"model kwargs {kwargs} not accepted by timm model {name} ({detail}): fix model_kwargs / --drop-path"
        ) from None


def has_input_size(model: torch.nn.Module) -> bool:
    """Whether the model carries size-bound parameters that follow the input size."""
    return hasattr(model, "set_input_size")


def _geometry(model: torch.nn.Module) -> dict[str, Any]:
    """Grid of the absolute position embedding and window of every relative-position table."""
    geometry: dict[str, Any] = {"windows": {}}
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and getattr(patch_embed, "grid_size", None) is not None:
        geometry["grid"] = tuple(patch_embed.grid_size)
    for name, module in model.named_modules():
        if hasattr(module, "relative_position_bias_table") and hasattr(module, "window_size"):
            geometry["windows"][name] = tuple(module.window_size)
    return geometry


def _resizers(model: torch.nn.Module, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Resizer]:
    """For each size-bound parameter name, the function that maps an old-shaped tensor to the new shape."""
    resizers: dict[str, Resizer] = {}
    if "pos_embed" in dict(model.named_parameters()) and old.get("grid") != new.get("grid"):
        prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        resizers["pos_embed"] = lambda t: resample_abs_pos_embed(
            t, new_size=list(new["grid"]), old_size=list(old["grid"]), num_prefix_tokens=prefix
        )
    for module_name, old_window in old["windows"].items():
        new_window = new["windows"][module_name]
        if new_window == old_window:
            continue
        param_name = f"{module_name}.relative_position_bias_table"

        def resize(t: torch.Tensor, old_w: tuple = old_window, new_w: tuple = new_window) -> torch.Tensor:
            shape = ((2 * new_w[0] - 1) * (2 * new_w[1] - 1), t.shape[-1])
            return resize_rel_pos_bias_table(t, new_window_size=new_w, new_bias_shape=shape, old_window_size=old_w)

        resizers[param_name] = resize
    return resizers


@torch.no_grad()
def resize_model_input(model: torch.nn.Module, size: int, optimizer: torch.optim.Optimizer | None = None) -> list[str]:
    """Set the model's input size to `size` x `size`; returns the names of the parameters replaced.

    With an optimizer, the replaced parameters take the place of the old ones in its param groups and
    their state tensors (AdamW exp_avg / exp_avg_sq) are resampled like the parameter; second moments
    are clamped at 0 (bicubic resampling can undershoot).
    """
    if not has_input_size(model):
        return []
    before = dict(model.named_parameters())
    old_geometry = _geometry(model)
    model.set_input_size(img_size=(size, size))
    after = dict(model.named_parameters())
    replaced = [name for name, param in after.items() if param is not before.get(name)]
    if not replaced:
        return []
    resizers = _resizers(model, old_geometry, _geometry(model))
    unknown = [name for name in replaced if name not in resizers]
    if unknown:
        raise RuntimeError(
            f"set_input_size replaced parameters {unknown} that pretraining.model cannot resample; "
            "add a resizer for them"
        )
    if optimizer is not None:
        _swap_into_optimizer(optimizer, {id(before[n]): (before[n], after[n], resizers[n]) for n in replaced})
    return replaced


def _swap_into_optimizer(
    optimizer: torch.optim.Optimizer, swaps: dict[int, tuple[torch.Tensor, torch.Tensor, Resizer]]
) -> None:
    for group in optimizer.param_groups:
        group["params"] = [swaps[id(p)][1] if id(p) in swaps else p for p in group["params"]]
    for old, new, resize in swaps.values():
        state = optimizer.state.pop(old, None)
        if not state:
            continue
        moved = {}
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == old.shape:
                value = resize(value).to(dtype=value.dtype)
                if "sq" in key:  # second moments must stay non-negative
                    value = value.clamp_(min=0)
            moved[key] = value
        optimizer.state[new] = moved


def model_at_size(model: torch.nn.Module, current_size: int, size: int) -> torch.nn.Module:
    """The model itself when it already runs at `size` (or has no size-bound parameters), else a resized copy."""
    if current_size == size or not has_input_size(model):
        return model
    resized = copy.deepcopy(model)
    resize_model_input(resized, size)
    return resized
