# UperNet 160k on ADE20K with a Swin-B backbone (timm swin_base_patch4_window7_224), 512x512 crops,
# 16 images per iteration, after
#   Swin-Transformer-Semantic-Segmentation configs/swin/upernet_swin_base_patch4_window7_512x512_160k_ade20k.py
# Random init (no checkpoint): the configs to run are
#   upernet/upernet_swin-b_8xb2-160k_ade20k-512x512_{baseline,efficienttrain,efficienttrain++}.py
_base_ = [
    '../segmentors/upernet_swin_ade20k-512x512.py',
    '../schedules/poly-warmup1500_160k.py',
]

model = dict(
    backbone=dict(model_name='swin_base_patch4_window7_224', drop_path_rate=0.3),
    # channels of the backbone outputs (tests/test_seg_configs.py checks them against TimmBackbone)
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
benchmark = dict(segmentor='upernet', backbone='swin_base_patch4_window7_224', schedule='160k')
