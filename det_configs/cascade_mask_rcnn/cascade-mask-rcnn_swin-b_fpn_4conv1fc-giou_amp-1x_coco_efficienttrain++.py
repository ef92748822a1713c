# Cascade Mask R-CNN 1x (Swin recipe), Swin-B backbone pretrained with the EfficientTrain++ curriculum.
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/cascade-mask-rcnn_swin-b_fpn_4conv1fc-giou_amp-1x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/swin_base_patch4_window7_224_efficienttrain++/final.pth'))
