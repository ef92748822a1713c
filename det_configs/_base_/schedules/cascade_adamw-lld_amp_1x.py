# Cascade Mask R-CNN 1x, ConvNeXt recipe (facebookresearch/ConvNeXt, object_detection/configs/convnext/
# cascade_mask_rcnn_convnext_*_3x_coco_in1k.py, whose schedule base is Swin-Transformer-Object-Detection's
# configs/_base_/schedules/schedule_1x.py): AdamW lr 2e-4, betas (0.9, 0.999), weight decay 0.05 (none on
# 1-d parameters, biases and position/class tokens), layer-wise lr decay (rate and num_layers set per
# backbone: 0.7 / 6 for T, 0.7 / 12 for S, 0.8 / 12 for B), no gradient clipping, mixed precision,
# batch 16, 500 linear warm-up iterations from 0.001. ConvNeXt publishes only 3x files; this 1x keeps
# their optimizer and shortens the schedule to 12 epochs, lr x0.1 after epochs 8 and 11, as Swin's own
# 1x file does (inferred; det_configs/RECIPES.md).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='TimmLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))

# The recipes' total batch is 16 (8 GPUs x 2 images); --auto-scale-lr rescales lr to another batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
