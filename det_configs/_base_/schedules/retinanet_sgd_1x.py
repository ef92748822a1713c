# RetinaNet 1x for ResNet-50, mmdet's own recipe (open-mmlab/mmdetection v3.3.0,
# configs/retinanet/retinanet_r50_fpn_1x_coco.py and _base_/schedules/schedule_1x.py): SGD lr 0.01,
# momentum 0.9, weight decay 1e-4 on every parameter, no gradient clipping, fp32, batch 16, 12 epochs,
# lr x0.1 after epochs 8 and 11, 500 linear warm-up iterations from 0.001.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))

auto_scale_lr = dict(enable=False, base_batch_size=16)
