# UperNet 160k on ADE20K with a DeiT-S backbone (timm deit_small_patch16_224), 512x512 crops,
# 16 images per iteration, after
#   mmsegmentation configs/vit/vit_deit-s16_upernet_8xb2-160k_ade20k-512x512.py
# Random init (no checkpoint): the configs to run are
#   upernet/upernet_deit-s_8xb2-160k_ade20k-512x512_{baseline,efficienttrain,efficienttrain++}.py
_base_ = [
    '../segmentors/upernet_vit_ade20k-512x512.py',
    '../schedules/poly-warmup1500_160k.py',
]

model = dict(
    backbone=dict(model_name='deit_small_patch16_224', drop_path_rate=0.1),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
benchmark = dict(segmentor='upernet', backbone='deit_small_patch16_224', schedule='160k')
