# Cascade Mask R-CNN 3x (Swin recipe) with a Swin-T backbone (timm swin_tiny_patch4_window7_224).
# Source: Swin's official Swin-T 3x Cascade file.
# det_configs/RECIPES.md cites every value (family cascade-swin-3x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='swin_tiny_patch4_window7_224', drop_path_rate=0.2),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[96, 192, 384, 768]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='swin_tiny_patch4_window7_224', schedule='3x')
