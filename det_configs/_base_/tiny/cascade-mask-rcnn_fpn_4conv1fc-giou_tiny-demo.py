# Cascade Mask R-CNN for a CPU demo: the real 1x ConvNeXt recipe
# (../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-1x_coco.py) with only what a
# 2-core machine and the generated demo set need changed:
#   data    data/demo/coco (tools/make_demo_data.py), its 10 classes, images fit into 192x160 (one
#           scale: the demo images are already small), batch 2, no worker processes;
#   length  iteration-based: 60 iterations (warm-up 10, lr x0.1 at 40 and 55), evaluated at the end
#           (about 2 s an iteration on a busy 2-core machine, 4x RetinaNet's);
#   CPU     fp32 (AMP needs a GPU) and BatchNorm instead of SyncBN in the box heads (SyncBN needs CUDA,
#           also under tools/dist_train.sh with gloo);
#   model   fewer proposals and sampled RoIs (the images hold at most a few objects).
# The optimizer is the recipe's (AdamW 2e-4, wd 0.05, layer-wise lr decay 0.7); the recipes in ../recipes/
# set num_layers by ConvNeXt's rule for their stage depths (so that no layer id is empty).
# Recipes in ../recipes/ add the backbone.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-1x_coco.py'

data_root = 'data/demo/coco/'
train_ann_file = 'annotations/instances_train.json'
val_ann_file = 'annotations/instances_val.json'
# tools/make_demo_data.py's default classes, in category-id order (tests check they agree).
classes = ('circle_hstripes', 'square_vstripes', 'triangle_dstripes', 'ring_astripes',
           'cross_checker', 'circle_vstripes', 'square_dstripes', 'triangle_astripes',
           'ring_checker', 'cross_hstripes')
metainfo = dict(classes=classes)
__image_scale = (192, 160)
__max_iters = 60

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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

# Lists are replaced, not merged, by mmengine: rebuild them from the recipe's (via `_base_`).
model = dict(
    roi_head=dict(
        bbox_head=[dict(head, num_classes=len(classes), norm_cfg=dict(type='BN', requires_grad=True))
                   for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=[dict(stage, sampler=dict(stage.sampler, num=16)) for stage in _base_.model.train_cfg.rcnn]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=50)))

optim_wrapper = dict(type='OptimWrapper')

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=__max_iters, val_interval=__max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=__max_iters, by_epoch=False,
         milestones=[__max_iters * 2 // 3, __max_iters * 11 // 12], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=__max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
# One process x 2 images: --auto-scale-lr keeps the demo's lr on one process (the real recipes say 16).
auto_scale_lr = dict(base_batch_size=2)
