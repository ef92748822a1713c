# UperNet 160k on ADE20K, ConvNeXt-T backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_convnext-t_8xb2-amp-160k_ade20k-512x512.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_tiny_baseline/final.pth'))
