# UperNet, tiny CPU demo with a ResNet-18 backbone (timm resnet18).
# Random init (no checkpoint): the configs to run are the pair
#   tiny/upernet_resnet18_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/upernet_tiny-demo.py'

model = dict(
    backbone=dict(model_name='resnet18', drop_path_rate=0.0, norm_eval=True),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
benchmark = dict(segmentor='upernet', backbone='resnet18', schedule='tiny')
