"""The recipe table (det_configs/recipes.yaml): loading, reading a resolved config into the table's shapes,
and rendering the tables of det_configs/RECIPES.md.

    python tests/recipe_table.py --write     # after editing recipes.yaml: rewrite RECIPES.md's tables
    python tests/recipe_table.py --check     # exit 1 if RECIPES.md's tables are not the rendered ones

tests/test_det_recipes.py uses the same functions, so the document and the test read one table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "det_configs"
TABLE = CONFIG_DIR / "recipes.yaml"
DOCUMENT = CONFIG_DIR / "RECIPES.md"
BEGIN = "<!-- BEGIN recipes.yaml (rendered by `python tests/recipe_table.py --write`; edit recipes.yaml) -->"
END = "<!-- END recipes.yaml -->"

SETTINGS = (
    "optimizer",
    "lr",
    "momentum_betas",
    "weight_decay",
    "no_decay",
    "layer_decay",
    "grad_clip",
    "amp",
    "length",
    "warmup",
    "steps",
    "batch",
    "train_pipeline",
    "test_pipeline",
    "drop_path",
    "frozen_stages",
    "norm_eval",
    "neck",
    "heads",
)
TABLES = (
    ("Optimizer", ("optimizer", "lr", "momentum_betas", "weight_decay", "no_decay", "layer_decay", "grad_clip", "amp")),
    ("Schedule and data", ("length", "warmup", "steps", "batch", "train_pipeline", "test_pipeline")),
    ("Backbone, neck and heads", ("drop_path", "frozen_stages", "norm_eval", "neck", "heads")),
)
HEADINGS = {
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum_betas": "betas / momentum",
    "weight_decay": "weight decay",
    "no_decay": "no weight decay on",
    "layer_decay": "layer-wise decay (rate over layers)",
    "grad_clip": "grad clip",
    "amp": "AMP",
    "length": "length",
    "warmup": "linear warm-up (from 0.001)",
    "steps": "lr x0.1 after",
    "batch": "batch",
    "train_pipeline": "train pipeline",
    "test_pipeline": "test pipeline",
    "drop_path": "drop path",
    "frozen_stages": "frozen stages",
    "norm_eval": "norm_eval",
    "neck": "neck (FPN, 256)",
    "heads": "heads",
}
LAYER_DECAY_CONSTRUCTOR = "TimmLayerDecayOptimizerConstructor"


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Member:
    """One runnable config as the table sees it."""

    family: str
    backbone: str  # the config-name key, e.g. 'swin-t'
    timm_name: str
    curriculum: str
    path: Path

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))


def load_table(path: Path = TABLE) -> dict:
    with open(path, encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    return {key: value for key, value in table.items() if not key.startswith("x-")}


def members(table: dict) -> list[Member]:
    """Every config file the table describes (family x backbone x curriculum)."""
    found = []
    for family_id, family in table["families"].items():
        for key, timm_name in family["backbones"].items():
            stem = family["config"].format(backbone=key)
            for curriculum in family["curricula"]:
                if key not in family.get("curriculum_backbones", {}).get(curriculum, [key]):
                    continue
                found.append(Member(family_id, key, timm_name, curriculum, CONFIG_DIR / f"{stem}_{curriculum}.py"))
    return found


def _curricula_cell(family: dict) -> list[str]:
    """Each curriculum, with the backbones it is limited to (`curriculum_backbones`) where it is."""
    limits = family.get("curriculum_backbones", {})
    return [f"{c} ({', '.join(limits[c])})" if c in limits else c for c in family["curricula"]]


def expected(family: dict, setting: str, backbone: str) -> Any:
    entry = family["settings"][setting]
    return entry["by_backbone"][backbone] if "by_backbone" in entry else entry["value"]


# ------------------------------------------------------------------------- a config in the table's shapes


def _plain(value: Any) -> Any:
    """ConfigDict/tuple-free copy (dicts, lists, scalars); `backend_args=None` dropped."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not (k == "backend_args" and v is None)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


MULTI_SCALE = [[1333, short] for short in range(480, 801, 32)]


def _train_pipeline(resize: list[dict], masks: bool) -> list[dict]:
    annotations = dict(type="LoadAnnotations", with_bbox=True, **({"with_mask": True} if masks else {}))
    return [dict(type="LoadImageFromFile"), annotations, *resize, dict(type="PackDetInputs")]


def canonical_train_pipelines(masks: bool) -> dict[str, list[dict]]:
    """The canonical training pipelines the table names (with or without instance masks)."""
    flip = dict(type="RandomFlip", prob=0.5)
    ms_crop = dict(
        type="RandomChoice",
        transforms=[
            [dict(type="RandomChoiceResize", scales=MULTI_SCALE, keep_ratio=True)],
            [
                dict(type="RandomChoiceResize", scales=[[1333, 400], [1333, 500], [1333, 600]], keep_ratio=True),
                dict(type="RandomCrop", crop_type="absolute_range", crop_size=[384, 600], allow_negative_crop=True),
                dict(type="RandomChoiceResize", scales=MULTI_SCALE, keep_ratio=True),
            ],
        ],
    )
    pipelines = {
        "1333x800": _train_pipeline([dict(type="Resize", scale=[1333, 800], keep_ratio=True), flip], masks),
        "192x160": _train_pipeline([dict(type="Resize", scale=[192, 160], keep_ratio=True), flip], masks),
        # the demo's: two of its classes are mirror images of each other (det_configs/_base_/tiny/)
        "192x160-noflip": _train_pipeline([dict(type="Resize", scale=[192, 160], keep_ratio=True)], masks),
    }
    if masks:
        pipelines["ms-crop"] = _train_pipeline([flip, ms_crop], masks)
    return pipelines


def canonical_test_pipelines(masks: bool) -> dict[str, list[dict]]:
    annotations = dict(type="LoadAnnotations", with_bbox=True, **({"with_mask": True} if masks else {}))
    pack = dict(type="PackDetInputs", meta_keys=["img_id", "img_path", "ori_shape", "img_shape", "scale_factor"])
    return {
        name: [dict(type="LoadImageFromFile"), dict(type="Resize", scale=scale, keep_ratio=True), annotations, pack]
        for name, scale in (("1333x800", [1333, 800]), ("192x160", [192, 160]))
    }


def _name_of(pipeline: Any, canonical: dict[str, list[dict]]) -> Any:
    plain = _plain(pipeline)
    for name, reference in canonical.items():
        if plain == reference:
            return name
    return {"unrecognised pipeline": plain}


def _cascade_heads(cfg) -> str | dict:
    roi = _plain(cfg.model.roi_head)
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    norms, widths = set(), set()
    for head, std in zip(roi["bbox_head"], stds):
        shape = (
            head["type"],
            head["num_shared_convs"],
            head["num_shared_fcs"],
            head["roi_feat_size"],
            head["bbox_coder"]["target_stds"],
            head["reg_class_agnostic"],
            head["reg_decoded_bbox"],
            head["loss_cls"],
            head["loss_bbox"],
        )
        want = (
            "ConvFCBBoxHead",
            4,
            1,
            7,
            std,
            False,
            True,
            dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            dict(type="GIoULoss", loss_weight=10.0),
        )
        if shape != want:
            return {"unrecognised box head": head}
        norms.add((head["norm_cfg"]["type"], head["norm_cfg"].get("requires_grad")))
        widths.add((head["in_channels"], head["conv_out_channels"], head["fc_out_channels"]))
    mask = roi["mask_head"]
    if (
        len(roi["bbox_head"]) != 3
        or roi["stage_loss_weights"] != [1, 0.5, 0.25]
        or mask["type"] != "FCNMaskHead"
        or mask["num_convs"] != 4
        or len(norms) != 1
        or len(widths) != 1
    ):
        return {"unrecognised RoI head": roi}
    norm, requires_grad = norms.pop()
    ((channels, convs, fc),) = widths
    if not requires_grad or channels != convs or mask["conv_out_channels"] != convs:
        return {"unrecognised RoI head": roi}
    width = "" if (convs, fc) == (256, 1024) else f"-{convs}ch-fc{fc}"
    return f"cascade-4conv1fc-giou-{norm.lower()}{width}"


def _fpn(cfg) -> dict:
    """The FPN's levels and outputs; its width and norm only where they differ from mmdet's (256, none)."""
    neck = cfg.model.neck
    found = {
        "levels": list(cfg.model.backbone.out_indices),
        "start_level": neck.get("start_level", 0),
        "add_extra_convs": neck.get("add_extra_convs", False),
        "num_outs": neck.num_outs,
    }
    if neck.out_channels != 256:
        found["channels"] = neck.out_channels
    if neck.get("norm_cfg"):
        found["norm"] = neck.norm_cfg["type"]
    return found


def _retinanet_head(cfg) -> str | dict:
    """`retinanet` for mmdet's RetinaHead; `retinanet-<C>ch-<N>conv[-<norm>]` for a slimmer tower of the same head."""
    head = _plain(cfg.model.bbox_head)
    shape = (head["type"], head["anchor_generator"], head["loss_cls"], head["loss_bbox"])
    want = (
        "RetinaHead",
        dict(
            type="AnchorGenerator",
            octave_base_scale=4,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
        ),
        dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        dict(type="L1Loss", loss_weight=1.0),
    )
    if shape != want or head["in_channels"] != head["feat_channels"]:
        return {"unrecognised head": head}
    tower = (head["feat_channels"], head["stacked_convs"], (head.get("norm_cfg") or {}).get("type"))
    if tower == (256, 4, None):
        return "retinanet"
    return f"retinanet-{tower[0]}ch-{tower[1]}conv" + (f"-{tower[2].lower()}" if tower[2] else "")


def _no_decay(optim_wrapper) -> dict:
    if optim_wrapper.get("constructor") == LAYER_DECAY_CONSTRUCTOR:
        return {"rule": "timm-layer-decay"}
    paramwise = _plain(optim_wrapper.get("paramwise_cfg") or {})
    found: dict = {}
    custom = paramwise.pop("custom_keys", {})
    if any(set(rule) != {"decay_mult"} or rule["decay_mult"] != 0 for rule in custom.values()):
        return {"unexpected custom_keys": custom}
    if custom:
        found["custom_keys"] = sorted(custom)
    if "norm_decay_mult" in paramwise:
        found["norm_decay_mult"] = paramwise.pop("norm_decay_mult")
    if paramwise:
        found["other paramwise_cfg"] = paramwise
    return found


def config_settings(cfg) -> dict[str, Any]:
    """A resolved config (mmengine Config) read into the table's value shapes, one entry per setting."""
    wrapper = cfg.optim_wrapper
    optimizer = wrapper.optimizer
    masks = "roi_head" in cfg.model
    warmups = [s for s in cfg.param_scheduler if s.type == "LinearLR"]
    steps = [s for s in cfg.param_scheduler if s.type == "MultiStepLR"]
    loop = cfg.train_cfg
    length = {"epochs": loop.max_epochs} if loop.type == "EpochBasedTrainLoop" else {"iters": loop.max_iters}
    neck = cfg.model.neck
    paramwise = wrapper.get("paramwise_cfg") or {}
    settings = {
        "optimizer": optimizer.type,
        "lr": optimizer.lr,
        "momentum_betas": (
            list(optimizer.get("betas", (0.9, 0.999)))
            if optimizer.type in ("Adam", "AdamW")
            else optimizer.get("momentum", 0.0)
        ),
        "weight_decay": optimizer.get("weight_decay", 0.0),
        "no_decay": _no_decay(wrapper),
        "layer_decay": (
            {"rate": paramwise["decay_rate"], "num_layers": paramwise["num_layers"]}
            if wrapper.get("constructor") == LAYER_DECAY_CONSTRUCTOR
            and paramwise.get("decay_type", "layer_wise") == "layer_wise"
            else None
            if wrapper.get("constructor") is None
            else {"constructor": wrapper.constructor}
        ),
        "grad_clip": _plain(wrapper.get("clip_grad")),
        "amp": wrapper.type == "AmpOptimWrapper",
        "length": length,
        # one linear warm-up by iteration from 0.001, and one x0.1 step schedule over the whole run
        "warmup": (
            warmups[0].end
            if len(warmups) == 1
            and warmups[0].start_factor == 0.001
            and not warmups[0].by_epoch
            and warmups[0].begin == 0
            else [_plain(s) for s in warmups]
        ),
        "steps": (
            list(steps[0].milestones)
            if len(steps) == 1
            and steps[0].gamma == 0.1
            and steps[0].begin == 0
            and steps[0].end == next(iter(length.values()))
            and steps[0].by_epoch == ("epochs" in length)
            else [_plain(s) for s in steps]
        ),
        "batch": {"total": cfg.auto_scale_lr.base_batch_size, "per_gpu": cfg.train_dataloader.batch_size},
        "train_pipeline": _name_of(cfg.train_dataloader.dataset.pipeline, canonical_train_pipelines(masks)),
        "test_pipeline": (
            _name_of(cfg.test_dataloader.dataset.pipeline, canonical_test_pipelines(masks))
            if _plain(cfg.val_dataloader.dataset.pipeline) == _plain(cfg.test_dataloader.dataset.pipeline)
            else "val and test pipelines differ"
        ),
        "drop_path": cfg.model.backbone.drop_path_rate,
        "frozen_stages": cfg.model.backbone.frozen_stages,
        "norm_eval": cfg.model.backbone.norm_eval,
        "neck": _fpn(cfg) if neck.type == "FPN" else _plain(neck),
        "heads": _cascade_heads(cfg) if masks else _retinanet_head(cfg),
    }
    assert set(settings) == set(SETTINGS)
    return settings


# ------------------------------------------------------------------------------------------ rendering


def _sci(value: float) -> str:
    if value and abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}"


PIPELINE_TEXT = {
    "ms-crop": "multi-scale: short side 480-800 (step 32), or 400/500/600 then a 384-600 crop then 480-800; flip",
    "1333x800": "1333x800, flip",
    "192x160": "192x160, flip",
    "192x160-noflip": "192x160, no flip (two demo classes are mirror images)",
}
HEADS_TEXT = {
    "cascade-4conv1fc-giou-syncbn": "3 stages of 4conv1fc box heads (SyncBN, class-specific, GIoU x10 on decoded "
    "boxes); 4-conv mask head",
    "cascade-4conv1fc-giou-bn": "as the real Cascade heads, BatchNorm",
    "cascade-4conv1fc-giou-bn-64ch-fc256": "as the real Cascade heads with 64 channels (fc 256), BatchNorm",
    "retinanet-64ch-2conv-gn": "RetinaHead with 2 convs of 64 channels and GroupNorm (focal loss, L1)",
    "retinanet": "RetinaHead (4 convs, focal loss, L1)",
}


def value_text(setting: str, value: Any) -> str:
    if setting in ("lr", "weight_decay"):
        return _sci(value)
    if setting == "momentum_betas":
        return f"betas ({value[0]}, {value[1]})" if isinstance(value, list) else f"momentum {value}"
    if setting == "no_decay":
        if not value:
            return "nothing (every parameter decays)"
        if value.get("rule") == "timm-layer-decay":
            return "1-d tensors (norms, layer scales), biases, position/class tokens"
        parts = ["norm layers"] if value.get("norm_decay_mult") == 0 else []
        parts += ["names containing " + ", ".join(f"`{k}`" for k in value.get("custom_keys", []))]
        return "; ".join(parts)
    if setting == "layer_decay":
        return "none" if value is None else f"{value['rate']} over {value['num_layers']}"
    if setting in ("grad_clip",):
        return "none" if value is None else str(value)
    if setting in ("amp", "norm_eval"):
        return "yes" if value else "no"
    if setting == "length":
        return f"{value['epochs']} epochs" if "epochs" in value else f"{value['iters']} iterations"
    if setting == "warmup":
        return f"{value} it."
    if setting == "steps":
        return ", ".join(str(s) for s in value)
    if setting == "batch":
        if value["total"] == value["per_gpu"]:
            return f"{value['total']} (one process)"
        return f"{value['total']} ({value['total'] // value['per_gpu']} GPUs x {value['per_gpu']})"
    if setting == "train_pipeline":
        return PIPELINE_TEXT[value]
    if setting == "test_pipeline":
        return f"{value}, no flip"
    if setting == "frozen_stages":
        return "none" if value < 0 else "stem" if value == 0 else f"stem + {value} stage" + "s" * (value > 1)
    if setting == "neck":
        levels = value["levels"]
        text = f"levels {levels[0]}-{levels[-1]}, {value['num_outs']} outputs"
        extra = value["add_extra_convs"]
        text += (
            ", 2 extra convs on the last level"
            if extra == "on_input"
            else f", extra convs {extra}"
            if extra
            else ", max-pool P6"
        )
        width = f", {value['channels']} channels" if "channels" in value else ""
        return text + width + (f", {value['norm']}" if "norm" in value else "")
    if setting == "heads":
        return HEADS_TEXT[value]
    return str(value)


def _label(backbone: str) -> str:
    size = backbone.rsplit("-", 1)[-1]
    return size.upper() if len(size) == 1 else size


def render_tables(table: dict) -> str:
    source_ids = list(table["sources"])
    inference_ids = list(table["inferences"])
    letter = {key: chr(ord("a") + i) for i, key in enumerate(inference_ids)}

    def refs(entry: dict) -> str:
        text = ""
        if entry.get("src"):
            text += " [" + ",".join(str(source_ids.index(s) + 1) for s in entry["src"]) + "]"
        if entry.get("inferred"):
            text += f" *inferred ({letter[entry['inferred']]})*"
        return text

    def cell(family: dict, setting: str) -> str:
        entry = family["settings"][setting]
        if "by_backbone" in entry:
            values = entry["by_backbone"]
            if len({repr(v) for v in values.values()}) == 1:
                body = value_text(setting, next(iter(values.values())))
            else:
                body = ", ".join(f"{_label(k)}: {value_text(setting, v)}" for k, v in values.items())
        else:
            body = value_text(setting, entry["value"])
        return (body + refs(entry)).replace("|", "\\|")

    lines = []
    for title, settings in TABLES:
        lines += [
            f"### {title}",
            "",
            "| family | " + " | ".join(HEADINGS[s] for s in settings) + " |",
            "|---" * (len(settings) + 1) + "|",
        ]
        for family_id, family in table["families"].items():
            name = f"**{family['title']}** (`{family_id}`)"
            if family.get("inferred"):
                name += f" *inferred ({letter[family['inferred']]})*"
            lines.append(f"| {name} | " + " | ".join(cell(family, s) for s in settings) + " |")
        lines.append("")
    lines += [
        "### Families and their configs",
        "",
        "| family | configs (`det_configs/...`) | backbones (timm) | curricula |",
        "|---|---|---|---|",
    ]
    for family_id, family in table["families"].items():
        pattern = family["config"].replace("{backbone}", "{" + ",".join(family["backbones"]) + "}")
        lines.append(
            f"| `{family_id}` | `{pattern}_<curriculum>.py` | "
            + ", ".join(f"`{n}`" for n in family["backbones"].values())
            + " | "
            + ", ".join(_curricula_cell(family))
            + " |"
        )
    lines += ["", "### Sources", ""]
    for i, key in enumerate(source_ids, start=1):
        source = table["sources"][key]
        commit = f" @ {str(source['commit'])[:10]}" if source.get("commit") else ""
        where = source.get("ref") or f"{source['repo']}{commit}, `{source['path']}`"
        says = f" ({source['says']})" if source.get("says") else ""
        lines.append(f"{i}. `{key}`: {where}{says}")
    lines += ["", "### Inferred values: from what, and why", ""]
    for key in inference_ids:
        lines.append(f"- ({letter[key]}) `{key}`: {table['inferences'][key]}")
    return "\n".join(lines) + "\n"


def render_document(document: str, table: dict) -> str:
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{render_tables(table)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite the tables of det_configs/RECIPES.md")
    group.add_argument("--check", action="store_true", help="exit 1 if they are not current")
    args = parser.parse_args(argv)
    document = DOCUMENT.read_text(encoding="utf-8")
    rendered = render_document(document, load_table())
    if args.write:
        DOCUMENT.write_text(rendered, encoding="utf-8")
        return 0
    if rendered != document:
        print(f"{DOCUMENT} is not the rendering of {TABLE}: run python tests/recipe_table.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
