# Cascade Mask R-CNN on a timm backbone with the heads of the official Swin, ConvNeXt and PVTv2 Cascade
# files: pyramid levels 0-3 (strides 4..32) into a 5-level FPN, and three class-specific 4conv1fc box
# heads (SyncBN) trained with GIoU (weight 10) on decoded boxes; RPN, RoI extractors, mask head and
# train/test settings are mmdet's cascade-mask-rcnn_r50_fpn.py, as in those files.
# Recipes set model.backbone.model_name / drop_path_rate and model.neck.in_channels.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

__stage_target_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
model = dict(
    backbone=dict(
        _delete_=True,
        type='TimmBackbone',
        model_name=None,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        checkpoint=None,  # the pretrained weights; the baseline/efficienttrain configs set it
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(in_channels=None),
    roi_head=dict(bbox_head=[
        dict(
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                            target_stds=stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in __stage_target_stds
    ]))
