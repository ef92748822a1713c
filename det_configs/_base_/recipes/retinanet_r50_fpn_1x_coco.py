# RetinaNet 1x (mmdet's ResNet-50 recipe, configs/retinanet/retinanet_r50_fpn_1x_coco.py) with a ResNet-50
# backbone (timm resnet50). det_configs/RECIPES.md cites every value (family retinanet-r50-1x).
# Random init (no checkpoint): the configs to run are the pair
# retinanet/retinanet_r50_fpn_1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/retinanet_fpn_sgd-1x_coco.py'

model = dict(
    backbone=dict(model_name='resnet50', drop_path_rate=0.0, frozen_stages=1, norm_eval=True),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[512, 1024, 2048]))
benchmark = dict(detector='retinanet', backbone='resnet50', schedule='1x')
