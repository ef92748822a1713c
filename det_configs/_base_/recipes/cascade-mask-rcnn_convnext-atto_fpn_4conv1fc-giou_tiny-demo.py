# Cascade Mask R-CNN, tiny CPU demo with a ConvNeXt-Atto backbone (timm convnext_atto).
# Random init (no checkpoint): the configs to run are the pair
# tiny/cascade-mask-rcnn_convnext-atto_fpn_4conv1fc-giou_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/cascade-mask-rcnn_fpn_4conv1fc-giou_tiny-demo.py'

model = dict(
    backbone=dict(model_name='convnext_atto', drop_path_rate=0.0),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[40, 80, 160, 320]))
# layer-wise decay over 5 layers (stage depths 2-2-6-2: stage 2 spans ids 3-4, stage 3 is id 5; ConvNeXt's rule)
optim_wrapper = dict(paramwise_cfg=dict(num_layers=5))
benchmark = dict(detector='cascade_mask_rcnn', backbone='convnext_atto', schedule='tiny')
