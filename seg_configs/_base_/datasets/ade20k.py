# ADE20K (150 classes), 512x512 crops: mmseg's dataset file, with three changes.
#   * data_root ends with '/' and is the one place that says where the data is (tools re-point every
#     dataset at it, as for COCO).
#   * 2 images per GPU (8 GPUs x 2 = 16 per iteration, the recipes' batch); auto_scale_lr states that base.
#   * The multi-scale + flip test ("MS+flip"): ratios 0.5-1.75 of the single-scale test scale (2048, 512)
#     and horizontal flip, softmax scores averaged (mmseg's SegTTAModel). mmseg 0.x's MultiScaleFlipAug,
#     which the Swin and ConvNeXt repositories used for their ms+flip numbers, scales the test scale;
#     mmseg 1.x's ade20k.py scales the raw image instead (Resize(scale_factor=r)), which differs for
#     images whose short side is not 512. We keep the 0.x meaning.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

data_root = 'data/ade/ADEChallengeData2016/'
test_scale = (2048, 512)
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)), keep_ratio=True)
             for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
auto_scale_lr = dict(enable=False, base_batch_size=16)
