# Cascade Mask R-CNN 3x (ConvNeXt recipe) with a ResNet-50 backbone (timm resnet50).
# Random init (no checkpoint): the configs to run are the pair
# cascade_mask_rcnn/cascade-mask-rcnn_r50_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='resnet50', drop_path_rate=0.0, norm_eval=True),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[256, 512, 1024, 2048]))
benchmark = dict(detector='cascade_mask_rcnn', backbone='resnet50', schedule='3x')
