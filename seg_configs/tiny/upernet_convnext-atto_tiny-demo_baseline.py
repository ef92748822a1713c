# UperNet, tiny CPU demo, ConvNeXt-Atto backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_convnext-atto_tiny-demo.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_atto_baseline/final.pth'))
