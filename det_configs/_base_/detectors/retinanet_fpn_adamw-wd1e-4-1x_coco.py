# RetinaNet 1x on COCO, PVT's PVTv2 recipe (whai362/PVT v2, detection/configs/retinanet_pvt_v2_b2_fpn_1x_coco.py):
# AdamW 1e-4 with weight decay 1e-4 on everything, single scale 1333x800, 12 epochs; the PVTv2 file in
# _base_/recipes/ adds the backbone.
_base_ = [
    '../models/retinanet_timm_fpn.py',
    '../datasets/coco_detection.py',
    '../schedules/retinanet_adamw-wd1e-4_1x.py',
    '../default_runtime.py',
]
