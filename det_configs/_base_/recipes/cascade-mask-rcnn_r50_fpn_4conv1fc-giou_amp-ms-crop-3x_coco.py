# Cascade Mask R-CNN 3x (Swin recipe) with a ResNet-50 backbone (timm resnet50).
# Inferred: the Swin paper (arXiv 2103.14030, Sec. 4.2) trains its R-50 Cascade baseline with the Swin
# settings, i.e. Swin's 3x Cascade recipe; ResNet settings (frozen_stages=1, norm_eval) from Swin's
# configs/_base_/models/cascade_mask_rcnn_r50_fpn.py.
# det_configs/RECIPES.md cites every value (family cascade-r50-3x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_r50_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='resnet50', drop_path_rate=0.0, frozen_stages=1, norm_eval=True),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[256, 512, 1024, 2048]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='resnet50', schedule='3x')
