# RetinaNet 1x for transformer-era backbones, after DAT (arXiv 2201.00520), which the paper follows; DAT's
# v1 RetinaNet config is not public, so these values follow the Swin detection code DAT builds on and the
# RetinaNet 1x files of PVTv2 and mmdet (inferred; det_configs/RECIPES.md says from what): AdamW lr 1e-4, betas
# (0.9, 0.999), weight decay 0.05 (none on norms, position embeddings, class token and relative position
# bias tables), no gradient clipping, fp32, batch 16, single scale 1333x800, 12 epochs, lr x0.1 after
# epochs 8 and 11, 500 linear warm-up iterations from 0.001.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))

# The recipes' total batch is 16 (8 GPUs x 2 images); --auto-scale-lr rescales lr to another batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
