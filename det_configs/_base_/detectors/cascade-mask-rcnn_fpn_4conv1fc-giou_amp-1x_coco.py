# Cascade Mask R-CNN 1x on COCO (ConvNeXt recipe, single-scale 1333x800) for any TimmBackbone;
# the files in _base_/recipes/ add the backbone.
_base_ = [
    '../models/cascade-mask-rcnn_timm_fpn_4conv1fc-giou.py',
    '../datasets/coco_instance.py',
    '../schedules/cascade_adamw-lld_amp_1x.py',
    '../default_runtime.py',
]
