# Cascade Mask R-CNN 3x, Swin recipe (Swin-Transformer-Object-Detection, configs/swin/
# cascade_mask_rcnn_swin_{tiny,small,base}_..._adamw_3x_coco.py): the 1x optimizer, 36 epochs,
# lr x0.1 after epochs 27 and 33.
_base_ = './cascade_adamw_amp_1x.py'

train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
