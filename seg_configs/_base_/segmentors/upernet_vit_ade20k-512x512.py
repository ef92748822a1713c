# UperNet on ADE20K for a plain ViT, mmseg's DeiT-S recipe (open-mmlab/mmsegmentation 1.2.2,
# configs/vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py and its 160k twin, which inherit
# vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py and set neck=None): the stride-16 maps of blocks
# 2, 5, 8 and 11 (no final norm) go straight into the UPerHead, the FCN auxiliary head reads block 11;
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01, none on pos_embed and cls_token; 16 images per
# iteration. The official file also lists a `norm` key, but mmseg's ViT names its LayerNorms ln1/ln2 and its
# heads' norms bn, so there it matches nothing and every LayerNorm decays; under timm's names (norm1/norm2)
# the same key would exempt them, so it is left out to keep the official *effective* rule
# (tests/test_seg_configs.py counts the decayed parameters of both models). The position embedding is resized to the 512x512 crop (32x32 tokens, bicubic) when
# the checkpoint is read, as mmseg's ViT(img_size=(512, 512)) does, and interpolated for other sizes.
_base_ = [
    '../models/upernet_timm.py',
    '../datasets/ade20k.py',
    '../default_runtime.py',
]

model = dict(
    backbone=dict(vit_blocks=(2, 5, 8, 11), img_size=512),
    decode_head=dict(in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_index=3))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
    }))
