"""`TimmBackbone`: any timm model with a feature pyramid as an MMDetection 3.x (and MMSegmentation 1.x) backbone.

    backbone=dict(type='TimmBackbone', model_name='convnext_tiny', out_indices=(0, 1, 2, 3),
                  drop_path_rate=0.4, checkpoint='work_dirs/pt/final.pth', weights='auto',
                  allow_missing=(), frozen_stages=-1, norm_eval=False, out_norms='auto')

Levels, strides and the detection defaults are described in `backbones.timm_features`; checkpoint
reading and key checking in `backbones.checkpoint_bridge`; the per-output LayerNorms `norm{i}` of the Swin
and ConvNeXt detection recipes in `backbones.out_norms`. Outputs are a tuple of NCHW maps, one per out
index, for any input whose sides are multiples of 32. Registered in mmdet's MODELS here and in mmseg's
MODELS by `backbones.mmseg_registry` (one class, two registrations).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import Format
from torch.nn.modules.batchnorm import _BatchNorm

from backbones.checkpoint_bridge import feature_to_full_keys, read_backbone_weights
from backbones.out_norms import make_out_norm, resolve_out_norms
from backbones.swin_padding import use_pad_first_attention
from backbones.timm_features import create_feature_net, create_reference_model, pyramid_spec
from backbones.vit_pyramid import SimpleFeaturePyramid
from etcore.errors import UserInputError

VIT_STEM_NAMES = ("patch_embed", "cls_token", "reg_token", "pos_embed", "pos_drop", "patch_drop", "norm_pre")


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """timm feature extractor with mmdet's backbone contract (out_indices, frozen_stages, norm_eval, init_weights).

    Args:
        model_name: timm model name (`timm.list_models()`); built with `pretrained=False`.
        out_indices: pyramid levels, level i has stride 4 * 2**i.
        checkpoint: file loaded in `init_weights()` through the checkpoint bridge (None: random init).
        weights: which weights of a checkpoint that has both: 'auto' | 'model' | 'model_ema'
            (see `backbones.checkpoint_bridge.choose_weights`).
        allow_missing: regexes of backbone keys the checkpoint may lack (they keep their init).
        frozen_stages: -1 none; 0 the stem; k the stem and the first k stages (eval mode, no grad), with
            the output norms of their levels (as mmdet's Swin).
        norm_eval: keep BatchNorm layers in eval mode while training.
        out_norms: 'auto' (on for Swin and ConvNeXt, whose detection backbones normalise every output),
            True or False: a fresh LayerNorm `norm{i}` on each output level i (`backbones.out_norms`).
        vit_blocks: plain ViTs only: output the stride-16 maps of these blocks (e.g. (2, 5, 8, 11), as mmseg's
            ViT UperNet) instead of the simple pyramid; `out_indices` then stays at its default.
        **timm_kwargs: passed to `timm.create_model` (drop_path_rate, img_size, window_size, ...).
    """

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        checkpoint: str | None = None,
        weights: str = "auto",
        allow_missing: Sequence[str] = (),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        out_norms: bool | str = "auto",
        vit_blocks: Sequence[int] | None = None,
        init_cfg: dict | None = None,
        **timm_kwargs: Any,
    ) -> None:
        if isinstance(init_cfg, dict) and init_cfg.get("type") == "Pretrained":
            raise UserInputError(
                "TimmBackbone: init_cfg=dict(type='Pretrained') would skip the key checks; "
                "set checkpoint=<file> instead"
            )
        super().__init__(init_cfg=init_cfg)
        self.spec = pyramid_spec(model_name, out_indices, vit_blocks, **timm_kwargs)
        self.out_norms = resolve_out_norms(out_norms, model_name, self.spec.plain_vit)
        self.model_name = model_name
        self.out_indices = self.spec.out_indices
        self.out_channels = list(self.spec.out_channels)
        self.strides = list(self.spec.strides)
        self.checkpoint = checkpoint
        self.weights = weights
        self.allow_missing = tuple(allow_missing)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.provenance: dict | None = None  # filled by init_weights() when a checkpoint is loaded

        self.body = create_feature_net(self.spec)
        self.pad_first_swin_blocks = use_pad_first_attention(self.body)
        self.nhwc = getattr(self.body, "output_fmt", Format.NCHW) == Format.NHWC
        simple_pyramid = self.spec.plain_vit and not self.spec.vit_blocks
        self.pyramid = SimpleFeaturePyramid(self.spec.vit_dim, self.strides) if simple_pyramid else None
        self.out_norm_names = [f"norm{i}" for i in self.out_indices] if self.out_norms else []
        for name, channels in zip(self.out_norm_names, self.out_channels):
            self.add_module(name, make_out_norm(channels, channels_last=self.nhwc))
        self._freeze_stages()

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.body(x)
        if self.out_norms:  # on the NHWC map for Swin (as mmdet), the NCHW map otherwise
            features = [getattr(self, name)(f) for name, f in zip(self.out_norm_names, features)]
        if self.nhwc:
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        if self.pyramid is not None:
            return self.pyramid(features[-1])
        return tuple(features)

    # ------------------------------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Random init (timm's own, done at construction) or the configured checkpoint, strictly checked.

        The checkpoint bridge reads, renames and checks the tensors; this loads them into `self.body` and
        keeps the provenance record (docs/FORMATS.md) that `PretrainProvenanceHook` writes.
        """
        if self.checkpoint is None:
            super().init_weights()
            return
        reference = create_reference_model(self.spec)
        body_shapes = {k: v.shape for k, v in self.body.state_dict().items()}
        to_full = feature_to_full_keys(list(body_shapes), list(reference.state_dict()))
        expected = {to_full[k]: shape for k, shape in body_shapes.items()}
        checked = read_backbone_weights(
            self.checkpoint,
            self.model_name,
            reference,
            expected,
            weights=self.weights,
            allow_missing=self.allow_missing,
        )
        to_feature = {full: feature for feature, full in to_full.items()}
        body_state = {to_feature[k]: v for k, v in checked.state_dict.items() if k in to_feature}
        result = self.body.load_state_dict(body_state, strict=False)
        unexplained = [
            k
            for k in result.missing_keys
            if to_full[k] not in checked.report.allowed_missing and not k.endswith("num_batches_tracked")
        ]
        if unexplained or result.unexpected_keys:  # read_backbone_weights should have refused the file
            raise RuntimeError(f"bug: load left {unexplained} missing, {result.unexpected_keys} unexpected")
        self.provenance = checked.source.record()
        self._is_init = True
        log(checked.summary(self.model_name))
        if self.pyramid is not None:
            log(f"TimmBackbone({self.model_name}): simple-pyramid layers are new (random init)")
        if self.out_norm_names:
            log(
                f"TimmBackbone({self.model_name}): output norms {', '.join(self.out_norm_names)} are new "
                "(weight 1, bias 0, as in the official Swin/ConvNeXt detectors)"
            )

    # ------------------------------------------------------------------------------------------ freezing
    def stage_prefixes(self) -> list[list[str]]:
        """State-dict prefixes (in `self.body`) of the stem and each stage: [stem, stage0, stage1, ...].

        Hierarchical models: a stage is every child module of the feature net after the previous level's
        module up to the module that outputs the level (timm puts downsampling at the start of a stage,
        so stage k owns its own downsample). Plain ViTs: stem = patch/position embeddings, one stage =
        all blocks.
        """
        if self.spec.plain_vit:
            inner = [f"model.{n}" for n, _ in self.body.model.named_children()]
            params = [f"model.{n}" for n, _ in self.body.model.named_parameters(recurse=False)]
            stem = [p for p in inner + params if p.split(".")[1] in VIT_STEM_NAMES]
            return [stem, [p for p in inner + params if p not in stem]]
        children = [name for name, _ in self.body.named_children()]
        level_modules = []
        for info in self.body.feature_info.info:
            if info["reduction"] >= 4:
                flat = info["module"].replace(".", "_")
                name = info["module"] if info["module"] in children else flat
                if name in children:
                    level_modules.append(name)
        first = children.index(level_modules[0])
        stages, previous = [children[:first]], first - 1
        for name in level_modules:
            idx = children.index(name)
            stages.append(children[previous + 1 : idx + 1])
            previous = idx
        return stages

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        groups = self.stage_prefixes()[: self.frozen_stages + 1]
        prefixes = tuple(p for group in groups for p in group)
        for name, param in self.body.named_parameters():
            if name.startswith(tuple(f"{p}." for p in prefixes)) or name in prefixes:
                param.requires_grad = False
        for name, module in self.body.named_modules():
            if name and (name in prefixes or name.startswith(tuple(f"{p}." for p in prefixes))):
                module.eval()
        for level in range(self.frozen_stages):  # stage k outputs level k; mmdet freezes its norm{k} with it
            norm = getattr(self, f"norm{level}", None) if self.out_norms else None
            if norm is not None:
                norm.eval()
                norm.requires_grad_(False)

    def train(self, mode: bool = True) -> "TimmBackbone":
        """mmdet semantics: frozen stages stay in eval mode; with norm_eval every BatchNorm does too."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def extra_repr(self) -> str:
        return (
            f"model_name={self.model_name!r}, out_indices={self.out_indices}, out_channels={self.out_channels}, "
            f"strides={self.strides}, frozen_stages={self.frozen_stages}, norm_eval={self.norm_eval}, "
            f"out_norms={self.out_norms}"
        )


def log(message: str, level: int = logging.INFO) -> None:
    """Log through mmengine's current logger (the runner's when there is one)."""
    print_log(message, logger="current", level=level)
