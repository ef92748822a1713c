# Cascade Mask R-CNN 1x (Swin recipe), ResNet-50 backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/cascade-mask-rcnn_r50_fpn_4conv1fc-giou_amp-1x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/resnet50_baseline/final.pth'))
