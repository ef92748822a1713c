"""TimmLayerDecayOptimizerConstructor: mmdet's ConvNeXt layer ids on timm names, for ConvNeXt, Swin, ResNet, ViT."""

from __future__ import annotations

import pytest
from torch import nn

from backbones import TimmBackbone, TimmLayerDecayOptimizerConstructor
from etcore.errors import UserInputError

RATE = 0.7


class Detector(nn.Module):
    """Just enough of a detector: a backbone and a head."""

    def __init__(self, backbone: TimmBackbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.bbox_head = nn.Conv2d(backbone.out_channels[-1], 4, 1)


def groups_of(model: nn.Module, decay_type: str, num_layers: int, **extra) -> dict[str, dict]:
    constructor = TimmLayerDecayOptimizerConstructor(
        dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05)),
        dict(decay_rate=RATE, decay_type=decay_type, num_layers=num_layers, **extra),
    )
    optimizer = constructor(model).optimizer
    by_name = {}
    for group in optimizer.param_groups:
        for name in group["param_names"]:
            by_name[name] = group
    assert len(by_name) == sum(1 for p in model.parameters() if p.requires_grad)
    return by_name


def scale(groups: dict, name: str) -> float:
    return groups[name]["lr"] / 1e-3


def test_convnext_layer_wise() -> None:
    model = Detector(TimmBackbone("convnext_atto"))  # depths (2, 2, 6, 2)
    g = groups_of(model, "layer_wise", 6)
    assert scale(g, "backbone.body.stem_0.weight") == pytest.approx(RATE**7)
    assert scale(g, "backbone.body.stages_0.blocks.0.conv_dw.weight") == pytest.approx(RATE**6)
    assert scale(g, "backbone.body.stages_1.downsample.1.weight") == pytest.approx(RATE**5)
    assert scale(g, "backbone.body.stages_2.blocks.0.mlp.fc1.weight") == pytest.approx(RATE**4)
    assert scale(g, "backbone.body.stages_2.blocks.5.mlp.fc1.weight") == pytest.approx(RATE**3)
    assert scale(g, "backbone.body.stages_3.blocks.1.mlp.fc2.weight") == pytest.approx(RATE**1)
    assert scale(g, "bbox_head.weight") == pytest.approx(1.0)
    assert g["backbone.body.stages_3.blocks.1.mlp.fc2.weight"]["weight_decay"] == 0.05
    for no_decay in (
        "backbone.body.stages_3.blocks.1.mlp.fc2.bias",
        "backbone.body.stages_3.blocks.1.gamma",
        "backbone.body.stages_0.blocks.0.norm.weight",
        "bbox_head.bias",
    ):
        assert g[no_decay]["weight_decay"] == 0.0, no_decay


def test_swin_layer_and_stage_wise() -> None:
    backbone = TimmBackbone("swin_tiny_patch4_window7_224", embed_dim=16, depths=(2, 2, 6, 2), num_heads=(1, 1, 2, 2))
    model = Detector(backbone)
    g = groups_of(model, "layer_wise", 6)
    assert scale(g, "backbone.body.patch_embed.proj.weight") == pytest.approx(RATE**7)
    assert scale(g, "backbone.body.layers_0.blocks.0.attn.qkv.weight") == pytest.approx(RATE**6)
    assert scale(g, "backbone.body.layers_2.blocks.5.attn.qkv.weight") == pytest.approx(RATE**3)
    assert scale(g, "backbone.body.layers_3.blocks.1.mlp.fc1.weight") == pytest.approx(RATE**1)
    assert scale(g, "bbox_head.weight") == pytest.approx(1.0)
    table = "backbone.body.layers_1.blocks.0.attn.relative_position_bias_table"
    assert g[table]["weight_decay"] == 0.0 and g[table].get("lr") == pytest.approx(1e-3 * RATE**5)
    s = groups_of(model, "stage_wise", 4)
    assert scale(s, "backbone.body.patch_embed.proj.weight") == pytest.approx(RATE**5)
    assert scale(s, "backbone.body.layers_0.blocks.1.mlp.fc1.weight") == pytest.approx(RATE**4)
    assert scale(s, "backbone.body.layers_3.downsample.reduction.weight") == pytest.approx(RATE**1)
    assert scale(s, "bbox_head.weight") == pytest.approx(1.0)


def test_resnet_and_vit_and_frozen() -> None:
    g = groups_of(Detector(TimmBackbone("resnet18", frozen_stages=1)), "layer_wise", 6)
    assert "backbone.body.conv1.weight" not in g and "backbone.body.layer1.0.conv1.weight" not in g  # frozen
    assert scale(g, "backbone.body.layer2.0.downsample.0.weight") == pytest.approx(RATE**5)
    assert scale(g, "backbone.body.layer4.1.conv2.weight") == pytest.approx(RATE**1)
    vit = Detector(TimmBackbone("deit_tiny_patch16_224", embed_dim=32, depth=4, num_heads=2))
    v = groups_of(vit, "layer_wise", 4)
    assert scale(v, "backbone.body.model.pos_embed") == pytest.approx(RATE**5)
    assert v["backbone.body.model.pos_embed"]["weight_decay"] == 0.0
    assert scale(v, "backbone.body.model.blocks.0.attn.qkv.weight") == pytest.approx(RATE**4)
    assert scale(v, "backbone.body.model.blocks.3.attn.qkv.weight") == pytest.approx(RATE**1)
    assert scale(v, "backbone.pyramid.levels.0.0.weight") == pytest.approx(1.0)
    with pytest.raises(UserInputError, match="stage_wise"):
        groups_of(vit, "stage_wise", 4)
    with pytest.raises(UserInputError, match="num_layers=2 is too small"):
        groups_of(vit, "layer_wise", 2)


@pytest.mark.parametrize("decay_type, num_layers", [("layer_wise", 6), ("stage_wise", 4)])
def test_output_norms_train_at_the_heads_lr_without_weight_decay(decay_type: str, num_layers: int) -> None:
    """norm{i} is a new layer: layer id num_layers + 1 (lr scale 1) as in the official ConvNeXt detector's and
    mmdet's constructors, which give every backbone key outside downsample_layers/stages that id; no decay."""
    model = Detector(TimmBackbone("convnext_atto", out_indices=(0, 1, 2, 3)))
    g = groups_of(model, decay_type, num_layers)
    for level in range(4):
        for param in ("weight", "bias"):
            name = f"backbone.norm{level}.{param}"
            assert scale(g, name) == pytest.approx(1.0), name
            assert g[name]["weight_decay"] == 0.0, name
    assert scale(g, "backbone.body.stages_3.blocks.1.mlp.fc2.weight") < 1.0  # the stage before norm3 decays


def test_frozen_output_norms_are_left_out() -> None:
    backbone = TimmBackbone(
        "swin_tiny_patch4_window7_224", frozen_stages=1, embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2)
    )
    g = groups_of(Detector(backbone), "layer_wise", 6)
    assert "backbone.norm0.weight" not in g  # frozen with stage 0, as mmdet's Swin does
    assert scale(g, "backbone.norm1.weight") == pytest.approx(1.0)


def test_convnext_segmentation_stage_wise_puts_every_downsample_at_the_stem() -> None:
    """The official ConvNeXt UperNet constructor (stage_wise, num_layers 6 for T): stem and every downsampling
    layer at id 0 (scale r**7), stage s blocks at s + 1 (r**(6 - s)), heads and output norms at 1."""
    model = Detector(TimmBackbone("convnext_atto"))
    g = groups_of(model, "stage_wise", 6, downsample_at_stem=True)
    assert scale(g, "backbone.body.stem_0.weight") == pytest.approx(RATE**7)
    for stage in (1, 2, 3):
        assert scale(g, f"backbone.body.stages_{stage}.downsample.1.weight") == pytest.approx(RATE**7)
    for stage in range(4):
        assert scale(g, f"backbone.body.stages_{stage}.blocks.0.mlp.fc1.weight") == pytest.approx(RATE ** (6 - stage))
    assert scale(g, "backbone.norm3.weight") == pytest.approx(1.0) and scale(g, "bbox_head.weight") == 1.0
    plain = groups_of(model, "stage_wise", 6)  # without the option a downsample layer goes with its stage
    assert scale(plain, "backbone.body.stages_2.downsample.1.weight") == pytest.approx(RATE**4)
    with pytest.raises(UserInputError, match="downsample_at_stem"):
        groups_of(model, "layer_wise", 6, downsample_at_stem=True)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_large_100"])
def test_mbconv_layer_ids_follow_their_stages_never_a_vit_block(name: str) -> None:
    """EfficientNet and MobileNetV3 name their parameters `blocks.<stage>.<block>`: the family's mbconv_stages
    scheme gives stage s the id s + 1 (a ViT reading would take the stage index for a block index)."""
    backbone = TimmBackbone(name)
    g = groups_of(Detector(backbone), "layer_wise", 7)
    assert scale(g, "backbone.body.conv_stem.weight") == pytest.approx(RATE**8)
    for stage in range(7):
        blocks = [n for n in g if n.startswith(f"backbone.body.blocks.{stage}.")]
        assert blocks, stage
        for param in blocks:  # every block of the stage at the stage's id, whatever its index in the stage
            assert scale(g, param) == pytest.approx(RATE ** (7 - stage)), param
    last = next(n for n in g if n.startswith("backbone.body.blocks.6."))
    assert scale(g, last) == pytest.approx(RATE**1)  # not RATE ** (7 - 0): block 0 of stage 6 is no "block 6 + 1"
    with pytest.raises(UserInputError, match="num_layers=5 is too small"):
        groups_of(Detector(backbone), "layer_wise", 5)
