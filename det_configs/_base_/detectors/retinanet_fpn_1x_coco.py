# RetinaNet 1x on COCO, DAT recipe (inferred values: det_configs/RECIPES.md), for the Swin, ConvNeXt and DeiT
# backbones; the files in _base_/recipes/ add the backbone.
_base_ = [
    '../models/retinanet_timm_fpn.py',
    '../datasets/coco_detection.py',
    '../schedules/retinanet_adamw_1x.py',
    '../default_runtime.py',
]
