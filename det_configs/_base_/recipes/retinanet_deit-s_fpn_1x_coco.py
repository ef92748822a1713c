# RetinaNet 1x (DAT recipe) with a DeiT-S backbone (timm deit_small_patch16_224).
# det_configs/RECIPES.md cites every value and says which are inferred (family retinanet-deit-1x).
# Random init (no checkpoint): the configs to run are the pair
# retinanet/retinanet_deit-s_fpn_1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/retinanet_fpn_1x_coco.py'

model = dict(
    backbone=dict(model_name='deit_small_patch16_224', drop_path_rate=0.1),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[192, 384, 384]))
benchmark = dict(detector='retinanet', backbone='deit_small_patch16_224', schedule='1x')
