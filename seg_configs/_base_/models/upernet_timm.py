# UperNet on a TimmBackbone, the layout of the Swin / ConvNeXt / mmseg ViT ADE20K recipes: four backbone
# outputs into a UPerHead (PPM pool scales 1, 2, 3, 6; 512 channels; dropout 0.1; SyncBN) and an FCN
# auxiliary head (one conv of 256 channels, loss weight 0.4) on the third output.
# Recipes set model.backbone.model_name / drop_path_rate and the heads' in_channels (and in_index).
#
# data_preprocessor.test_cfg pads test images to multiples of 32, which TimmBackbone needs (the
# official Swin pads inside the backbone instead); the logits of the padding are cropped away
# before the metric, so only features near the border can differ.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # the runner uses BatchNorm when not distributed
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512),  # the training crop
    test_cfg=dict(size_divisor=32))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='TimmBackbone',
        model_name=None,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        checkpoint=None,  # the pretrained weights; the baseline/efficienttrain configs set it
        frozen_stages=-1,
        norm_eval=False),
    decode_head=dict(
        type='UPerHead',
        in_channels=None,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=None,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
