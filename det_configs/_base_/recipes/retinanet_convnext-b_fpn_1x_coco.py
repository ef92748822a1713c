# RetinaNet 1x (DAT recipe) with a ConvNeXt-B backbone (timm convnext_base).
# det_configs/RECIPES.md cites every value and says which are inferred (family retinanet-convnext-1x).
# Random init (no checkpoint): the configs to run are the pair
# retinanet/retinanet_convnext-b_fpn_1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/retinanet_fpn_1x_coco.py'

model = dict(
    backbone=dict(model_name='convnext_base', drop_path_rate=0.3),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[256, 512, 1024]))
benchmark = dict(detector='retinanet', backbone='convnext_base', schedule='1x')
