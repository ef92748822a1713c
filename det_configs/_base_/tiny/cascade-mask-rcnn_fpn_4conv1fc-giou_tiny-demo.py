# Cascade Mask R-CNN for a CPU demo: the real 1x ConvNeXt recipe
# (../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-1x_coco.py) with what a 2-core
# machine and the generated demo set need changed. The values below are our choice, measured on the demo
# data with the demo's ResNet-18 backbones (BENCHMARKS.md, "The demo's detectors"):
#   data    data/demo/coco (tools/make_demo_data.py), its 10 classes, images fit into 192x160 (one
#           scale: the demo images are already small), batch 4, no worker processes;
#           no horizontal flip: two of the classes (triangle_dstripes, triangle_astripes) are mirror
#           images of each other, so a flip turns one into the other under the first's label;
#   length  iteration-based: 300 iterations (warm-up 20, lr x0.1 at 200 and 275); no validation during
#           training (the demo's test step evaluates the final checkpoint once);
#   CPU     fp32 (AMP needs a GPU) and BatchNorm instead of SyncBN in the box heads (SyncBN needs CUDA,
#           also under tools/dist_train.sh with gloo);
#   model   64 channels in the neck, RPN and RoI heads (256 in the recipe) and 256 in the box heads' fc
#           (1024), the stem and first stage frozen (mmdet's ResNet recipes freeze them too), fewer
#           proposals and sampled RoIs (the images hold at most a few objects);
#   optim   the recipe's AdamW (wd 0.05, layer-wise lr decay 0.7) at lr 1e-3 instead of 2e-4: in 200
#           iterations 2e-4 reached box AP50 19, 1e-3 and 2e-3 29-31.
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
__max_iters = 300

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=__image_scale, keep_ratio=True),
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
# Lists are replaced, not merged, by mmengine: rebuild them from the recipe's (via `_base_`).
model = dict(
    backbone=dict(frozen_stages=1),
    neck=dict(out_channels=__channels),
    rpn_head=dict(in_channels=__channels, feat_channels=__channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=__channels),
        bbox_head=[dict(head, num_classes=len(classes), norm_cfg=dict(type='BN', requires_grad=True),
                        in_channels=__channels, conv_out_channels=__channels, fc_out_channels=256)
                   for head in _base_.model.roi_head.bbox_head],
        mask_roi_extractor=dict(out_channels=__channels),
        mask_head=dict(num_classes=len(classes), in_channels=__channels, conv_out_channels=__channels)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=[dict(stage, sampler=dict(stage.sampler, num=16)) for stage in _base_.model.train_cfg.rcnn]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=50)))

# fused=True (our choice): torch's one-pass AdamW kernel, the same update; in make demo's lanes (one thread
# each) an iteration went from 0.70 to 0.57 s (BENCHMARKS.md section 7).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3, fused=True))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=__max_iters, val_interval=__max_iters,
                 val_begin=__max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=__max_iters, by_epoch=False,
         milestones=[__max_iters * 2 // 3, __max_iters * 11 // 12], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=__max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
# One process x 4 images: --auto-scale-lr keeps the demo's lr on one process (the real recipes say 16).
auto_scale_lr = dict(base_batch_size=4)
