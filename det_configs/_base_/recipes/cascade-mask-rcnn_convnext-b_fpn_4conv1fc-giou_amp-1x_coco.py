# Cascade Mask R-CNN 1x (ConvNeXt recipe) with a ConvNeXt-B backbone (timm convnext_base).
# Source: ConvNeXt's official ConvNeXt-B 3x Cascade file (ConvNeXt has no 1x file), shortened to 12
# epochs (steps 8, 11) as Swin's 1x file shortens its 3x (inferred).
# det_configs/RECIPES.md cites every value (family cascade-convnext-1x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_convnext-b_fpn_4conv1fc-giou_amp-1x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-1x_coco.py'

model = dict(
    backbone=dict(model_name='convnext_base', drop_path_rate=0.7),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8, num_layers=12))
benchmark = dict(detector='cascade_mask_rcnn', backbone='convnext_base', schedule='1x')
