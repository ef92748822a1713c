# UperNet 80k on ADE20K, Swin-S backbone pretrained with the EfficientTrain++ curriculum.
# Differs from its baseline and efficienttrain twins only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_swin-s_8xb2-80k_ade20k-512x512.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/swin_small_patch4_window7_224_efficienttrain++/final.pth'))
