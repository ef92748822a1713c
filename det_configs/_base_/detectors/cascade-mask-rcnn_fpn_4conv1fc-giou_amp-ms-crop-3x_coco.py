# Cascade Mask R-CNN 3x on COCO (ConvNeXt recipe: multi-scale 480-800 with the DETR-style crop,
# 36 epochs) for any TimmBackbone; the files in _base_/recipes/ add the backbone.
_base_ = [
    '../models/cascade-mask-rcnn_timm_fpn_4conv1fc-giou.py',
    '../datasets/coco_instance_ms-crop.py',
    '../schedules/cascade_adamw-lld_amp_3x.py',
    '../default_runtime.py',
]
