# Cascade Mask R-CNN 1x (Swin recipe) with a Swin-B backbone (timm swin_base_patch4_window7_224).
# Source: Swin's official Swin-T 1x Cascade file (Swin has no Swin-B 1x file), with the drop
# path of its Swin-B 3x file (0.3).
# det_configs/RECIPES.md cites every value (family cascade-swin-1x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_swin-b_fpn_4conv1fc-giou_amp-1x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw_amp-ms-crop-1x_coco.py'

model = dict(
    backbone=dict(model_name='swin_base_patch4_window7_224', drop_path_rate=0.3),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[128, 256, 512, 1024]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='swin_base_patch4_window7_224', schedule='1x')
