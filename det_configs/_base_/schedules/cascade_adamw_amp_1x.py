# Cascade Mask R-CNN 1x, Swin recipe (Swin-Transformer-Object-Detection, configs/swin/
# cascade_mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_1x_coco.py and its
# _base_/schedules/schedule_1x.py): AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05 except on
# parameters whose name holds `absolute_pos_embed`, `relative_position_bias_table` or `norm` (mmcv's
# custom_keys match a substring of the full name, as mmengine's do), no layer-wise decay, no gradient
# clipping, mixed precision, batch 16, 12 epochs, lr x0.1 after epochs 8 and 11, 500 linear warm-up
# iterations from 0.001. det_configs/RECIPES.md cites every value.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.0),
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
    }))

# The recipes' total batch is 16 (8 GPUs x 2 images); --auto-scale-lr rescales lr to another batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
