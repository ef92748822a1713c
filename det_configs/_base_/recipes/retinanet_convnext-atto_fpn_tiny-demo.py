# RetinaNet, tiny CPU demo with a ConvNeXt-Atto backbone (timm convnext_atto).
# Random init (no checkpoint): the configs to run are the pair
# tiny/retinanet_convnext-atto_fpn_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/retinanet_fpn_tiny-demo.py'

model = dict(
    backbone=dict(model_name='convnext_atto', drop_path_rate=0.0),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[80, 160, 320]))
benchmark = dict(detector='retinanet', backbone='convnext_atto', schedule='tiny')
