"""TimmBackbone gives timm's own feature maps (NCHW, mmdet levels) for every family, at square and detection sizes,
through the Swin/ConvNeXt detectors' per-output LayerNorms where those are on."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from backbones import TimmBackbone, feature_channels
from etcore.errors import UserInputError

# tiny configs: fast on CPU; Swin window 2 divides every stage at 64x64 and 128x192, so timm's own block
# (which pads after the shift) and ours (pads before) must agree exactly there.
FAMILIES = {
    "resnet18": {},
    "convnext_atto": {},
    "swin_tiny_patch4_window7_224": dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4), window_size=2),
    "pvt_v2_b0": {},
    "deit_tiny_patch16_224": dict(embed_dim=32, depth=2, num_heads=2),
}
SIZES = [(64, 64), (128, 192)]
OUT_NORM_EPS = {"swin_tiny_patch4_window7_224": 1e-5, "convnext_atto": 1e-6}  # mmdet LN / ConvNeXt LN2d


def _reference(name: str, kwargs: dict, backbone: TimmBackbone) -> torch.nn.Module:
    """Stock timm features_only model with the backbone's resolved kwargs and weights."""
    ref = timm.create_model(
        name,
        pretrained=False,
        features_only=True,
        out_indices=backbone.spec.timm_out_indices,
        **backbone.spec.timm_kwargs,
    )
    ref.load_state_dict(backbone.body.state_dict(), strict=True)
    return ref.eval()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_outputs_equal_timm_features(name: str) -> None:
    torch.manual_seed(0)
    kwargs = FAMILIES[name]
    backbone = TimmBackbone(name, out_indices=(0, 1, 2, 3), out_norms=False, **kwargs).eval()
    ref = _reference(name, kwargs, backbone)
    for height, width in SIZES:
        x = torch.randn(2, 3, height, width)
        with torch.no_grad():
            out = backbone(x)
            ref_out = ref(x)
        assert len(out) == 4
        for level, (feat, stride, chans) in enumerate(zip(out, backbone.strides, backbone.out_channels)):
            assert feat.shape == (2, chans, height // stride, width // stride), (name, level)
        if backbone.spec.plain_vit:  # the stride-16 level is the last ViT block itself
            torch.testing.assert_close(out[2], ref_out[-1], rtol=0, atol=0)
            continue
        assert ref.feature_info.reduction() == backbone.strides
        for feat, expected in zip(out, ref_out):
            if backbone.nhwc:
                expected = expected.permute(0, 3, 1, 2)
            torch.testing.assert_close(feat, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_out_norms_auto_is_on_for_swin_and_convnext_only(name: str) -> None:
    backbone = TimmBackbone(name, out_indices=(1, 2, 3), **FAMILIES[name])
    assert backbone.out_norms == (name in OUT_NORM_EPS)
    norm_keys = {k: tuple(v.shape) for k, v in backbone.state_dict().items() if k.startswith("norm")}
    if name not in OUT_NORM_EPS:
        assert norm_keys == {}
        return
    assert norm_keys == {
        f"norm{i}.{p}": (c,) for i, c in zip((1, 2, 3), backbone.out_channels) for p in ("weight", "bias")
    }
    for i in (1, 2, 3):  # a fresh LayerNorm, as the official detectors start it
        norm = getattr(backbone, f"norm{i}")
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
        assert norm.eps == OUT_NORM_EPS[name]


@pytest.mark.parametrize("name", list(OUT_NORM_EPS))
def test_out_norms_normalise_timm_features_over_channels(name: str) -> None:
    torch.manual_seed(0)
    backbone = TimmBackbone(name, out_indices=(0, 1, 2, 3), **FAMILIES[name]).eval()
    with torch.no_grad():  # non-trivial affine parameters, so using them wrongly shows
        for i in range(4):
            getattr(backbone, f"norm{i}").weight.uniform_(0.5, 1.5)
            getattr(backbone, f"norm{i}").bias.normal_()
    ref = _reference(name, FAMILIES[name], backbone)
    x = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        out, ref_out = backbone(x), ref(x)
    for i, (feat, raw) in enumerate(zip(out, ref_out)):
        nhwc = raw if backbone.nhwc else raw.permute(0, 2, 3, 1)
        norm = getattr(backbone, f"norm{i}")
        expected = F.layer_norm(nhwc, nhwc.shape[-1:], norm.weight, norm.bias, OUT_NORM_EPS[name])
        torch.testing.assert_close(feat, expected.permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_feature_channels_match_backbone(name: str) -> None:
    kwargs = FAMILIES[name]
    for out_indices in [(0, 1, 2, 3), (1, 2, 3)]:
        backbone = TimmBackbone(name, out_indices=out_indices, **kwargs)
        assert feature_channels(name, out_indices, **kwargs) == backbone.out_channels
        assert backbone.strides == [4 * 2**i for i in out_indices]
        with torch.no_grad():
            out = backbone.eval()(torch.randn(1, 3, 64, 96))
        assert [o.shape[1] for o in out] == backbone.out_channels


def test_known_channels() -> None:
    assert feature_channels("resnet50", (0, 1, 2, 3)) == [256, 512, 1024, 2048]
    assert feature_channels("convnext_tiny", (1, 2, 3)) == [192, 384, 768]
    assert feature_channels("swin_tiny_patch4_window7_224") == [96, 192, 384, 768]
    assert feature_channels("deit_small_patch16_224") == [96, 192, 384, 384]


def test_swin_pads_before_shifting() -> None:
    """At 64x64 with window 7 no stage is a multiple of the window: the shifted windows must not wrap the
    image's bottom rows onto its top rows (timm 1.0.31 pads after the roll; we pad first, like mmdet)."""
    torch.manual_seed(0)
    backbone = TimmBackbone(
        "swin_tiny_patch4_window7_224", out_indices=(0,), embed_dim=16, depths=(2, 1, 1, 1), num_heads=(2, 2, 2, 2)
    ).eval()
    assert backbone.pad_first_swin_blocks == 2  # stage 0's two blocks (later stages are pruned)
    x = torch.randn(1, 3, 64, 64)
    x2 = x.clone()
    x2[:, :, -4:, :] = torch.randn(1, 3, 4, 64)  # change the last row of 4x4 patches only
    with torch.no_grad():
        top, top2 = backbone(x)[0][:, :, 0], backbone(x2)[0][:, :, 0]
        bottom, bottom2 = backbone(x)[0][:, :, -1], backbone(x2)[0][:, :, -1]
    torch.testing.assert_close(top, top2, rtol=0, atol=0)
    assert not torch.allclose(bottom, bottom2)


def test_frozen_stages_and_norm_eval() -> None:
    backbone = TimmBackbone("resnet18", frozen_stages=1, norm_eval=True)
    backbone.train()
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {
        n for n, _ in backbone.named_parameters() if n.startswith(("body.conv1", "body.bn1", "body.layer1"))
    }
    assert not backbone.body.bn1.training and not backbone.body.layer1.training
    assert backbone.body.layer2.training  # a module stays in train mode ...
    assert not backbone.body.layer2[0].bn1.training  # ... but norm_eval keeps its BatchNorms in eval mode

    swin = TimmBackbone(
        "swin_tiny_patch4_window7_224", frozen_stages=0, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)
    ).train()
    assert all(not p.requires_grad for p in swin.body.patch_embed.parameters())
    assert all(p.requires_grad for p in swin.body.layers_0.parameters())

    vit = TimmBackbone("deit_tiny_patch16_224", frozen_stages=1, embed_dim=32, depth=2, num_heads=2).train()
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("pyramid.") for n in trainable)


def test_frozen_stages_freeze_their_output_norms() -> None:
    """As mmdet's Swin: frozen_stages=k freezes norm{j} of the levels j < k that the frozen stages output."""
    swin = TimmBackbone("swin_tiny_patch4_window7_224", frozen_stages=2, **FAMILIES["swin_tiny_patch4_window7_224"])
    swin.train()
    for level in range(4):
        norm = getattr(swin, f"norm{level}")
        frozen = level < 2
        assert all(p.requires_grad != frozen for p in norm.parameters()), level
        assert norm.training != frozen, level
    assert all(not p.requires_grad for p in swin.body.layers_1.parameters())
    assert all(p.requires_grad for p in swin.body.layers_2.parameters())
    convnext = TimmBackbone("convnext_atto", out_indices=(1, 2, 3), frozen_stages=2).train()
    assert not convnext.norm1.weight.requires_grad and convnext.norm2.weight.requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model_name="not_a_model"), "not a timm model"),
        (dict(model_name="resnet18", pretrained=True), "checkpoint="),
        (dict(model_name="resnet18", out_indices=(0, 4)), "strides"),
        (dict(model_name="deit_tiny_patch16_224", out_indices=(2, 1)), "increasing"),
        (dict(model_name="resnet18", init_cfg=dict(type="Pretrained", checkpoint="x.pth")), "checkpoint=<file>"),
        (dict(model_name="resnet18", depth_typo=3), "rejected the kwargs"),
        (dict(model_name="convnext_atto", out_norms="yes"), "out_norms="),
        (dict(model_name="deit_tiny_patch16_224", out_norms=True), "simple pyramid"),
        (dict(model_name="resnet18", vit_blocks=(1, 2)), "not a plain"),
        (dict(model_name="deit_tiny_patch16_224", depth=4, vit_blocks=(1, 4)), "0..3"),
        (dict(model_name="deit_tiny_patch16_224", vit_blocks=(2, 5), out_indices=(2, 3)), "default"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        TimmBackbone(**kwargs)


def test_vit_blocks_are_timm_intermediate_blocks() -> None:
    """mmseg's ViT UperNet layout: the stride-16 maps of blocks (2, 5, 8, 11), no pyramid, no final norm."""
    kwargs = dict(embed_dim=32, depth=6, num_heads=2)
    backbone = TimmBackbone("deit_tiny_patch16_224", vit_blocks=(1, 3, 5), **kwargs).eval()
    assert backbone.pyramid is None and backbone.out_norms is False
    assert (backbone.out_channels, backbone.strides) == ([32] * 3, [16] * 3)
    assert feature_channels("deit_tiny_patch16_224", vit_blocks=(1, 3, 5), **kwargs) == [32] * 3
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, dynamic_img_size=True, **kwargs).eval()
    model.load_state_dict(backbone.body.model.state_dict(), strict=False)  # pruned norm: Identity, no keys
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got = backbone(x)
        want = model.forward_intermediates(x, indices=[1, 3, 5], norm=False, intermediates_only=True)
    assert [tuple(g.shape) for g in got] == [(1, 32, 4, 6)] * 3
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_one_class_two_registrations() -> None:
    """mmseg configs find the very classes mmdet configs use."""
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET_CONSTRUCTORS
    from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

    assert MODELS.get("TimmBackbone") is DET_MODELS.get("TimmBackbone") is TimmBackbone
    assert HOOKS.get("PretrainProvenanceHook") is DET_HOOKS.get("PretrainProvenanceHook")
    name = "TimmLayerDecayOptimizerConstructor"
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(name) is DET_CONSTRUCTORS.get(name)
