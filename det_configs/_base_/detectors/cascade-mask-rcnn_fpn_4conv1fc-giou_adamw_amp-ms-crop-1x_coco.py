# Cascade Mask R-CNN 1x on COCO, Swin recipe (Swin-Transformer-Object-Detection configs/swin/): multi-scale
# training with the DETR-style crop, AdamW 1e-4 without layer-wise decay, mixed precision, 12 epochs.
# Used by Swin (official), PVTv2 (PVT's own Cascade file has the same recipe) and ResNet-50 (the Swin
# paper trains its R-50 baseline with the same settings); the files in _base_/recipes/ add the backbone.
_base_ = [
    '../models/cascade-mask-rcnn_timm_fpn_4conv1fc-giou.py',
    '../datasets/coco_instance_ms-crop.py',
    '../schedules/cascade_adamw_amp_1x.py',
    '../default_runtime.py',
]
