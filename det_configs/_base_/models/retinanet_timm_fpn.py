# RetinaNet on a timm backbone: pyramid levels 1-3 (strides 8, 16, 32) into an FPN that starts at its first
# input and adds two extra convs on that input -> 5 levels, strides 8..128. The same layers as the official
# files' FPN over levels 0-3 with start_level=1 (mmdet's R-50 and PVT's PVTv2 RetinaNet, DAT-Detection's),
# which build no lateral conv for level 0; mmdet's Swin RetinaNet states it our way.
# Recipes set model.backbone.model_name / drop_path_rate and model.neck.in_channels.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmBackbone',
        model_name=None,
        out_indices=(1, 2, 3),
        drop_path_rate=0.0,
        checkpoint=None,  # the pretrained weights; the baseline/efficienttrain configs set it
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(in_channels=None, start_level=0, add_extra_convs='on_input', num_outs=5))
