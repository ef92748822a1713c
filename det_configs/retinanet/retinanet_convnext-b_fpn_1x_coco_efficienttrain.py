# RetinaNet 1x (DAT recipe), ConvNeXt-B backbone pretrained with the EfficientTrain curriculum.
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/retinanet_convnext-b_fpn_1x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_base_efficienttrain/final.pth'))
