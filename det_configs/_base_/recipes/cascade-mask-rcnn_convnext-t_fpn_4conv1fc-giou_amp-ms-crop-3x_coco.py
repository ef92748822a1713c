# Cascade Mask R-CNN 3x (ConvNeXt recipe) with a ConvNeXt-T backbone (timm convnext_tiny).
# Source: ConvNeXt's official ConvNeXt-T 3x Cascade file.
# det_configs/RECIPES.md cites every value (family cascade-convnext-3x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_convnext-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='convnext_tiny', drop_path_rate=0.4),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[96, 192, 384, 768]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='convnext_tiny', schedule='3x')
