# UperNet 160k on ADE20K, DeiT-S backbone pretrained with the EfficientTrain curriculum.
# Differs from its baseline and efficienttrain++ twins only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_deit-s_8xb2-160k_ade20k-512x512.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/deit_small_patch16_224_efficienttrain/final.pth'))
