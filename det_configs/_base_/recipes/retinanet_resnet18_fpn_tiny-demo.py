# RetinaNet, tiny CPU demo with a ResNet-18 backbone (timm resnet18).
# Random init (no checkpoint): the configs to run are the pair
# tiny/retinanet_resnet18_fpn_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/retinanet_fpn_tiny-demo.py'

model = dict(
    backbone=dict(model_name='resnet18', drop_path_rate=0.0, norm_eval=True),
    # channels of pyramid levels 1-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[128, 256, 512]))
benchmark = dict(detector='retinanet', backbone='resnet18', schedule='tiny')
