"""Read any supported checkpoint into timm layout and load it into a TimmBackbone, checking every key.

Accepted files (read only through `etcore.checkpoint_io.load_checkpoint_file`):
* this project's pretraining checkpoints (docs/FORMATS.md, `format: efficienttrain-det/pretrain-v1`);
* plain timm state dicts, `.pth` or `.safetensors`;
* release wrappers `{'model': ...}`, `{'state_dict': ...}`, `{'model_ema': ...}` (EfficientTrain, DeiT,
  ConvNeXt, Swin), keys prefixed `module.` / `backbone.` (an mmdet detector checkpoint keeps only its
  backbone), and TimmBackbone's own feature-net layout;
* the training checkpoints of the official codes, as they are (`OFFICIAL_LAYOUTS`): EfficientTrain's and
  ConvNeXt's `save_model`, DeiT's `main.py`, Swin's `save_checkpoint`. Their optimizer, scheduler, scaler,
  `args`/`config`, epoch and accuracy entries are read safely (etcore.compat) and then ignored; the
  record's `layout` names the code that wrote the file;
* foreign layouts that timm's family filter (`checkpoint_filter_fn`) knows, e.g. Facebook ConvNeXt.

Which weights (`weights='auto'`): with both `model` and `model_ema` present, the EMA weights unless the
pretraining provenance records a higher `final_top1` than `ema_top1` (EMA is only on where the recipe
uses it and reports it, e.g. ConvNeXt; a short run whose EMA lags is caught by its own numbers).
An official training checkpoint has no such numbers: there `auto` takes the weights its code evaluated,
`model`, or `model_ema` where its `args` say the EMA was evaluated too (ConvNeXt/EfficientTrain
`--model_ema_eval true`). DeiT stores an EMA it never evaluates, so its `model` is the DeiT result.

Resizing for the detection model happens in timm's filters: ViT `pos_embed` (resample_abs_pos_embed),
Swin relative-position tables for the window in use, patch-embed kernels. Classifier heads and other
keys the backbone does not use are dropped and counted. A missing or mis-shaped backbone key is a
`UserInputError` naming the keys, unless it matches `allow_missing`.

The bridge only reads and checks: `read_backbone_weights` returns renamed, checked tensors and the
provenance record; `TimmBackbone.init_weights` loads them and keeps the record. Only the timm network
(`TimmBackbone.body`) is read from a checkpoint. The layers TimmBackbone adds for
detection, the output norms `norm{i}` (`backbones.out_norms`) and ViT's simple pyramid, are new: never
asked of a checkpoint (also not of a detector checkpoint that has them), kept at their init, and named as
new in the log.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from timm.models import model_entrypoint
from torch import nn

from backbones.timm_features import create_on_meta
from etcore.checkpoint_io import file_sha256, load_checkpoint_file, read_safetensors_metadata
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_FORMAT

WRAPPER_KEYS = ("state_dict", "model", "model_ema", "state_dict_ema", "module")
STRIP_PREFIXES = ("module.", "_orig_mod.")
BACKBONE_OWN_LAYERS = re.compile(r"^(?:body|pyramid|norm\d+)\.")  # a TimmBackbone's state-dict keys
ALWAYS_OPTIONAL = (r"(^|\.)num_batches_tracked$",)  # BatchNorm step counter, not a weight
MAX_LISTED_KEYS = 8


@dataclass
class SourceCheckpoint:
    """A checkpoint file unwrapped to one flat state dict, with where it came from."""

    path: str
    sha256: str
    weights: str  # 'model' | 'model_ema'
    state_dict: dict[str, torch.Tensor]
    provenance: dict | None  # pretraining provenance (docs/FORMATS.md) or None
    notes: list[str] = field(default_factory=list)
    layout: str | None = None  # the recognised checkpoint layout (`recognise_layout`), None for other files

    def record(self) -> dict:
        """The `pretrain_provenance.json` dict of docs/FORMATS.md."""
        return {
            "checkpoint": self.path,
            "sha256": self.sha256,
            "weights": self.weights,
            "layout": self.layout,
            "provenance": self.provenance,
        }


# ------------------------------------------------------------------- official training checkpoints
@dataclass(frozen=True)
class OfficialLayout:
    """The top-level keys one official training code writes into its checkpoints (`keys` always)."""

    name: str
    keys: frozenset[str]
    optional: frozenset[str] = frozenset()

    def matches(self, container: dict) -> bool:
        return self.keys <= set(container) <= self.keys | self.optional


# Surveyed from the codes themselves (docs/FORMATS.md, the `layout` table; docs/RELIABILITY.md).
OFFICIAL_LAYOUTS = (
    # ConvNeXt utils.save_model; EfficientTrain's utils.save_model (ICCV) and utils_buffer.save_model (++)
    # are copies of it, told apart by their args below.
    OfficialLayout(
        "convnext/utils.save_model",
        frozenset({"model", "optimizer", "epoch", "scaler", "args"}),
        frozenset({"model_ema"}),
    ),
    # DeiT main.py (the 2020 version had no 'scaler')
    OfficialLayout(
        "deit/main.py",
        frozenset({"model", "optimizer", "lr_scheduler", "epoch", "model_ema", "args"}),
        frozenset({"scaler"}),
    ),
    # Swin utils.save_checkpoint ('amp': apex's loss-scaler state in the 2021 version, 'scaler' since 2022)
    OfficialLayout(
        "swin/utils.save_checkpoint",
        frozenset({"model", "optimizer", "lr_scheduler", "max_accuracy", "epoch", "config"}),
        frozenset({"scaler", "amp"}),
    ),
)
# EfficientTrain's main.py (ICCV) and main_buffer.py (++) add these options to ConvNeXt's command line
EFFICIENTTRAIN_ARGS = ("end_epoch", "base_input_size")
EFFICIENTTRAIN_PP_ARGS = ("replay_buffer_size",)


def recognise_layout(container: dict) -> str | None:
    """The name of the official training code that wrote `container`, this project's format, or None."""
    if container.get("format") == PRETRAIN_FORMAT:
        return PRETRAIN_FORMAT
    layout = next((layout for layout in OFFICIAL_LAYOUTS if layout.matches(container)), None)
    if layout is None:
        return None
    args = container.get("args")
    if layout.name.startswith("convnext/") and all(hasattr(args, a) for a in EFFICIENTTRAIN_ARGS):
        if all(hasattr(args, a) for a in EFFICIENTTRAIN_PP_ARGS):
            return "efficienttrain/utils_buffer.save_model"
        return "efficienttrain/utils.save_model"
    return layout.name


def official_evaluated_weights(layout: str | None, container: dict) -> str | None:
    """For an official training checkpoint: the weights its code evaluated (module docstring), else None."""
    if layout is None or layout == PRETRAIN_FORMAT:
        return None
    if layout.startswith(("convnext/", "efficienttrain/")) and getattr(container.get("args"), "model_ema_eval", False):
        return "model_ema"
    return "model"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def choose_weights(
    container: dict, weights: str, provenance: dict | None, path: str, evaluated: str | None = None
) -> str:
    """Pick 'model' or 'model_ema' from a container holding one or both (rule in the module docstring).

    `evaluated`: the weights an official training code evaluated (`official_evaluated_weights`), which
    `auto` takes when the file holds both.
    """
    if weights not in ("auto", "model", "model_ema"):
        raise UserInputError(f"weights={weights!r}: use 'auto', 'model' or 'model_ema'")
    has = {k for k in ("model", "model_ema") if isinstance(container.get(k), dict) and container[k]}
    if weights != "auto":
        if weights not in has:
            raise UserInputError(
                f"checkpoint {path} has no {weights!r} weights (it has {sorted(has) or 'none'}): "
                "set weights='auto' or pick one it has"
            )
        return weights
    if has == {"model"} or not has:
        return "model"
    if has == {"model_ema"}:
        return "model_ema"
    if evaluated in has and not provenance:
        return evaluated
    prov = provenance or {}
    final, ema = prov.get("final_top1"), prov.get("ema_top1")
    if isinstance(final, (int, float)) and isinstance(ema, (int, float)) and final > ema:
        return "model"
    return "model_ema"


def _strip_prefixes(state_dict: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    out = dict(state_dict)
    for prefix in STRIP_PREFIXES:
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    if any(k.startswith("backbone.") for k in out):  # mmdet detector: keep the backbone only
        others = [k for k in out if not k.startswith("backbone.")]
        if others:
            notes.append(f"kept the backbone of a detector checkpoint, dropped {len(others)} neck/head tensors")
        out = {k[len("backbone.") :]: v for k, v in out.items() if k.startswith("backbone.")}
        if all(BACKBONE_OWN_LAYERS.match(k) for k in out):  # saved from a TimmBackbone
            out = {k[len("body.") :]: v for k, v in out.items() if k.startswith("body.")}
    return out


def _safetensors_provenance(path: str) -> dict | None:
    """Provenance that tools/convert_checkpoint.py stored as JSON in a safetensors header, if any."""
    text = read_safetensors_metadata(path).get("provenance")
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_source_checkpoint(path: str | Path, weights: str = "auto") -> SourceCheckpoint:
    """Load `path` and unwrap it to one state dict (see module docstring)."""
    path = str(path)
    obj = load_checkpoint_file(path)
    if not isinstance(obj, dict):
        raise UserInputError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state dict: "
            "save model.state_dict() (or convert it with tools/convert_checkpoint.py)"
        )
    notes: list[str] = []
    provenance = obj.get("provenance") if isinstance(obj.get("provenance"), dict) else None
    if provenance is None:
        provenance = _safetensors_provenance(path)
    layout = recognise_layout(obj)
    if layout not in (None, PRETRAIN_FORMAT):
        ignored = sorted(k for k in obj if k not in ("model", "model_ema"))
        notes.append(f"recognised a {layout} checkpoint; ignored its training state ({', '.join(ignored)})")
    if obj.get("format") == PRETRAIN_FORMAT or "model" in obj or "model_ema" in obj:
        chosen = choose_weights(obj, weights, provenance, path, official_evaluated_weights(layout, obj))
        state_dict = obj.get(chosen)
    else:
        chosen, state_dict = "model", obj
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and not _is_state_dict(obj):
                state_dict = obj[key]
                notes.append(f"unwrapped {key!r}")
                break
        if weights == "model_ema":
            raise UserInputError(f"checkpoint {path} has no 'model_ema' weights: set weights='auto' or 'model'")
    tensors = {k: v for k, v in (state_dict or {}).items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserInputError(
            f"checkpoint {path} holds no tensors (top-level keys: {sorted(obj)[:8]}): "
            "point checkpoint= at a model state dict or a pretraining final.pth"
        )
    return SourceCheckpoint(path, file_sha256(path), chosen, _strip_prefixes(tensors, notes), provenance, notes, layout)


# ------------------------------------------------------------------------------- layout and matching
def feature_to_full_keys(feature_keys: Sequence[str], full_keys: Sequence[str]) -> dict[str, str]:
    """Map timm features_only key names to the classifier's (`stages_0.x` -> `stages.0.x`, `model.x` -> `x`).

    timm's FeatureListNet flattens the first level of nn.Sequential containers into `a_b` names and
    FeatureGetterNet wraps the model as `model`; the modules (and shapes) are otherwise the same.
    """
    full = set(full_keys)
    flattened = {k.replace(".", "_", 1): k for k in full_keys if k.count(".") >= 2}
    mapping = {}
    for key in feature_keys:
        if key in full:
            mapping[key] = key
        elif key.startswith("model.") and key[len("model.") :] in full:
            mapping[key] = key[len("model.") :]
        elif key in flattened:
            mapping[key] = flattened[key]
        else:
            raise RuntimeError(f"bug: feature key {key} has no counterpart in the timm model")
    return mapping


def _family_filter(model_name: str):
    """timm's `checkpoint_filter_fn` of the module defining `model_name`, or None."""
    module = sys.modules.get(model_entrypoint(model_name).__module__)
    return getattr(module, "checkpoint_filter_fn", None)


def _from_feature_layout(state_dict: dict[str, torch.Tensor], full_keys: list[str]) -> dict[str, torch.Tensor]:
    """Rename TimmBackbone feature-net keys (`layers_0.x`, ViT `model.x`) to the classifier layout."""
    full = set(full_keys)
    if not any(k not in full for k in state_dict):
        return state_dict
    flattened = {k.replace(".", "_", 1): k for k in full_keys if k.count(".") >= 2}
    renamed = {}
    for key, value in state_dict.items():
        if key not in full and key in flattened:
            key = flattened[key]
        elif key not in full and key.startswith("model.") and key[len("model.") :] in full:
            key = key[len("model.") :]
        renamed[key] = value
    return renamed


def to_timm_layout(
    state_dict: dict[str, torch.Tensor], model_name: str, reference: nn.Module, source: str
) -> dict[str, torch.Tensor]:
    """Bring a state dict into the key layout and shapes of `reference` (a full timm model, may be on meta)."""
    state_dict = _from_feature_layout(dict(state_dict), list(reference.state_dict()))
    filter_fn = _family_filter(model_name)
    if filter_fn is None:
        return state_dict
    try:
        return filter_fn(state_dict, reference)
    except (KeyError, AttributeError, RuntimeError, ValueError, IndexError, TypeError) as err:
        raise UserInputError(
            f"checkpoint {source} does not fit timm model {model_name!r} (timm's filter "
            f"failed: {type(err).__name__}: {err}): check model_name against the checkpoint"
        ) from None


def _listed(keys: Sequence[str]) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return ", ".join(keys[:MAX_LISTED_KEYS]) + more


@dataclass
class MatchReport:
    loaded: int
    allowed_missing: list[str]
    dropped: list[str]


def match_state_dict(
    state_dict: dict[str, torch.Tensor],
    expected: dict[str, torch.Size],
    allow_missing: Sequence[str],
    source: str,
    model_name: str,
) -> MatchReport:
    """Check `state_dict` (timm layout) against the `expected` backbone shapes; raise on any gap.

    Every expected key must be present with its shape, except keys matching `allow_missing` regexes (and
    BatchNorm's `num_batches_tracked`). Keys not expected (classifier head, final norm, pruned stages)
    are reported as dropped.
    """
    optional = [re.compile(p) for p in (*ALWAYS_OPTIONAL, *allow_missing)]
    missing = [k for k in expected if k not in state_dict]
    found = len(expected) - len(missing)
    if found < len(expected) / 2:
        sample = _listed(sorted(state_dict)[:3])
        raise UserInputError(
            f"checkpoint {source} is not a {model_name} checkpoint: only {found} of "
            f"{len(expected)} backbone tensors found (its keys look like {sample}): "
            "set model_name (and its kwargs) to the architecture that was trained"
        )
    allowed = [k for k in missing if any(p.search(k) for p in optional)]
    missing = [k for k in missing if k not in allowed]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(shape)}"
        for k, shape in expected.items()
        if k in state_dict and state_dict[k].shape != shape
    ]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing backbone keys: {_listed(missing)}")
        if wrong:
            parts.append(f"wrong shapes: {_listed(wrong)}")
        raise UserInputError(
            f"checkpoint {source} does not match {model_name}: {'; '.join(parts)}: fix "
            "model_name/kwargs, or list keys that may be absent in allow_missing=(regex, ...)"
        )
    dropped = sorted(k for k in state_dict if k not in expected)
    return MatchReport(found, [k for k in allowed if "num_batches_tracked" not in k], dropped)


def expected_backbone_shapes(model_name: str, timm_kwargs: dict) -> tuple[nn.Module, dict[str, torch.Size]]:
    """(meta reference classifier, {timm key: shape} of every tensor a full-depth feature net uses)."""
    reference = create_on_meta(model_name, **timm_kwargs)
    net = create_on_meta(model_name, features_only=True, out_indices=1, **timm_kwargs)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    to_full = feature_to_full_keys(list(shapes), list(reference.state_dict()))
    return reference, {to_full[k]: shape for k, shape in shapes.items()}


@dataclass
class CheckedWeights:
    """A checkpoint's backbone tensors in timm layout, every expected key present with its shape."""

    state_dict: dict[str, torch.Tensor]  # timm classifier layout (keys of `expected` and unused extras)
    report: MatchReport
    source: SourceCheckpoint

    def summary(self, model_name: str) -> str:
        """One log line: what was loaded, dropped and kept at init."""
        report, source = self.report, self.source
        return (
            f"TimmBackbone({model_name}): loaded {report.loaded} tensors from {source.path} [{source.weights}], "
            f"dropped {len(report.dropped)} unused (e.g. {_listed(report.dropped[:3]) or '-'})"
            + (f", kept init for allowed-missing {_listed(report.allowed_missing)}" if report.allowed_missing else "")
            + (f"; {'; '.join(source.notes)}" if source.notes else "")
        )


def read_backbone_weights(
    path: str | Path,
    model_name: str,
    reference: nn.Module,
    expected: dict[str, torch.Size],
    weights: str = "auto",
    allow_missing: Sequence[str] = (),
) -> CheckedWeights:
    """Read `path`, rename it to `reference`'s timm layout and check it against the `expected` shapes.

    A pure function of the file and the model description: it loads nothing into a module. Raises
    `UserInputError` naming the keys when a backbone tensor is missing or mis-shaped.
    """
    source = read_source_checkpoint(path, weights)
    state_dict = to_timm_layout(source.state_dict, model_name, reference, source.path)
    report = match_state_dict(state_dict, expected, allow_missing, source.path, model_name)
    return CheckedWeights(state_dict, report, source)
