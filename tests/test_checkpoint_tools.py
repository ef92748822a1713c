"""convert_checkpoint.py round trip and refusals; PretrainProvenanceHook writes the FORMATS.md record."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import timm
import torch
from mmdet.registry import HOOKS
from torch import nn

import backbones.convert as convert
from backbones import TimmBackbone
from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import run_cli
from test_checkpoint_bridge import CONVNEXT, facebook_convnext_layout, pretrain_checkpoint


@pytest.fixture(scope="module")
def convnext() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(CONVNEXT, pretrained=False).eval()


def run_tool(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(convert.main, argv)
    return exit_info.value.code


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_convert_facebook_release_to_timm(convnext, tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "fb.pth"
    torch.save({"model": {f"module.{k}": v for k, v in facebook_convnext_layout(convnext.state_dict()).items()}}, src)
    dst = tmp_path / f"clean{suffix}"
    assert run_tool([str(src), str(dst), "--model", CONVNEXT]) == 0
    converted = load_checkpoint_file(dst)
    state = converted["model"] if suffix == ".pth" else converted
    assert set(state) == set(convnext.state_dict())  # timm layout, head included
    fresh = timm.create_model(CONVNEXT, pretrained=False)
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), convnext(x))
    if suffix == ".pth":
        assert converted["provenance"] is None and converted["converted_from"]["checkpoint"] == str(src)


def test_convert_keeps_provenance_and_picks_ema(convnext, tmp_path: Path) -> None:
    torch.manual_seed(3)
    ema = timm.create_model(CONVNEXT, pretrained=False).eval()
    src = tmp_path / "final.pth"
    torch.save(pretrain_checkpoint(convnext, ema), src)
    dst = tmp_path / "out.pth"
    assert run_tool([str(src), str(dst), "--no-ema"]) == 0  # model name from the provenance
    out = load_checkpoint_file(dst)
    assert out["provenance"]["model_name"] == CONVNEXT and out["converted_from"]["weights"] == "model"
    torch.testing.assert_close(out["model"]["stem.0.weight"], convnext.state_dict()["stem.0.weight"])
    assert run_tool([str(src), str(dst), "--ema"]) == 0
    torch.testing.assert_close(load_checkpoint_file(dst)["model"]["stem.0.weight"], ema.state_dict()["stem.0.weight"])
    backbone = TimmBackbone(CONVNEXT, checkpoint=str(dst))
    backbone.init_weights()  # the converted file is a valid checkpoint= with the original provenance
    assert backbone.provenance["provenance"]["model_name"] == CONVNEXT
    safetensors_dst = tmp_path / "out.safetensors"  # provenance travels in the safetensors header too
    assert run_tool([str(src), str(safetensors_dst), "--ema"]) == 0
    backbone = TimmBackbone(CONVNEXT, checkpoint=str(safetensors_dst))
    backbone.init_weights()
    assert backbone.provenance["provenance"] == load_checkpoint_file(src)["provenance"]


def test_convert_refusals_exit_2_with_one_line(convnext, tmp_path: Path, capsys) -> None:
    state = convnext.state_dict()
    del state["stages.3.blocks.0.conv_dw.bias"]
    src = tmp_path / "broken.pth"
    torch.save(state, src)
    dst = tmp_path / "out.pth"
    assert run_tool([str(src), str(dst), "--model", CONVNEXT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stages.3.blocks.0.conv_dw.bias" in err
    assert not dst.exists() and not list(tmp_path.glob(".out.pth.*"))  # nothing half-written
    assert run_tool([str(src), str(dst)]) == 2
    assert "pass --model" in capsys.readouterr().err
    assert run_tool([str(src), str(dst), "--model", "resnet18"]) == 2
    assert "is not a resnet18 checkpoint" in capsys.readouterr().err
    assert run_tool([str(tmp_path / "missing.pth"), str(dst), "--model", CONVNEXT]) == 2
    assert "does not exist" in capsys.readouterr().err


def _runner(model: nn.Module, work_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(model=model, work_dir=str(work_dir), logger=logging.getLogger("test"))


def test_provenance_hook_train_and_test_runs(convnext, tmp_path: Path) -> None:
    src = tmp_path / "final.pth"
    torch.save(pretrain_checkpoint(convnext), src)
    hook = HOOKS.build(dict(type="PretrainProvenanceHook"))
    detector = nn.Module()
    detector.backbone = TimmBackbone(CONVNEXT, checkpoint=str(src))  # init_weights not called (tools/test.py)
    hook.before_run(_runner(detector, tmp_path / "test_run"))
    record = json.loads((tmp_path / "test_run" / "pretrain_provenance.json").read_text())
    assert record["checkpoint"] == str(src) and record["weights"] == "model"
    assert len(record["sha256"]) == 64 and record["provenance"]["model_name"] == CONVNEXT
    detector.backbone.init_weights()  # training: the backbone's own record is used
    assert detector.backbone.provenance == record
    hook.before_run(_runner(detector, tmp_path / "train_run"))
    assert json.loads((tmp_path / "train_run" / "pretrain_provenance.json").read_text()) == record

    scratch = nn.Module()
    scratch.backbone = TimmBackbone(CONVNEXT)
    hook.before_run(_runner(scratch, tmp_path / "scratch"))
    assert json.loads((tmp_path / "scratch" / "pretrain_provenance.json").read_text()) == {
        "checkpoint": None,
        "sha256": None,
        "weights": None,
        "layout": None,
        "provenance": None,
    }
