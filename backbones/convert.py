"""`tools/convert_checkpoint.py`: a pretraining/release checkpoint as a clean timm-layout state dict + provenance.

    python tools/convert_checkpoint.py SRC DST [--model NAME] [--ema | --no-ema] [--model-kwargs JSON]

SRC: anything `TimmBackbone(checkpoint=...)` accepts (backbones.checkpoint_bridge). DST `.pth` gets
`{"format": "efficienttrain-det/pretrain-v1", "model": <timm state dict>, "provenance": <source's or null>,
"converted_from": {"checkpoint", "sha256", "weights", "layout"}}`; DST `.safetensors` gets the tensors, with the
provenance as JSON in the file's metadata. Keys are renamed by timm's family filter (e.g. Facebook
ConvNeXt), every backbone tensor is checked, tensors the timm model does not have are dropped. Tensors
that depend on the input size are left at the size that the timm model built from NAME + kwargs expects.
The model defaults to the provenance's `model_name`/`model_kwargs`. Bad input: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="tools/convert_checkpoint.py", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="checkpoint to convert (.pth/.pt/.bin/.safetensors)")
    parser.add_argument("dst", help="output file: .pth or .safetensors")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Read SRC through the checkpoint bridge, check every backbone key, write DST atomically."""
    args = parse_args(argv)
    dst = Path(args.dst)
    if dst.suffix not in (".pth", ".pt", ".safetensors"):
        raise UserInputError(f"DST {dst} must end in .pth, .pt or .safetensors")
    if dst.resolve() == Path(args.src).resolve():
        raise UserInputError(f"DST {dst} is the source file: write the converted checkpoint elsewhere")
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
    _write(dst, clean, source.provenance, converted_from)
    print(
        f"wrote {dst}: {len(clean)} tensors for {model_name} ({report.loaded} backbone tensors checked, "
        f"{len(clean) - report.loaded} head/other kept, {len(dropped)} unknown dropped"
        f"{': ' + ', '.join(dropped[:5]) if dropped else ''}) from {source.path} [{source.weights}]"
        + (f", layout {source.layout}" if source.layout else "")
    )
    return 0
