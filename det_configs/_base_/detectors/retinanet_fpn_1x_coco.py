# RetinaNet 1x on COCO (DAT recipe) for any TimmBackbone; the files in _base_/recipes/ add the backbone.
_base_ = [
    '../models/retinanet_timm_fpn.py',
    '../datasets/coco_detection.py',
    '../schedules/retinanet_adamw_1x.py',
    '../default_runtime.py',
]
