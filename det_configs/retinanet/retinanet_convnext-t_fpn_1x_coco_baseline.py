# RetinaNet 1x (DAT recipe), ConvNeXt-T backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/retinanet_convnext-t_fpn_1x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_tiny_baseline/final.pth'))
