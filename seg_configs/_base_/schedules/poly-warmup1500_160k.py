# 160k iterations, evaluated and checkpointed every 16k: linear warm-up over 1500 iterations from
# 1e-6 x lr, poly decay (power 1.0, to 0) over all 160k iterations from iteration 0. The two schedulers
# multiply while they overlap, which is mmcv 0.x's 'poly' + 'linear' warm-up of the Swin and ConvNeXt
# recipes: lr(t) = lr * (1e-6 + (1 - 1e-6) * t / 1500) * (1 - t / 160000) for t < 1500
# (tests/test_seg_configs.py checks it). mmseg 1.x's own Swin port starts the poly at 1500 instead.
# The optimizer comes from the segmentor file.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0, end=160000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
