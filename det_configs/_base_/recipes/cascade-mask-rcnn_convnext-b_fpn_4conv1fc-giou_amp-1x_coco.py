# Cascade Mask R-CNN 1x (ConvNeXt recipe) with a ConvNeXt-B backbone (timm convnext_base).
# Random init (no checkpoint): the configs to run are the pair
# cascade_mask_rcnn/cascade-mask-rcnn_convnext-b_fpn_4conv1fc-giou_amp-1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_amp-1x_coco.py'

model = dict(
    backbone=dict(model_name='convnext_base', drop_path_rate=0.7),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
benchmark = dict(detector='cascade_mask_rcnn', backbone='convnext_base', schedule='1x')
