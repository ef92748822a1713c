# Cascade Mask R-CNN 1x (ConvNeXt recipe) with a DeiT-S backbone (timm deit_small_patch16_224).
# Inferred (no official DeiT Cascade file): the paper's Cascade recipe (ConvNeXt's), its layer-wise
# decay 0.7 taken per transformer block (12 layers); drop path 0.1 = DeiT-S pretraining.
# det_configs/RECIPES.md cites every value (family cascade-deit-1x).
# Random init (no checkpoint): the configs to run are
# cascade_mask_rcnn/cascade-mask-rcnn_deit-s_fpn_4conv1fc-giou_amp-1x_coco_<curriculum>.py.
_base_ = '../detectors/cascade-mask-rcnn_fpn_4conv1fc-giou_adamw-lld_amp-ms-crop-1x_coco.py'

model = dict(
    backbone=dict(model_name='deit_small_patch16_224', drop_path_rate=0.1),
    # channels of pyramid levels 0-3 (tests/test_det_configs.py checks them against TimmBackbone)
    neck=dict(in_channels=[96, 192, 384, 384]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7, num_layers=12))
benchmark = dict(detector='cascade_mask_rcnn', backbone='deit_small_patch16_224', schedule='1x')
