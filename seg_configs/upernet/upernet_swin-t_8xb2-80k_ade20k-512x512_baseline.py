# UperNet 80k on ADE20K, Swin-T backbone pretrained with the ordinary (baseline) recipe.
# Differs from its efficienttrain and efficienttrain++ twins only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_swin-t_8xb2-80k_ade20k-512x512.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/swin_tiny_patch4_window7_224_baseline/final.pth'))
