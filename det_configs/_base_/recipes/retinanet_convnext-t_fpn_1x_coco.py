# RetinaNet 1x (DAT recipe) with a ConvNeXt-T backbone (timm convnext_tiny).
# det_configs/RECIPES.md cites every value and says which are inferred (family retinanet-convnext-1x).
# Random init (no checkpoint): the configs to run are the pair
# retinanet/retinanet_convnext-t_fpn_1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/retinanet_fpn_1x_coco.py'

model = dict(
    backbone=dict(model_name='convnext_tiny', drop_path_rate=0.2),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[192, 384, 768]))
benchmark = dict(detector='retinanet', backbone='convnext_tiny', schedule='1x')
