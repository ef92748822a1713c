# UperNet 160k on ADE20K, ConvNeXt-B backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_convnext-b_8xb2-amp-160k_ade20k-512x512.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_base_baseline/final.pth'))
