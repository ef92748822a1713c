# Cascade Mask R-CNN, tiny CPU demo with a ResNet-18 backbone (timm resnet18).
# Random init (no checkpoint): the configs to run are the pair
# tiny/cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/cascade-mask-rcnn_fpn_4conv1fc-giou_tiny-demo.py'

model = dict(
    backbone=dict(model_name='resnet18', drop_path_rate=0.0, norm_eval=True),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[64, 128, 256, 512]))
# layer-wise decay over 4 layers (stage depths 2-2-2-2: stage 2 is id 3, stage 3 is id 4; ConvNeXt's rule)
optim_wrapper = dict(paramwise_cfg=dict(num_layers=4))
benchmark = dict(detector='cascade_mask_rcnn', backbone='resnet18', schedule='tiny')
