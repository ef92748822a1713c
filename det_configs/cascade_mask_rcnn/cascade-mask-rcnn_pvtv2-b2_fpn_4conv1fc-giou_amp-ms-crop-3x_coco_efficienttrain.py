# Cascade Mask R-CNN 3x (Swin recipe), PVTv2-B2 backbone pretrained with the EfficientTrain curriculum.
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/cascade-mask-rcnn_pvtv2-b2_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/pvt_v2_b2_efficienttrain/final.pth'))
