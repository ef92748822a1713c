# Cascade Mask R-CNN 1x on COCO, ConvNeXt recipe (facebookresearch/ConvNeXt object_detection/): multi-scale
# training with the DETR-style crop, AdamW 2e-4 with layer-wise lr decay, mixed precision, 12 epochs.
# Used by ConvNeXt (official) and DeiT (inferred: the paper's Cascade recipe, decayed per block); the
# files in _base_/recipes/ add the backbone and its decay rate and layer count.
_base_ = [
    '../models/cascade-mask-rcnn_timm_fpn_4conv1fc-giou.py',
    '../datasets/coco_instance_ms-crop.py',
    '../schedules/cascade_adamw-lld_amp_1x.py',
    '../default_runtime.py',
]
