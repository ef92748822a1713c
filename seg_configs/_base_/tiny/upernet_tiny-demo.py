# UperNet for a CPU demo: the Swin-style ADE20K recipe (../segmentors/upernet_swin_ade20k-512x512.py:
# AdamW, no decay on norms and position tables, linear warm-up + poly) with only what a 2-core machine
# and the generated demo set need changed:
#   data    data/demo/ade (tools/make_demo_data.py): the demo's COCO scenes as ADE20K-layout label maps,
#           its 10 classes, PNG images, 0 = ignore (reduce_zero_label as ADE20K); 128x128 crops of images
#           resized to fit 192x160 and enlarged up to 1.5x (never shrunk: the class textures have a period
#           of 2.2-2.9 px), batch 4, no worker processes;
#           no horizontal flip: two of the classes (triangle_dstripes, triangle_astripes) are mirror
#           images of each other, so a flip turns one into the other under the first's label;
#   heads   64 UPerHead / 32 auxiliary channels instead of 512 / 256, BatchNorm instead of SyncBN;
#   length  iteration-based: 120 iterations (warm-up 15, poly to 0), evaluated at the end;
#   lr      AdamW 2e-4 instead of 6e-5, so that 120 iterations move the new heads.
# Test: single scale at 192x160; --tta: that scale x 0.5-1.75 (the real configs also flip; see data).
# Recipes in ../recipes/ add the backbone.
_base_ = '../segmentors/upernet_swin_ade20k-512x512.py'

data_root = 'data/demo/ade/'
# tools/make_demo_data.py's default classes, label value = index + 1 (tests check they agree).
classes = ('circle_hstripes', 'square_vstripes', 'triangle_dstripes', 'ring_astripes',
           'cross_checker', 'circle_vstripes', 'square_dstripes', 'triangle_astripes',
           'ring_checker', 'cross_hstripes')
metainfo = dict(classes=classes)
test_scale = (192, 160)
__crop = (128, 128)
__max_iters = 120

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=test_scale, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=__crop, cat_max_ratio=0.75),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)), keep_ratio=True)
             for r in [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
__dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=True,
    metainfo=metainfo)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        __dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        __dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=__crop),
    decode_head=dict(channels=64, num_classes=len(classes), norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=32, num_classes=len(classes), norm_cfg=norm_cfg))
# fused=True (our choice): torch's one-pass AdamW kernel, the same update, a faster step (BENCHMARKS.md
# section 7 measures it on the demo's detectors).
optim_wrapper = dict(optimizer=dict(lr=2e-4, fused=True))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0, end=__max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=__max_iters, val_interval=__max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=__max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False, window_size=10)
