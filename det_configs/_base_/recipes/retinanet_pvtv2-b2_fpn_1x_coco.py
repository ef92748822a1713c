# RetinaNet 1x (PVT's own recipe, detection/configs/retinanet_pvt_v2_b2_fpn_1x_coco.py) with a PVTv2-B2
# backbone (timm pvt_v2_b2); drop path 0.1 is pvt_v2_b2's default in PVT's detection/pvt_v2.py.
# det_configs/RECIPES.md cites every value (family retinanet-pvtv2-1x).
# Random init (no checkpoint): the configs to run are the pair
# retinanet/retinanet_pvtv2-b2_fpn_1x_coco_{baseline,efficienttrain}.py.
_base_ = '../detectors/retinanet_fpn_adamw-wd1e-4-1x_coco.py'

model = dict(
    backbone=dict(model_name='pvt_v2_b2', drop_path_rate=0.1),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[128, 320, 512]))
benchmark = dict(detector='retinanet', backbone='pvt_v2_b2', schedule='1x')
