# RetinaNet for a CPU demo: the real 1x recipe (../detectors/retinanet_fpn_1x_coco.py) with what a 2-core
# machine and the generated demo set need changed. Every value below is our choice, measured on the demo
# data with the demo's ResNet-18 backbones (BENCHMARKS.md, "The demo's detectors"): the recipe's own
# settings reached box AP50 ~22 in 300 iterations, too low for two pretrainings' difference to show.
#   data    data/demo/coco (tools/make_demo_data.py), its 10 classes, images fit into 192x160,
#           batch 4, no worker processes;
#           no horizontal flip: two of the classes (triangle_dstripes, triangle_astripes) are mirror
#           images of each other, so a flip turns one into the other under the first's label;
#   length  iteration-based: 400 iterations (warm-up 30, lr x0.1 at 266 and 366); no validation during
#           training (the demo's test step evaluates the final checkpoint once);
#   model   the stem and first stage frozen (as mmdet's ResNet recipes); a slim neck and head (64
#           channels and 2 stacked convs instead of 256 and 4) with GroupNorm in both (GN in the head is
#           how FCOS/ATSS make RetinaNet-style heads converge fast); fewer boxes before NMS;
#   optim   the recipe's AdamW (wd 0.05) at lr 2e-3 instead of 1e-4 (stable with the GN head; 1e-3 and
#           4e-4 learned slower in 300 iterations).
_base_ = '../detectors/retinanet_fpn_1x_coco.py'

data_root = 'data/demo/coco/'
train_ann_file = 'annotations/instances_train.json'
val_ann_file = 'annotations/instances_val.json'
# tools/make_demo_data.py's default classes, in category-id order (tests check they agree).
classes = ('circle_hstripes', 'square_vstripes', 'triangle_dstripes', 'ring_astripes',
           'cross_checker', 'circle_vstripes', 'square_dstripes', 'triangle_astripes',
           'ring_checker', 'cross_hstripes')
metainfo = dict(classes=classes)
__image_scale = (192, 160)
__max_iters = 400

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        ann_file=train_ann_file,
        data_prefix=dict(img='train/'),
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file=val_ann_file,
        data_prefix=dict(img='val/'),
        metainfo=metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

__channels = 64
__group_norm = dict(type='GN', num_groups=16, requires_grad=True)
model = dict(
    # the stem and first stage stay as pretrained, as in mmdet's own ResNet recipes (frozen_stages=1)
    backbone=dict(frozen_stages=1),
    neck=dict(out_channels=__channels, norm_cfg=__group_norm),
    bbox_head=dict(
        num_classes=len(classes),
        in_channels=__channels,
        feat_channels=__channels,
        stacked_convs=2,
        norm_cfg=__group_norm,
        anchor_generator=dict(octave_base_scale=4)),
    test_cfg=dict(nms_pre=300))
# fused=True (our choice): torch's one-pass AdamW kernel, the same update; in make demo's lanes (one thread
# each) an iteration went from 0.37 to 0.28 s (BENCHMARKS.md section 7).
optim_wrapper = dict(optimizer=dict(lr=2e-3, fused=True))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=__max_iters, val_interval=__max_iters,
                 val_begin=__max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', begin=0, end=__max_iters, by_epoch=False,
         milestones=[__max_iters * 2 // 3, __max_iters * 11 // 12], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=__max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
# One process x 4 images: --auto-scale-lr keeps the demo's lr on one process (the real recipes say 16).
auto_scale_lr = dict(base_batch_size=4)
