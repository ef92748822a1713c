"""`tools/convert_checkpoint.py`: a pretraining/release checkpoint as a clean timm-layout state dict + provenance.

    python tools/convert_checkpoint.py SRC [DST] [--hub-dir OUT] [--model NAME] [--ema | --no-ema] [--model-kwargs JSON]

SRC: anything `TimmBackbone(checkpoint=...)` accepts (backbones.checkpoint_bridge). DST `.pth` gets
`{"format": "efficienttrain-det/pretrain-v1", "model": <timm state dict>, "provenance": <source's or null>,
"converted_from": {"checkpoint", "sha256", "weights", "layout"}}`; DST `.safetensors` gets the tensors, with the
provenance as JSON in the file's metadata. Keys are renamed by timm's family filter (e.g. Facebook
ConvNeXt), every backbone tensor is checked, tensors the timm model does not have are dropped. Tensors
that depend on the input size are left at the size that the timm model built from NAME + kwargs expects.
The model defaults to the provenance's `model_name`/`model_kwargs`. Bad input: one line, exit code 2.

`--hub-dir OUT` writes the folder timm users share weights as (timm's own `save_for_hf`): `OUT/model.safetensors`
and `OUT/config.json` with `architecture`, `num_classes`, `model_args` and a `pretrained_cfg` holding the input
size, mean/std, crop and interpolation the model was evaluated at (the provenance's `data_config`; timm's defaults
for a file without one), plus `provenance` and `converted_from`. `timm.create_model('local-dir:OUT',
pretrained=True)` reads it (after importing the module of a model of your own: the provenance's `imports`). The
folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import timm

from backbones.checkpoint_bridge import (
    expected_backbone_shapes,
    match_state_dict,
    read_source_checkpoint,
    to_timm_layout,
)
from etcore.checkpoint_io import save_atomic
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_FORMAT, TIMM_STATE_DICT_FORMAT
from etcore.paths import check_writable_dir


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="tools/convert_checkpoint.py", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="checkpoint to convert (.pth/.pt/.bin/.safetensors)")
    parser.add_argument("dst", nargs="?", help="output file: .pth or .safetensors (optional with --hub-dir)")
    parser.add_argument(
        "--hub-dir",
        metavar="OUT",
        help="also (or only) write a timm hub-style folder: OUT/config.json (pretrained_cfg, provenance) and "
        "OUT/model.safetensors, loadable with timm.create_model('local-dir:OUT', pretrained=True)",
    )
    parser.add_argument("--model", help="timm model name (default: the provenance's model_name)")
    parser.add_argument(
        "--model-kwargs",
        default="{}",
        help="JSON kwargs for timm.create_model, e.g. "
        '\'{"img_size": 160, "window_size": 5}\' (added to the provenance\'s model_kwargs)',
    )
    ema = parser.add_mutually_exclusive_group()
    ema.add_argument(
        "--ema",
        dest="weights",
        action="store_const",
        const="model_ema",
        help="take the EMA weights (error if the checkpoint has none)",
    )
    ema.add_argument(
        "--no-ema", dest="weights", action="store_const", const="model", help="take the trained (non-EMA) weights"
    )
    parser.add_argument(
        "--allow-missing", nargs="*", default=[], metavar="REGEX", help="backbone keys that may be absent from SRC"
    )
    parser.set_defaults(weights="auto")
    return parser.parse_args(argv)


def _model_kwargs(args: argparse.Namespace, provenance: dict | None) -> dict:
    try:
        extra = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"--model-kwargs {args.model_kwargs!r} is not JSON ({err}): pass e.g. '{{\"img_size\": 160}}'"
        ) from None
    if not isinstance(extra, dict):
        raise UserInputError(f"--model-kwargs {args.model_kwargs!r} must be a JSON object")
    kwargs = dict((provenance or {}).get("model_kwargs") or {})
    kwargs.update(extra)
    return kwargs


def _write(dst: Path, state_dict: dict, provenance: dict | None, converted_from: dict) -> None:
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = {
            "format": TIMM_STATE_DICT_FORMAT,
            "provenance": json.dumps(provenance),
            "converted_from": json.dumps(converted_from),
        }
        save_atomic(state_dict, dst, writer=lambda obj, tmp: save_file(obj, tmp, metadata=metadata))
    else:
        save_atomic(
            {
                "format": PRETRAIN_FORMAT,
                "model": state_dict,
                "provenance": provenance,
                "converted_from": converted_from,
            },
            dst,
        )


HUB_FILES = ("config.json", "model.safetensors")


def check_hub_dir(out: Path) -> None:
    """`out` may be new, empty, or an earlier export (which is replaced); anything else is refused."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--hub-dir {out} is a file: give a folder")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in HUB_FILES)
        if others:
            raise UserInputError(
                f"--hub-dir {out} holds other files ({', '.join(others[:3])}): give a new or empty folder, "
                "or an earlier export to replace"
            )
    check_writable_dir(out, "--hub-dir")


def write_hub_dir(
    out: Path, model_name: str, kwargs: dict, state_dict: dict, provenance: dict | None, converted_from: dict
) -> None:
    """timm's hub folder for the whole model (`save_for_hf`), written beside `out` and renamed into place."""
    from timm.data import resolve_data_config
    from timm.models import save_for_hf

    model = timm.create_model(model_name, pretrained=False, **kwargs)
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise UserInputError(
            f"--hub-dir: {converted_from['checkpoint']} lacks {shown} of {model_name}: a hub folder holds the whole "
            "model (its head too); export a checkpoint that has them, or write only DST"
        )
    data_config = (provenance or {}).get("data_config") or {
        k: v for k, v in resolve_data_config({}, model=model).items() if k in ("input_size", "mean", "std")
    }
    extra = {"provenance": provenance, "converted_from": converted_from}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        save_for_hf(model.eval(), str(staging), model_config=extra, safe_serialization=True, data_config=data_config)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def main(argv: Sequence[str] | None = None) -> int:
    """Read SRC through the checkpoint bridge, check every backbone key, write DST atomically."""
    args = parse_args(argv)
    if args.dst is None and args.hub_dir is None:
        raise UserInputError("give DST (a .pth or .safetensors file), --hub-dir OUT, or both")
    dst = None if args.dst is None else Path(args.dst)
    if dst is not None and dst.suffix not in (".pth", ".pt", ".safetensors"):
        raise UserInputError(f"DST {dst} must end in .pth, .pt or .safetensors")
    if dst is not None and dst.resolve() == Path(args.src).resolve():
        raise UserInputError(f"DST {dst} is the source file: write the converted checkpoint elsewhere")
    hub_dir = None if args.hub_dir is None else Path(args.hub_dir)
    if hub_dir is not None:
        check_hub_dir(hub_dir)
    source = read_source_checkpoint(args.src, args.weights)
    model_name = args.model or (source.provenance or {}).get("model_name")
    if not model_name:
        raise UserInputError(f"{args.src} has no provenance naming its model: pass --model <timm name>")
    if not timm.is_model(model_name):
        raise UserInputError(f"--model {model_name!r} is not a timm model: use a name from timm.list_models()")
    kwargs = _model_kwargs(args, source.provenance)
    try:
        reference, expected = expected_backbone_shapes(model_name, kwargs)
    except TypeError as err:
        raise UserInputError(
            f"timm rejected the model kwargs {kwargs} for {model_name} ({err}): fix --model-kwargs"
        ) from None
    state_dict = to_timm_layout(source.state_dict, model_name, reference, source.path)
    report = match_state_dict(state_dict, expected, args.allow_missing, source.path, model_name)
    known = reference.state_dict()
    clean = {k: v.detach().contiguous().clone() for k, v in state_dict.items() if k in known}
    dropped = sorted(k for k in state_dict if k not in known)
    converted_from = {
        "checkpoint": source.path,
        "sha256": source.sha256,
        "weights": source.weights,
        "layout": source.layout,
    }
    if hub_dir is not None:  # first: a model the folder cannot hold whole leaves DST unwritten too
        write_hub_dir(hub_dir, model_name, kwargs, clean, source.provenance, converted_from)
        print(f"wrote {hub_dir}/: config.json and model.safetensors ({model_name}, {len(clean)} tensors)")
    if dst is None:
        return 0
    _write(dst, clean, source.provenance, converted_from)
    print(
        f"wrote {dst}: {len(clean)} tensors for {model_name} ({report.loaded} backbone tensors checked, "
        f"{len(clean) - report.loaded} head/other kept, {len(dropped)} unknown dropped"
        f"{': ' + ', '.join(dropped[:5]) if dropped else ''}) from {source.path} [{source.weights}]"
        + (f", layout {source.layout}" if source.layout else "")
    )
    return 0
