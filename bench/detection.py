"""Detection-side timing: TimmBackbone against mmdet's native backbones, and detector training iterations.

`backbone_benchmark`: for each family (resnet50, swin_tiny) a `TimmBackbone` and mmdet's `ResNet` /
`SwinTransformer` with the same weights (`bench.mmdet_keymap`), checked to give equal outputs, then
timed side by side (forward without grad, forward+backward) at one input size; the ratio timm/mmdet per
round is the result (goal <= 1.03).

`detector_benchmark`: one `model.train_step(batch, optim_wrapper)` (data preprocessor, losses, backward,
optimizer step: an mmengine training iteration without the data loader) per detection config, on a
synthetic batch from `mmdet.testing.demo_mm_inputs`, all configs in the same interleaved rounds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from bench.timing import Spread, interleaved_rounds, per_round_ratios
from etcore.errors import UserInputError


# --- backbone: TimmBackbone vs mmdet native ---------------------------------------------------
@dataclass(frozen=True)
class Family:
    """A timm model and the mmdet backbone that computes the same function once the weights are mapped."""

    timm_name: str
    mmdet_cfg: dict
    mapper: str  # function name in bench.mmdet_keymap


FAMILIES = {
    "resnet50": Family(
        "resnet50", dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3), norm_eval=False), "resnet_timm_to_mmdet"
    ),
    "swin_tiny": Family(
        "swin_tiny_patch4_window7_224",
        dict(
            type="SwinTransformer",
            embed_dims=96,
            depths=(2, 2, 6, 2),
            num_heads=(3, 6, 12, 24),
            window_size=7,
            mlp_ratio=4,
            qkv_bias=True,
            drop_path_rate=0.0,
            out_indices=(0, 1, 2, 3),
            convert_weights=False,
        ),
        "swin_timm_to_mmdet",
    ),
}


def build_pair(family: str, device: torch.device, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(TimmBackbone, mmdet backbone) with the timm weights copied into the mmdet one."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from backbones.timm_backbone import TimmBackbone
    from bench import mmdet_keymap

    if family not in FAMILIES:
        raise UserInputError(f"unknown backbone family {family!r}: use {', '.join(FAMILIES)}")
    register_all_modules()
    spec = FAMILIES[family]
    torch.manual_seed(seed)
    timm_bb = TimmBackbone(spec.timm_name, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    mmdet_bb = MODELS.build(copy.deepcopy(spec.mmdet_cfg))
    state = {k.removeprefix("body."): v for k, v in timm_bb.state_dict().items()}  # body + output norms
    mapped = getattr(mmdet_keymap, spec.mapper)(state)
    mmdet_keymap.copy_into(mmdet_bb, mapped)
    return timm_bb.to(device), mmdet_bb.to(device)


@torch.no_grad()
def max_output_difference(timm_bb: torch.nn.Module, mmdet_bb: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest |difference| over all levels, mmdet output vs TimmBackbone output (both with their output norms)."""
    timm_bb.eval()
    mmdet_bb.eval()
    ours = timm_bb(x)
    theirs = mmdet_bb(x)
    if len(ours) != len(theirs) or any(a.shape != b.shape for a, b in zip(ours, theirs)):
        raise AssertionError(
            f"level shapes differ: {[tuple(a.shape) for a in ours]} vs {[tuple(b.shape) for b in theirs]}"
        )
    return max((a - b).abs().max().item() for a, b in zip(ours, theirs))


def _forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def _forward_backward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        loss = sum(f.float().mean() for f in model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)

    return run


def backbone_benchmark(
    families: Sequence[str],
    size: int | Sequence[int],
    batch: int,
    device: torch.device,
    rounds: int,
    warmup: int,
    tolerance: float = 1e-3,
) -> list[dict[str, Any]]:
    """Per family and mode: timm ms, mmdet ms, ratio timm/mmdet per round (median, range), output difference.

    `size` is the side of a square input or its (height, width)."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    rows = []
    for family in families:
        timm_bb, mmdet_bb = build_pair(family, device)
        x = torch.randn(batch, 3, height, width, device=device)
        diff = max_output_difference(timm_bb, mmdet_bb, x)
        scale = max(f.abs().max().item() for f in mmdet_bb(x)) if diff > tolerance else 1.0
        if diff > tolerance * max(scale, 1.0):
            raise AssertionError(
                f"{family}: TimmBackbone and mmdet outputs differ by {diff:.3g}: the weight "
                "mapping is wrong, timing them would compare different functions"
            )
        timm_bb.eval()
        mmdet_bb.eval()
        forward = interleaved_rounds(
            {"timm": _forward(timm_bb, x), "mmdet": _forward(mmdet_bb, x)}, rounds=rounds, warmup=warmup
        )
        timm_bb.train()
        mmdet_bb.train()
        both = interleaved_rounds(
            {"timm": _forward_backward(timm_bb, x), "mmdet": _forward_backward(mmdet_bb, x)},
            rounds=rounds,
            warmup=warmup,
        )
        for mode, times in (("forward", forward), ("forward+backward", both)):
            rows.append(
                {
                    "family": family,
                    "timm_model": FAMILIES[family].timm_name,
                    "mmdet_type": FAMILIES[family].mmdet_cfg["type"],
                    "mode": mode,
                    "input_size": height if height == width else [height, width],
                    "batch": batch,
                    "max_abs_output_diff": diff,
                    "timm_s": Spread.of(times["timm"]).to_dict(),
                    "mmdet_s": Spread.of(times["mmdet"]).to_dict(),
                    "ratio_timm_over_mmdet": Spread.of(per_round_ratios(times["timm"], times["mmdet"])).to_dict(),
                }
            )
        del timm_bb, mmdet_bb
    return rows


def backbone_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'family':>10} {'mode':>17} {'timm ms':>9} {'mmdet ms':>9} {'timm/mmdet':>22} {'max |diff|':>10}"]
    for r in rows:
        q = r["ratio_timm_over_mmdet"]
        lines.append(
            f"{r['family']:>10} {r['mode']:>17} {r['timm_s']['median'] * 1e3:>9.1f} "
            f"{r['mmdet_s']['median'] * 1e3:>9.1f} {Spread.from_dict(q).fmt():>22} "
            f"{r['max_abs_output_diff']:>10.2e}"
        )
    lines.append("goal: timm/mmdet <= 1.03")
    return "\n".join(lines)


# --- detector iterations -------------------------------------------------------------------------
def _num_classes(model_cfg: Any) -> int:
    head = model_cfg.get("bbox_head")
    if head is None:
        head = model_cfg["roi_head"]["bbox_head"]
        head = head[0] if isinstance(head, (list, tuple)) else head
    return int(head["num_classes"])


def _with_mask(model_cfg: Any) -> bool:
    return bool(model_cfg.get("roi_head") and model_cfg["roi_head"].get("mask_head"))


def load_detector(config_path: str, device: torch.device) -> tuple[Any, Any, dict[str, Any]]:
    """(model, optim wrapper, info) from an mmdet config; random init (the backbone checkpoint is dropped).

    SyncBN becomes BN (one process, as mmengine's Runner does without a launcher); on CPU an
    AmpOptimWrapper becomes a plain OptimWrapper (AMP needs a GPU); both are noted in `info`.
    """
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper

    path = Path(config_path)
    if not path.is_file():
        raise UserInputError(
            f"detector config {config_path} does not exist: pass an mmdet config file (see det_configs/)"
        )
    register_all_modules()
    from mmengine.logging import MMLogger

    import backbones  # noqa: F401  (registers TimmBackbone and the layer-decay constructor)

    MMLogger.get_instance("benchmark", log_level="WARNING")  # the current logger: no per-parameter init report

    cfg = Config.fromfile(str(path))
    notes = []
    if cfg.model.get("backbone", {}).get("checkpoint"):
        cfg.model.backbone.checkpoint = None
        notes.append("random init (backbone checkpoint dropped)")
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.to(device).train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if device.type != "cuda" and optim_cfg.get("type") == "AmpOptimWrapper":
        optim_cfg["type"] = "OptimWrapper"
        optim_cfg.pop("loss_scale", None)
        optim_cfg.pop("dtype", None)
        notes.append("fp32 (AMP needs a GPU)")
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    meta = dict(cfg.get("benchmark", {}))
    info = {
        "config": str(path),
        "detector": meta.get("detector", type(model).__name__),
        "backbone": meta.get("backbone", cfg.model.get("backbone", {}).get("model_name", "?")),
        "num_classes": _num_classes(cfg.model),
        "with_mask": _with_mask(cfg.model),
        "optim_wrapper": optim_cfg.get("type", "OptimWrapper"),
        "notes": notes,
    }
    return model, optim_wrapper, info


def synthetic_batch(
    batch: int, height: int, width: int, num_classes: int, with_mask: bool, objects: int = 5, seed: int = 0
) -> dict[str, Any]:
    """A loader-style batch (uint8 images on the CPU, boxes/labels/masks) from mmdet's test helper."""
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(seed)
    import numpy as np

    np.random.seed(seed)
    return demo_mm_inputs(
        batch_size=batch,
        image_shapes=[(3, height, width)] * batch,
        num_items=[objects] * batch,
        num_classes=num_classes,
        with_mask=with_mask,
    )


def detector_benchmark(
    config_paths: Sequence[str], batch: int, height: int, width: int, device: torch.device, rounds: int, warmup: int
) -> dict[str, Any]:
    """Train-iteration seconds per config (interleaved), and ratios between backbones and between detectors."""
    cases, infos = {}, {}
    for path in config_paths:
        model, optim_wrapper, info = load_detector(path, device)
        data = synthetic_batch(batch, height, width, info["num_classes"], info["with_mask"])
        key = f"{info['detector']}/{info['backbone']}"
        if key in cases:
            key = f"{key}#{len(cases)}"
        cases[key] = lambda m=model, o=optim_wrapper, d=data: m.train_step(d, o)
        infos[key] = info
    times = interleaved_rounds(cases, rounds=rounds, warmup=warmup)
    rows = [
        {**infos[k], "key": k, "batch": batch, "image_hw": [height, width], "iter_s": Spread.of(times[k]).to_dict()}
        for k in cases
    ]
    ratios = []
    by_detector: dict[str, list[str]] = {}
    by_backbone: dict[str, list[str]] = {}
    for k in cases:
        by_detector.setdefault(infos[k]["detector"], []).append(k)
        by_backbone.setdefault(infos[k]["backbone"], []).append(k)
    for group, kind in ((by_detector, "backbone vs first backbone"), (by_backbone, "detector vs first detector")):
        for keys in group.values():
            for k in keys[1:]:
                ratios.append(
                    {
                        "kind": kind,
                        "numerator": k,
                        "denominator": keys[0],
                        "ratio": Spread.of(per_round_ratios(times[k], times[keys[0]])).to_dict(),
                    }
                )
    return {"rows": rows, "ratios": ratios}


def detector_table(result: dict[str, Any]) -> str:
    lines = [f"{'detector':>18} {'backbone':>30} {'iter ms':>24} {'img/s':>7}  notes"]
    for r in result["rows"]:
        s = r["iter_s"]
        lines.append(
            f"{r['detector']:>18} {r['backbone']:>30} "
            f"{Spread.from_dict(s).scaled(1e3).fmt(1):>24} "
            f"{r['batch'] / s['median']:>7.2f}  {'; '.join(r['notes'])}"
        )
    for q in result["ratios"]:
        v = q["ratio"]
        lines.append(f"ratio {q['numerator']} / {q['denominator']}: {Spread.from_dict(v).fmt()}")
    return "\n".join(lines)
