"""Checkpoint bridge: every accepted layout loads to the same features; any gap is refused by key name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbones import TimmBackbone
from backbones.checkpoint_bridge import choose_weights
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_FORMAT

CONVNEXT = "convnext_atto"
SWIN = "swin_tiny_patch4_window7_224"
SWIN_TINY = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))
DEIT = "deit_tiny_patch16_224"
DEIT_TINY = dict(embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def convnext() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(CONVNEXT, pretrained=False).eval()


def facebook_convnext_layout(state_dict: dict) -> dict:
    """timm ConvNeXt keys -> the original facebookresearch/ConvNeXt release keys (inverse of timm's filter)."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace("stem.", "downsample_layers.0.")
        key = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", key)
        key = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", key)
        key = key.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        key = key.replace("head.norm", "norm").replace("head.fc", "head")
        out[key] = value
    return out


def pretrain_checkpoint(model: torch.nn.Module, ema: torch.nn.Module | None = None, **top1) -> dict:
    """A docs/FORMATS.md pretraining checkpoint, as the pretraining engine writes it."""
    provenance = {
        "model_name": CONVNEXT,
        "model_kwargs": {"drop_path_rate": 0.1},
        "curriculum": {"name": "efficienttrain", "total_epochs": 2, "final_size": 64, "stages": []},
        "lowfreq": "fft",
        "epochs": 2,
        "equivalent_epochs": 1.3,
        "wall_clock_s": 1.0,
        "device_hours": 0.0,
        "devices": 1,
        "images_seen": 64,
        "seed": 0,
        "best_top1": None,
        "final_top1": top1.get("final_top1"),
        "ema_top1": top1.get("ema_top1"),
        "versions": {"torch": str(torch.__version__), "timm": str(timm.__version__), "python": "3"},
        "git_commit": None,
    }
    ckpt = {"format": PRETRAIN_FORMAT, "model": model.state_dict(), "provenance": provenance}
    if ema is not None:
        ckpt["model_ema"] = ema.state_dict()
    return ckpt


def features(backbone: TimmBackbone, x: torch.Tensor) -> tuple:
    with torch.no_grad():
        return backbone.eval()(x)


def reference_features(model: torch.nn.Module, x: torch.Tensor) -> list:
    with torch.no_grad():
        return model.forward_intermediates(x, intermediates_only=True)


def load(path: Path, model_name: str = CONVNEXT, **kwargs) -> TimmBackbone:
    """Backbone loaded from `path`; output norms off unless asked, so features compare to timm's raw maps."""
    kwargs.setdefault("out_norms", False)
    backbone = TimmBackbone(model_name, checkpoint=str(path), **kwargs)
    backbone.init_weights()
    return backbone


@pytest.mark.parametrize(
    "layout", ["plain", "model", "state_dict_module", "facebook", "safetensors", "pretrain", "detector"]
)
def test_round_trip_gives_source_features(layout: str, convnext, tmp_path: Path) -> None:
    state = convnext.state_dict()
    path = tmp_path / ("ckpt.safetensors" if layout == "safetensors" else "ckpt.pth")
    if layout == "plain":
        torch.save(state, path)
    elif layout == "model":
        torch.save({"model": state, "epoch": 299}, path)
    elif layout == "state_dict_module":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    elif layout == "facebook":
        torch.save({"model": facebook_convnext_layout(state)}, path)
    elif layout == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif layout == "pretrain":
        torch.save(pretrain_checkpoint(convnext), path)
    elif layout == "detector":  # an mmdet detector checkpoint whose backbone is a TimmBackbone (with norm{i})
        donor = TimmBackbone(CONVNEXT)
        assert donor.out_norm_names
        donor.body.load_state_dict(
            {
                k.replace("stem.", "stem_").replace("stages.", "stages_"): v
                for k, v in state.items()
                if not k.startswith("head.")
            }
        )
        detector_state = {f"backbone.{k}": v for k, v in donor.state_dict().items()}
        detector_state["neck.lateral_convs.0.conv.weight"] = torch.zeros(4, 4, 1, 1)
        torch.save({"meta": {"epoch": 12}, "state_dict": detector_state}, path)
    backbone = load(path)
    x = torch.randn(2, 3, 64, 96)
    for ours, theirs in zip(features(backbone, x), reference_features(convnext, x)):
        torch.testing.assert_close(ours, theirs)
    assert backbone.provenance["checkpoint"] == str(path)
    assert len(backbone.provenance["sha256"]) == 64
    assert backbone.provenance["weights"] == "model"
    assert (backbone.provenance["provenance"] is not None) == (layout == "pretrain")


@pytest.mark.slow
def test_pretrain_checkpoint_ema_choice(convnext, tmp_path: Path) -> None:
    torch.manual_seed(1)
    ema = timm.create_model(CONVNEXT, pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / "final.pth"
    torch.save(pretrain_checkpoint(convnext, ema), path)
    auto = load(path)  # no top-1 recorded: the EMA weights
    assert auto.provenance["weights"] == "model_ema"
    torch.testing.assert_close(features(auto, x)[-1], reference_features(ema, x)[-1])
    forced = load(path, weights="model")
    torch.testing.assert_close(features(forced, x)[-1], reference_features(convnext, x)[-1])
    torch.save(pretrain_checkpoint(convnext, ema, final_top1=70.0, ema_top1=40.0), path)
    assert load(path).provenance["weights"] == "model"  # EMA lagging behind: the better weights
    assert load(path).provenance["provenance"]["model_name"] == CONVNEXT
    torch.save(pretrain_checkpoint(convnext), path)
    with pytest.raises(UserInputError, match="no 'model_ema' weights"):
        load(path, weights="model_ema")


def test_choose_weights_rule() -> None:
    both = {"model": {"w": torch.zeros(1)}, "model_ema": {"w": torch.zeros(1)}}
    assert choose_weights(both, "auto", None, "f") == "model_ema"
    assert choose_weights(both, "auto", {"final_top1": 80.0, "ema_top1": 80.0}, "f") == "model_ema"
    assert choose_weights(both, "auto", {"final_top1": 80.1, "ema_top1": 80.0}, "f") == "model"
    assert choose_weights({"model": both["model"]}, "auto", None, "f") == "model"
    with pytest.raises(UserInputError, match="weights="):
        choose_weights(both, "ema", None, "f")


def test_missing_key_is_refused_by_name(convnext, tmp_path: Path) -> None:
    state = convnext.state_dict()
    removed = "stages.2.blocks.1.mlp.fc1.weight"
    del state[removed]
    path = tmp_path / "missing.pth"
    torch.save(state, path)
    with pytest.raises(UserInputError, match=re.escape(removed)):
        load(path)
    backbone = load(path, allow_missing=(r"^stages\.2\.blocks\.1\.mlp\.fc1\.",))  # explicitly allowed
    assert backbone.provenance["weights"] == "model"


def test_out_norms_are_new_layers_not_asked_of_the_checkpoint(convnext, tmp_path: Path, monkeypatch) -> None:
    """A plain timm checkpoint loads into a backbone with output norms; they stay fresh and the log says so."""
    import backbones.timm_backbone

    messages: list[str] = []
    monkeypatch.setattr(backbones.timm_backbone, "log", lambda message, level=0: messages.append(message))
    state = convnext.state_dict()
    path = tmp_path / "timm.pth"
    torch.save(state, path)
    backbone = load(path, out_norms=True)
    assert backbone.out_norm_names == ["norm0", "norm1", "norm2", "norm3"]
    assert any("output norms norm0, norm1, norm2, norm3 are new" in m for m in messages), messages
    x = torch.randn(1, 3, 64, 96)
    for i, (ours, raw) in enumerate(zip(features(backbone, x), reference_features(convnext, x))):
        norm = getattr(backbone, f"norm{i}")
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()
        expected = torch.nn.functional.layer_norm(raw.permute(0, 2, 3, 1), raw.shape[1:2], eps=1e-6)
        torch.testing.assert_close(ours, expected.permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    removed = "stages.3.blocks.0.conv_dw.weight"  # a real backbone key is still required
    del state[removed]
    torch.save(state, path)
    with pytest.raises(UserInputError, match=re.escape(removed)) as error:
        load(path, out_norms=True)
    assert "norm0" not in str(error.value)


def test_wrong_shape_is_refused_by_name(convnext, tmp_path: Path) -> None:
    state = convnext.state_dict()
    state["stages.1.blocks.0.conv_dw.weight"] = torch.zeros(80, 1, 5, 5)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(
        UserInputError,
        match=r"stages\.1\.blocks\.0\.conv_dw\.weight \(80, 1, 5, 5\) vs model "
        r"\(80, 1, 7, 7\)",
    ):
        load(path)


def test_other_architecture_is_refused(convnext, tmp_path: Path) -> None:
    path = tmp_path / "convnext.pth"
    torch.save(convnext.state_dict(), path)
    with pytest.raises(UserInputError, match="is not a resnet18 checkpoint"):
        load(path, "resnet18")
    with pytest.raises(UserInputError, match="does not exist"):
        load(tmp_path / "nope.pth")
    torch.save([1, 2], path)
    with pytest.raises(UserInputError, match="not a state dict"):
        load(path)


def test_swin_window5_at_160_loads_with_window7_at_512x640(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = timm.create_model(SWIN, pretrained=False, img_size=160, window_size=5, **SWIN_TINY)
    path = tmp_path / "swin160.pth"
    torch.save({"model": source.state_dict()}, path)
    backbone = load(path, SWIN, window_size=7, **SWIN_TINY)
    attn = backbone.body.layers_0.blocks[0].attn
    assert attn.relative_position_bias_table.shape == (13 * 13, 1)
    # the 13x13 table is the source's 9x9 table resized by timm (not left at its random init)
    from timm.layers import resize_rel_pos_bias_table

    source_table = source.layers[0].blocks[0].attn.relative_position_bias_table.detach()
    expected = resize_rel_pos_bias_table(source_table, new_window_size=(7, 7), new_bias_shape=(169, 1))
    torch.testing.assert_close(attn.relative_position_bias_table.detach(), expected)
    out = features(backbone, torch.randn(1, 3, 512, 640))
    assert [tuple(o.shape[-2:]) for o in out] == [(128, 160), (64, 80), (32, 40), (16, 20)]
    assert all(torch.isfinite(o).all() for o in out)


def test_deit_at_160_loads_at_224_and_512x640(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = timm.create_model(DEIT, pretrained=False, img_size=160, **DEIT_TINY).eval()
    path = tmp_path / "deit160.pth"
    torch.save(source.state_dict(), path)
    at224 = load(path, DEIT, **DEIT_TINY)
    assert at224.body.model.pos_embed.shape == (1, 1 + 14 * 14, 32)
    assert [tuple(o.shape) for o in features(at224, torch.randn(1, 3, 224, 224))] == [
        (1, 8, 56, 56),
        (1, 16, 28, 28),
        (1, 32, 14, 14),
        (1, 32, 7, 7),
    ]
    big = load(path, DEIT, img_size=(512, 640), **DEIT_TINY)
    assert big.body.model.pos_embed.shape == (1, 1 + 32 * 40, 32)
    x = torch.randn(1, 3, 512, 640)
    out = features(big, x)
    assert [tuple(o.shape[-2:]) for o in out] == [(128, 160), (64, 80), (32, 40), (16, 20)]
    # at its own size the loaded DeiT gives the source's last block exactly
    same = load(path, DEIT, img_size=160, **DEIT_TINY)
    x160 = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        expected = source.forward_intermediates(x160, indices=1, intermediates_only=True)[-1]
    torch.testing.assert_close(features(same, x160)[2], expected)
