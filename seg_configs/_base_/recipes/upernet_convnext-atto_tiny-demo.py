# UperNet, tiny CPU demo with a ConvNeXt-Atto backbone (timm convnext_atto).
# Random init (no checkpoint): the configs to run are the pair
#   tiny/upernet_convnext-atto_tiny-demo_{baseline,efficienttrain}.py.
_base_ = '../tiny/upernet_tiny-demo.py'

model = dict(
    backbone=dict(model_name='convnext_atto', drop_path_rate=0.0),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[40, 80, 160, 320]),
    auxiliary_head=dict(in_channels=160))
benchmark = dict(segmentor='upernet', backbone='convnext_atto', schedule='tiny')
