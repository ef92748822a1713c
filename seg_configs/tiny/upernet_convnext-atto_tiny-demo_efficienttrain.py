# UperNet, tiny CPU demo, ConvNeXt-Atto backbone pretrained with the EfficientTrain curriculum.
# Differs from its baseline twin only in the checkpoint below; use another with
# --cfg-options model.backbone.checkpoint=PATH.
_base_ = '../_base_/recipes/upernet_convnext-atto_tiny-demo.py'

model = dict(backbone=dict(
    checkpoint='work_dirs/pretrain/convnext_atto_efficienttrain/final.pth'))
