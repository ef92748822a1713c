"""Official training checkpoints (EfficientTrain, ConvNeXt, DeiT, Swin) load as they are, and only they.

Each file is written the way its training code writes it: the same top-level dict, the same pickled
classes (an `argparse.Namespace` from a real parser, a yacs `CfgNode` config), a real AdamW state after a
step, a GradScaler state, a timm scheduler state and a timm ModelEmaV2 `get_state_dict` (small models).
Loaded through `TimmBackbone(checkpoint=...)` and `tools/convert_checkpoint.py`, each gives exactly the
features / tensors of the same weights saved bare (`{'model': state_dict}`); provenance names the layout.
Crafted files that hide code-running callables in those containers are still refused.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import pickle
import pickletools
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from test_compat import _as_torch_file
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV2, get_state_dict

import backbones.convert as convert
from backbones import TimmBackbone
from etcore.checkpoint_io import load_checkpoint_file
from etcore.compat import YacsConfigNode
from etcore.errors import UserInputError, run_cli
from test_checkpoint_bridge import CONVNEXT, DEIT, DEIT_TINY, SWIN, SWIN_TINY, facebook_convnext_layout

CONVNEXT_TINY = dict(dims=(8, 16, 24, 32), depths=(1, 1, 2, 1))

# --------------------------------------------------------------------------------------------- yacs
# yacs is not a dependency. Where it is missing, the test pickles this stand-in under yacs's own name
# `yacs.config.CfgNode`: a dict subclass with the four instance flags yacs keeps in `__dict__`. Its
# pickle is byte-identical to real yacs 0.1.8's (checked against the digest below, made with yacs 0.1.8:
# `pickle.dumps(CfgNode(SWIN_CONFIG) frozen, protocol=2)`; `test_yacs_stand_in_pickles_like_yacs`).
YACS_0_1_8_SHA256 = "2d451921bf9295ee0f3a3c2bc2b4a32452413610fb059164466cc3e19b7a280b"
SWIN_CONFIG = {
    "MODEL": {
        "TYPE": "swin",
        "NAME": "swin_tiny_patch4_window7_224",
        "DROP_PATH_RATE": 0.2,
        "SWIN": {"EMBED_DIM": 96, "DEPTHS": [2, 2, 6, 2]},
    },
    "TRAIN": {"BASE_LR": 5e-4, "OPTIMIZER": {"NAME": "adamw", "BETAS": (0.9, 0.999)}},
    "AUG": {"CUTMIX_MINMAX": None},
}


class _CfgNode(dict):
    """Only what pickling needs of yacs.config.CfgNode: a dict subclass with yacs's instance flags."""

    def __init__(self, tree: dict | None = None) -> None:
        super().__init__({k: _CfgNode(v) if isinstance(v, dict) else v for k, v in (tree or {}).items()})
        self.__dict__.update(
            {"__immutable__": False, "__deprecated_keys__": set(), "__renamed_keys__": {}, "__new_allowed__": False}
        )

    def freeze(self) -> None:
        self.__dict__["__immutable__"] = True
        for value in self.values():
            if isinstance(value, _CfgNode):
                value.freeze()


@pytest.fixture()
def yacs_cfg_node(monkeypatch: pytest.MonkeyPatch):
    """yacs's CfgNode class: the real one when installed, else the stand-in registered as `yacs.config`."""
    try:
        from yacs.config import CfgNode

        return CfgNode
    except ImportError:
        package, module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
        _CfgNode.__module__, _CfgNode.__qualname__ = "yacs.config", "CfgNode"
        module.CfgNode, package.config = _CfgNode, module
        monkeypatch.setitem(sys.modules, "yacs", package)
        monkeypatch.setitem(sys.modules, "yacs.config", module)
        return _CfgNode


def test_yacs_stand_in_pickles_like_yacs(yacs_cfg_node) -> None:
    config = yacs_cfg_node(SWIN_CONFIG)
    config.freeze()
    assert hashlib.sha256(pickle.dumps(config, protocol=2)).hexdigest() == YACS_0_1_8_SHA256


# ----------------------------------------------------------------------------- writing like the codes
def _parser(code: str) -> argparse.ArgumentParser:
    """A few of each code's options (names, types and defaults as in its main.py)."""

    def str2bool(text: str) -> bool:
        return text.lower() in ("true", "1", "yes")

    parser = argparse.ArgumentParser(code)
    parser.add_argument("--model", default="convnext_tiny", type=str)
    parser.add_argument("--batch_size", default=64, type=int)
    parser.add_argument("--epochs", default=300, type=int)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--opt_betas", default=None, type=float, nargs="+")
    parser.add_argument("--output_dir", default="")
    if code in ("efficienttrain", "efficienttrain++", "convnext"):
        parser.add_argument("--model_ema", type=str2bool, default=False)
        parser.add_argument("--model_ema_eval", type=str2bool, default=False)
        parser.add_argument("--layer_scale_init_value", default=1e-6, type=float)
    if code in ("efficienttrain", "efficienttrain++"):
        parser.add_argument("--end_epoch", default=300, type=int)
        parser.add_argument("--base_input_size", default=224, type=int)
    if code == "efficienttrain++":
        parser.add_argument("--replay_buffer_size", default=128, type=int)
        parser.add_argument("--replay_times", default=1, type=int)
    if code == "deit":
        parser.add_argument("--model-ema", action="store_true")
        parser.add_argument("--no-model-ema", action="store_false", dest="model_ema")
        parser.set_defaults(model_ema=True)
        parser.add_argument("--unscale-lr", action="store_true")
    return parser


def _args(code: str, argv: list[str]) -> argparse.Namespace:
    args = _parser(code).parse_args(argv)
    args.nb_classes = 1000  # what build_dataset returns, set on args by every main.py
    args.distributed, args.rank, args.gpu, args.dist_backend = True, 0, 0, "nccl"  # init_distributed_mode
    if code == "deit":
        args.lr = np.float64(args.lr) * args.batch_size * 8 / 512.0  # scaled lr; numpy, as a script may leave it
    return args


def _optimizer_state(model: torch.nn.Module) -> dict:
    """AdamW after one step, with ConvNeXt/EfficientTrain-style layer-decay groups (extra `lr_scale`)."""
    model = copy.deepcopy(model)  # the step must not change the weights saved next to it
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": 0.05, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 0.7},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    optimizer.step()
    return optimizer.state_dict()


def _scheduler_state(model: torch.nn.Module) -> dict:
    optimizer = torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.1)
    return CosineLRScheduler(optimizer, t_initial=300, warmup_t=20, warmup_lr_init=1e-6).state_dict()


def _scaler_state() -> dict:
    return torch.amp.GradScaler("cpu").state_dict()  # GradScaler.state_dict(), as NativeScaler returns it


def _ema_of(model: torch.nn.Module) -> dict:
    """timm ModelEmaV2 as the codes keep it, with weights of its own, saved as `get_state_dict(model_ema)`."""
    ema = ModelEmaV2(model, decay=0.9999)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.5)
    return get_state_dict(ema)


def _model(family: str) -> tuple[torch.nn.Module, str, dict]:
    torch.manual_seed(0)
    name, kwargs = {"convnext": (CONVNEXT, CONVNEXT_TINY), "deit": (DEIT, DEIT_TINY), "swin": (SWIN, SWIN_TINY)}[family]
    return timm.create_model(name, pretrained=False, **kwargs).eval(), name, kwargs


def write_official(code: str, model: torch.nn.Module, path: Path, yacs_cfg_node=None, **options) -> dict:
    """Save `model` as `code`'s training loop does; return {'model': ..., 'model_ema': ...} it saved."""
    weights = model.state_dict()
    if code in ("efficienttrain", "convnext"):  # Facebook ConvNeXt module names, as those repos' models have
        weights = facebook_convnext_layout(weights)
    saved = {"model": weights}
    if code in ("efficienttrain", "efficienttrain++", "convnext"):  # utils(_buffer).save_model
        args = _args(code, options.get("argv", []))
        ckpt = {
            "model": weights,
            "optimizer": _optimizer_state(model),
            "epoch": options.get("epoch", 299),
            "scaler": _scaler_state(),
            "args": args,
        }
        if args.model_ema:
            ckpt["model_ema"] = saved["model_ema"] = _ema_state(model, code)
    elif code == "deit":  # main.py
        saved["model_ema"] = _ema_state(model, code)
        ckpt = {
            "model": weights,
            "optimizer": _optimizer_state(model),
            "lr_scheduler": _scheduler_state(model),
            "epoch": 299,
            "model_ema": saved["model_ema"],
            "scaler": _scaler_state(),
            "args": _args(code, []),
        }
    elif code == "swin":  # utils.save_checkpoint
        config = yacs_cfg_node(SWIN_CONFIG)
        config.freeze()
        ckpt = {
            "model": weights,
            "optimizer": _optimizer_state(model),
            "lr_scheduler": _scheduler_state(model),
            "max_accuracy": 81.2,
            "scaler": _scaler_state(),
            "epoch": 299,
            "config": config,
        }
    else:
        raise ValueError(code)
    torch.save(ckpt, path)
    return saved


def _ema_state(model: torch.nn.Module, code: str) -> dict:
    state = _ema_of(model)
    return facebook_convnext_layout(state) if code in ("efficienttrain", "convnext") else state


def pickled_globals(path: Path) -> set[str]:
    """The GLOBALs of a torch checkpoint's pickle, torch's own left out."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    found = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    return {g for g in found if not g.startswith(("torch", "collections OrderedDict", "_codecs"))}


def features(path: Path, model_name: str, kwargs: dict, **options) -> tuple[TimmBackbone, tuple]:
    torch.manual_seed(0)  # layers a backbone adds for detection (ViT's simple pyramid) start from one init
    backbone = TimmBackbone(model_name, checkpoint=str(path), out_norms=False, **kwargs, **options)
    backbone.init_weights()
    with torch.no_grad():
        return backbone, backbone.eval()(torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)))


def run_tool(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(convert.main, argv)
    return exit_info.value.code


# code, model family, options, the layout the bridge names, its globals besides torch's, `auto`'s weights
CASES = {
    "efficienttrain++": (
        "swin",
        {"argv": ["--model", "swin_tiny"]},
        "efficienttrain/utils_buffer.save_model",
        {"argparse Namespace"},
        "model",
    ),
    "efficienttrain": (
        "convnext",
        {"argv": ["--model_ema", "true", "--model_ema_eval", "true"], "epoch": "best-ema"},
        "efficienttrain/utils.save_model",
        {"argparse Namespace"},
        "model_ema",
    ),
    "convnext": (
        "convnext",
        {"argv": ["--model_ema", "true"]},
        "convnext/utils.save_model",
        {"argparse Namespace"},
        "model",
    ),
    "deit": (
        "deit",
        {},
        "deit/main.py",
        {"argparse Namespace", "numpy.core.multiarray scalar", "numpy dtype"},
        "model",
    ),
    "swin": ("swin", {}, "swin/utils.save_checkpoint", {"yacs.config CfgNode", "__builtin__ set"}, "model"),
}


@pytest.mark.slow
@pytest.mark.parametrize("code", list(CASES))
def test_official_checkpoint_loads_as_its_bare_weights(code: str, tmp_path: Path, yacs_cfg_node) -> None:
    family, options, layout, extra_globals, auto = CASES[code]
    model, model_name, kwargs = _model(family)
    official = tmp_path / f"{code}.pth"
    saved = write_official(code, model, official, yacs_cfg_node, **options)
    assert pickled_globals(official) == extra_globals  # the classes that code pickles, and no more
    bare = {}
    for weights, state in saved.items():
        bare[weights] = tmp_path / f"bare_{weights}.pth"
        torch.save({"model": state}, bare[weights])

    backbone, ours = features(official, model_name, kwargs)
    assert backbone.provenance["layout"] == layout and backbone.provenance["weights"] == auto
    assert backbone.provenance["provenance"] is None
    _, reference = features(bare[auto], model_name, kwargs)
    assert len(ours) == 4 and all(torch.equal(a, b) for a, b in zip(ours, reference))
    if "model_ema" in saved:  # the other weights on request, equally exact
        other = "model" if auto == "model_ema" else "model_ema"
        _, ours_other = features(official, model_name, kwargs, weights=other)
        _, reference_other = features(bare[other], model_name, kwargs)
        assert all(torch.equal(a, b) for a, b in zip(ours_other, reference_other))
        assert not torch.equal(ours_other[-1], ours[-1])

    # tools/convert_checkpoint.py: the same clean tensors as from the bare file
    model_kwargs = ["--model-kwargs", json.dumps(kwargs)] if kwargs else []
    out_official, out_bare = tmp_path / "official_clean.pth", tmp_path / "bare_clean.pth"
    assert run_tool([str(official), str(out_official), "--model", model_name, *model_kwargs]) == 0
    assert run_tool([str(bare[auto]), str(out_bare), "--model", model_name, *model_kwargs]) == 0
    converted, reference_converted = load_checkpoint_file(out_official), load_checkpoint_file(out_bare)
    assert converted["model"].keys() == reference_converted["model"].keys()
    assert all(torch.equal(converted["model"][k], v) for k, v in reference_converted["model"].items())
    assert converted["converted_from"]["layout"] == layout and converted["converted_from"]["weights"] == auto
    assert reference_converted["converted_from"]["layout"] is None


def test_training_state_is_read_safely_then_ignored(tmp_path: Path, yacs_cfg_node) -> None:
    """What the safe loader rebuilds of args/config, and the note that names what the bridge ignored."""
    from backbones.checkpoint_bridge import read_source_checkpoint

    model, _, _ = _model("convnext")
    path = tmp_path / "checkpoint-best.pth"
    write_official("efficienttrain++", model, path, argv=["--model", "convnext_tiny", "--lr", "0.004"])
    loaded = load_checkpoint_file(path)
    assert isinstance(loaded["args"], argparse.Namespace) and loaded["args"].end_epoch == 300
    assert loaded["args"].lr == 0.004 and loaded["args"].opt_betas is None and loaded["scaler"]["scale"] == 65536.0
    assert loaded["optimizer"]["param_groups"][1]["lr_scale"] == 0.7
    source = read_source_checkpoint(path)
    assert source.layout == "efficienttrain/utils_buffer.save_model"
    assert "ignored its training state (args, epoch, optimizer, scaler)" in source.notes[0]

    swin, _, _ = _model("swin")
    write_official("swin", swin, path, yacs_cfg_node)
    config = load_checkpoint_file(path)["config"]
    assert type(config) is OrderedDict and type(config["MODEL"]["SWIN"]) is OrderedDict  # plain containers
    assert config["MODEL"]["SWIN"]["DEPTHS"] == [2, 2, 6, 2] and config["TRAIN"]["OPTIMIZER"]["BETAS"] == (0.9, 0.999)
    assert read_source_checkpoint(path).layout == "swin/utils.save_checkpoint"


def test_a_bare_or_foreign_layout_is_not_named(tmp_path: Path) -> None:
    from backbones.checkpoint_bridge import recognise_layout

    args = argparse.Namespace(end_epoch=300, base_input_size=224)
    keys = {"model": {}, "optimizer": {}, "epoch": 1, "scaler": {}, "args": args}
    assert recognise_layout(keys) == "efficienttrain/utils.save_model"
    assert recognise_layout({**keys, "args": argparse.Namespace()}) == "convnext/utils.save_model"
    assert recognise_layout({**keys, "extra": 1}) is None  # another code's layout: not guessed
    assert recognise_layout({"model": {}}) is None and recognise_layout({"model": {}, "epoch": 3}) is None


# ------------------------------------------------------------------------------------- refusals
class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _evil_official(path: Path, where: str) -> None:
    """An EfficientTrain checkpoint whose otherwise harmless args/config hide a call of os.system."""
    model, _, _ = _model("convnext")
    args = _args("efficienttrain", [])
    ckpt = {"model": model.state_dict(), "optimizer": {}, "epoch": 1, "scaler": {}, "args": args}
    if where == "args":
        args.output_dir = _RunsCode()
    elif where == "nested":
        args.opt_betas = [0.9, {"x": (_RunsCode(),)}]
    elif where == "config":
        ckpt = {**ckpt, "config": OrderedDict(MODEL=OrderedDict(TYPE=_RunsCode()))}
    torch.save(ckpt, path)


@pytest.mark.parametrize("where", ["args", "nested", "config"])
def test_code_hidden_in_args_is_refused(tmp_path: Path, where: str, capsys) -> None:
    path = tmp_path / "evil.pth"
    _evil_official(path, where)
    assert "posix system" in pickled_globals(path)
    with pytest.raises(UserInputError, match="refused for safety"):
        load_checkpoint_file(path)
    with pytest.raises(UserInputError, match="refused for safety"):
        TimmBackbone(CONVNEXT, checkpoint=str(path)).init_weights()
    out = tmp_path / "out.pth"
    assert run_tool([str(path), str(out), "--model", CONVNEXT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused for safety" in err and not out.exists()


def _pickle(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(ops) + b"."


def _unicode(text: str) -> bytes:
    return b"X" + len(text.encode()).to_bytes(4, "little") + text.encode()


def test_the_allowlisted_classes_run_nothing_when_called(tmp_path: Path) -> None:
    """A crafted pickle may call an allowlisted global with arguments of its choosing (REDUCE)."""
    path = tmp_path / "call.pth"
    # yacs.config.CfgNode('rm -rf /'): the stand-in ignores its arguments and gives an empty OrderedDict
    _as_torch_file(path, _pickle(b"cyacs.config\nCfgNode\n", _unicode("echo pwned"), b"\x85R"))
    assert load_checkpoint_file(path) == OrderedDict()
    assert YacsConfigNode("echo pwned", key=os.system) == OrderedDict()
    # argparse.Namespace('echo pwned'): Namespace takes keywords only, so the call fails: a refused file
    _as_torch_file(path, _pickle(b"cargparse\nNamespace\n", _unicode("echo pwned"), b"\x85R"))
    with pytest.raises(UserInputError, match="corrupt or truncated"):
        load_checkpoint_file(path)


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            lambda: {"lr_scheduler": CosineLRScheduler(torch.optim.SGD([torch.zeros(1)], lr=0.1), t_initial=3)},
            id="scheduler object",
        ),
        pytest.param(lambda: {"model_ema": ModelEmaV2(torch.nn.Linear(2, 2))}, id="ModelEmaV2 object"),
        pytest.param(lambda: {"args": argparse.Namespace(output_dir=Path("/out"))}, id="pathlib in args"),
        pytest.param(lambda: {"args": argparse.Namespace(join=os.path.join)}, id="function in args"),
    ],
)
def test_other_objects_of_training_scripts_stay_refused(tmp_path: Path, obj) -> None:
    """Only the surveyed classes are allowed: a module object, a parser or a function is still refused."""
    path = tmp_path / "other.pth"
    buffer = io.BytesIO()
    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), **obj()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(UserInputError, match="refused for safety"):
        load_checkpoint_file(path)
