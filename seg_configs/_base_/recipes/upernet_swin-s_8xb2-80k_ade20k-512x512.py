# UperNet 80k on ADE20K with a Swin-S backbone (timm swin_small_patch4_window7_224), 512x512 crops,
# 16 images per iteration, after
#   Swin-Transformer-Semantic-Segmentation configs/swin/upernet_swin_small_patch4_window7_512x512_160k_ade20k.py
# (the official recipe is 160k; 80k is the same recipe at half the length, as in the
# EfficientTrain++ paper's Table 18).
# Random init (no checkpoint): the configs to run are
#   upernet/upernet_swin-s_8xb2-80k_ade20k-512x512_{baseline,efficienttrain,efficienttrain++}.py
_base_ = [
    '../segmentors/upernet_swin_ade20k-512x512.py',
    '../schedules/poly-warmup1500_80k.py',
]

model = dict(
    backbone=dict(model_name='swin_small_patch4_window7_224', drop_path_rate=0.3),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
benchmark = dict(segmentor='upernet', backbone='swin_small_patch4_window7_224', schedule='80k')
