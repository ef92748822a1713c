# COCO instances with the Cascade recipes' training augmentation (DETR / Sparse R-CNN style), in every
# official Swin, ConvNeXt and PVTv2 Cascade file, 1x and 3x alike (written with mmdet 3.x's transforms as
# in mmdet's configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py); flip with probability 0.5, then
# either a random short side in 480..800 (step 32), or a random short side in {400, 500, 600},
# a random absolute crop of 384..600 px, then the 480..800 resize.
_base_ = './coco_instance.py'

__multi_scale = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=__multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(1333, 400), (1333, 500), (1333, 600)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=__multi_scale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
