# Cascade Mask R-CNN 3x (ConvNeXt recipe) with a DeiT-S backbone (timm deit_small_patch16_224).
# Random init (no checkpoint): the configs to run are the pair
# cascade_mask_rcnn/cascade-mask-rcnn_deit-s_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model_name='deit_small_patch16_224', drop_path_rate=0.1),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[96, 192, 384, 384]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
benchmark = dict(detector='cascade_mask_rcnn', backbone='deit_small_patch16_224', schedule='3x')
