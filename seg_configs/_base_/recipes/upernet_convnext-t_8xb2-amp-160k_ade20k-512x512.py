# UperNet 160k on ADE20K with a ConvNeXt-T backbone (timm convnext_tiny), 512x512 crops,
# 16 images per iteration, after
#   ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_tiny_512_160k_ade20k_ss.py
# Random init (no checkpoint): the configs to run are
#   upernet/upernet_convnext-t_8xb2-amp-160k_ade20k-512x512_{baseline,efficienttrain}.py
_base_ = [
    '../segmentors/upernet_convnext_ade20k-512x512.py',
    '../schedules/poly-warmup1500_160k.py',
]

model = dict(
    backbone=dict(model_name='convnext_tiny', drop_path_rate=0.4),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=6))
benchmark = dict(segmentor='upernet', backbone='convnext_tiny', schedule='160k')
