# RetinaNet for a CPU demo: the real 1x recipe (../detectors/retinanet_fpn_1x_coco.py) with only what a
# 2-core machine and the generated demo set need changed:
#   data    data/demo/coco (tools/make_demo_data.py), its 10 classes, images fit into 192x160,
#           batch 2, no worker processes;
#   length  iteration-based: 240 iterations (warm-up 30, lr x0.1 at 160 and 220), evaluated at the end;
#   model   fewer candidate boxes before NMS (the images are ~50x smaller than COCO's).
# The optimizer is the recipe's (AdamW 1e-4, wd 0.05). Recipes in ../recipes/ add the backbone.
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
__max_iters = 240

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
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
    batch_size=2,
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

model = dict(
    bbox_head=dict(num_classes=len(classes)),
    test_cfg=dict(nms_pre=300))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=__max_iters, val_interval=__max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', begin=0, end=__max_iters, by_epoch=False,
         milestones=[__max_iters * 2 // 3, __max_iters * 11 // 12], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=__max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
# One process x 2 images: --auto-scale-lr keeps the demo's lr on one process (the real recipes say 16).
auto_scale_lr = dict(base_batch_size=2)
