"""The family registry (etcore/families.py): every family walked through each room that reads it.

Each family must reach the curriculum (its ET++ schedule, or one clear line that it has none), the recipe
defaults, the layer-decay constructor, the output norms and the paper label. A tiny timm model stands for each
family; a new family without one here fails `test_every_family_has_a_tiny_model_to_walk`.
"""

from __future__ import annotations

import pytest
import timm
from torch import nn

from backbones import TimmBackbone, TimmLayerDecayOptimizerConstructor
from backbones.out_norms import norm_family
from etcore.errors import UserInputError
from etcore.families import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    FAMILIES,
    FAMILY_NAMES,
    config_stem,
    family_named,
    family_of,
    paper_label,
    require_family,
    timm_name,
)
from pretraining.curriculum import build_curriculum, model_family, required_size_multiple
from pretraining.recipes import family_defaults
from reporting.paper import backbone_family_size

# (timm name, small constructor arguments) per family; CSWin has no timm implementation (the papers' code only)
TINY = {
    "swin": ("swin_tiny_patch4_window7_224", dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2))),
    "convnext": ("convnext_atto", {}),
    "deit": ("deit_tiny_patch16_224", dict(embed_dim=32, depth=2, num_heads=2)),
    "vit": ("vit_tiny_patch16_224", dict(embed_dim=32, depth=2, num_heads=2)),
    "resnet": ("resnet18", {}),
    "pvt": ("pvt_v2_b0", {}),
    "efficientnet": ("efficientnet_b0", {}),
    "mobilenetv3": ("mobilenetv3_large_100", {}),
}
NOT_IN_TIMM = {"cswin"}


def test_every_family_has_a_tiny_model_to_walk() -> None:
    assert set(TINY) | NOT_IN_TIMM == set(FAMILY_NAMES)
    assert not timm.list_models("cswin*")  # the one family walked without a model


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_reaches_curriculum_recipe_and_label(family) -> None:
    name = TINY[family.name][0] if family.name in TINY else "cswin_tiny_224"
    assert family_of(name) is family and model_family(name) == family.name
    # curriculum: the family's ET++ sizes at 224 (x final/224), or one line naming the families that have one
    if family.etpp_sizes_224 is not None:
        curriculum = build_curriculum("efficienttrain++", 200, model_name=name)  # the papers' 1.5x budget
        assert [s.input_size for s in curriculum.stages] == list(family.etpp_sizes_224)
        assert tuple(s.batch_scale for s in curriculum.stages) == family.batch_scales_of(name)
    else:
        with pytest.raises(UserInputError, match=f"no resolution schedule for model '{name}' .family {family.name}"):
            build_curriculum("efficienttrain++", 100, model_name=name)
    assert required_size_multiple(name) == (16 if family.patch_size_multiple else 32)
    # recipe: exactly the family's switches
    chosen = family_defaults(name, build_curriculum("baseline", 10), on_gpu=True)
    assert chosen.get("clip_grad", (None,))[0] == family.grad_clip
    assert chosen.get("ema", (False,))[0] == family.ema
    assert chosen["amp"][0] == family.amp
    assert chosen.get("model_kwargs.ls_init_value", (None,))[0] == family.layer_scale
    assert chosen.get("drop_path", (None,))[0] == family.drop_path_of(name)
    # paper label: '<label>-<size>' for a size word, and the family's own label in it
    label = paper_label(name)
    assert label is None or label.startswith(family.paper_label + "-")
    assert backbone_family_size(name) == label


class _Detector(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels[-1], 2, 1)


@pytest.mark.parametrize("family_name", sorted(TINY))
def test_family_reaches_layer_decay_and_out_norms(family_name: str) -> None:
    family = family_named(family_name)
    name, kwargs = TINY[family_name]
    backbone = TimmBackbone(name, **kwargs)
    # output norms: on exactly where the family's detection backbone has them
    assert (norm_family(name) is not None) == (family.out_norms is not None) == backbone.out_norms
    assert family.out_norms in (None, CHANNELS_LAST, CHANNELS_FIRST)
    # layer decay: every trainable parameter placed by the family's scheme, ids within 0..num_layers+1
    num_layers = 12
    constructor = TimmLayerDecayOptimizerConstructor(
        dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05)),
        dict(decay_rate=0.9, decay_type="layer_wise", num_layers=num_layers),
    )
    model = _Detector(backbone)
    groups = constructor(model).optimizer.param_groups
    placed = sum(len(g["params"]) for g in groups)
    assert placed == sum(1 for p in model.parameters() if p.requires_grad)
    ids = {int(g["group_name"].split("_")[1]) for g in groups}
    assert min(ids) == 0 and max(ids) == num_layers + 1


def test_unknown_family_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(UserInputError, match="belongs to no known family .cswin, swin, convnext") as info:
        require_family("regnetx_002", "layer-wise lr decay")
    assert "\n" not in str(info.value) and "etcore/families.py" in str(info.value)
    with pytest.raises(UserInputError, match="unknown model family 'regnet': use one of cswin, swin"):
        family_named("regnet")
    with pytest.raises(UserInputError, match="unknown model family 'regnet'"):
        build_curriculum("efficienttrain++", 100, family="regnet")
    assert family_of("regnetx_002") is None and model_family("regnetx_002") == "other"


def test_config_stems_and_timm_names_are_one_table() -> None:
    for family in FAMILIES:
        for stem, name in family.models.items():
            assert timm_name(stem) == name and config_stem(name) == stem
            assert family_of(name) is family
    assert config_stem("resnet18.a1_in1k") == "resnet18"  # a pretrained tag does not change the model
    with pytest.raises(UserInputError, match="config-name stem 'swin-xl' names no model: use one of"):
        timm_name("swin-xl")
    with pytest.raises(UserInputError, match="model resnet34 has no configs"):
        config_stem("resnet34")


@pytest.mark.parametrize(
    "name, label",
    [
        ("swin_tiny_patch4_window7_224", "Swin-T"),
        ("swin-s", "Swin-S"),
        ("convnext_base", "ConvNeXt-B"),
        ("deit_small_patch16_224", "DeiT-S"),
        ("pvt_v2_b2", "PVTv2-B2"),
        ("pvtv2-b2", "PVTv2-B2"),
        ("convnext_atto", None),
        ("resnet50", None),
        ("swinv2_tiny_window8_256", None),
    ],
)
def test_paper_labels(name: str, label: str | None) -> None:
    assert paper_label(name) == label
