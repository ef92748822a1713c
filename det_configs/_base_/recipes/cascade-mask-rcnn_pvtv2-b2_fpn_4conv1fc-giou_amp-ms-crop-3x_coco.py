# Cascade Mask R-CNN 3x (Swin recipe) with a PVTv2-B2 backbone (timm pvt_v2_b2).
# Source: PVT's official PVTv2-B2 3x Cascade file; drop path 0.1 is pvt_v2_b2's default in PVT's
# detection/pvt_v2.py.
# det_configs/RECIPES.md cites every value (family cascade-pvtv2-3x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_pvtv2-b2_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='pvt_v2_b2', drop_path_rate=0.1),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[64, 128, 320, 512]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='pvt_v2_b2', schedule='3x')
