# Cascade Mask R-CNN 1x (ConvNeXt recipe) with a Swin-S backbone (timm swin_small_patch4_window7_224).
# Random init (no checkpoint): the configs to run are the pair
# cascade_mask_rcnn/cascade-mask-rcnn_swin-s_fpn_4conv1fc-giou_amp-1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_amp-1x_coco.py'

model = dict(
    backbone=dict(model_name='swin_small_patch4_window7_224', drop_path_rate=0.6),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
benchmark = dict(detector='cascade_mask_rcnn', backbone='swin_small_patch4_window7_224', schedule='1x')
