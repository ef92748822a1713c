# UperNet on ADE20K, Swin's official recipe (SwinTransformer/Swin-Transformer-Semantic-Segmentation,
# configs/swin/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k.py): AdamW lr 6e-5, betas
# (0.9, 0.999), weight decay 0.01, none on absolute_pos_embed, relative_position_bias_table and norms;
# 16 images per iteration. Recipes in ../recipes/ add the backbone and the schedule (80k or 160k).
_base_ = [
    '../models/upernet_timm.py',
    '../datasets/ade20k.py',
    '../default_runtime.py',
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),  # timm's norm1/norm2/downsample.norm and the output norms norm{i}
    }))
