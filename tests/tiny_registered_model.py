"""A user's own timm model, registered the way timm's own files register theirs (the tests of `--import` and
`custom_imports`): a tiny 4-stage ConvNet with `feature_info`, so `features_only` (and so TimmBackbone) works.

    python tools/pretrain.py --import tiny_registered_model --model et_test_tinynet ...   (tests/ on PYTHONPATH)
"""

from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

MODEL_NAME = "et_test_tinynet"


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """Stem (stride 4), then stages at strides 4, 8, 16, 32; global average pool and a linear head."""

    def __init__(
        self,
        widths: tuple[int, ...] = (8, 16, 24, 32),
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 4, 4), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages, previous = [], widths[0]
        for index, width in enumerate(widths):
            stages.append(nn.Sequential(_conv(previous, width, 1 if index == 0 else 2), _conv(width, width, 1)))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            dict(num_chs=width, reduction=4 * 2**index, module=f"stages.{index}") for index, width in enumerate(widths)
        ]
        self.global_pool = global_pool
        self.head = nn.Linear(widths[-1], num_classes) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


default_cfgs = generate_default_cfgs(
    {
        f"{MODEL_NAME}.untrained": dict(
            url="",
            num_classes=1000,
            input_size=(3, 64, 64),
            pool_size=(2, 2),
            crop_pct=0.875,
            interpolation="bicubic",
            mean=IMAGENET_DEFAULT_MEAN,
            std=IMAGENET_DEFAULT_STD,
            first_conv="stem.0",
            classifier="head",
        )
    }
)


@register_model
def et_test_tinynet(pretrained: bool = False, **kwargs) -> TinyNet:
    """The registered constructor: timm's builder adds pretrained loading and `features_only`."""
    return build_model_with_cfg(
        TinyNet, MODEL_NAME, pretrained, feature_cfg=dict(flatten_sequential=True, out_indices=(0, 1, 2, 3)), **kwargs
    )
