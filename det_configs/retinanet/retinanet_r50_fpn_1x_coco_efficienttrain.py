# RetinaNet 1x (mmdet's ResNet-50 recipe), ResNet-50 backbone pretrained with the EfficientTrain curriculum.
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/retinanet_r50_fpn_1x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/resnet50_efficienttrain/final.pth'))
