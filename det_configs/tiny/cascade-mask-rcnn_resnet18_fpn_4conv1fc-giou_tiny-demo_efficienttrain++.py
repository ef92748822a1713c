# Cascade Mask R-CNN, tiny CPU demo, ResNet-18 backbone pretrained with the EfficientTrain++ curriculum (the demo frontier, studies/demo_frontier.yaml).
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/resnet18_efficienttrain++/final.pth'))
