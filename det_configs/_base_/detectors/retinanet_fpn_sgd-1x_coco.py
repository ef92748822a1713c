# RetinaNet 1x on COCO, mmdet's ResNet-50 recipe (configs/retinanet/retinanet_r50_fpn_1x_coco.py): SGD 0.01,
# single scale 1333x800, 12 epochs; the ResNet-50 file in _base_/recipes/ adds the backbone with mmdet's
# frozen_stages=1 and norm_eval=True.
_base_ = [
    '../models/retinanet_timm_fpn.py',
    '../datasets/coco_detection.py',
    '../schedules/retinanet_sgd_1x.py',
    '../default_runtime.py',
]
