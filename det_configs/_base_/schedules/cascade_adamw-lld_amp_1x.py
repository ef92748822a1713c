# Cascade Mask R-CNN 1x as in ConvNeXt's detection code: AdamW lr 2e-4, weight decay 0.05, layer-wise
# lr decay 0.7 (num_layers 6 for tiny models, 12 for small/base; set per backbone), mixed precision,
# batch 16, 12 epochs, lr x0.1 after epochs 8 and 11, 1000 linear warm-up iterations.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='TimmLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))

auto_scale_lr = dict(enable=False, base_batch_size=16)
