# UperNet on ADE20K, ConvNeXt's official recipe (facebookresearch/ConvNeXt, semantic_segmentation/configs/
# convnext/upernet_convnext_{tiny,small,base}_512_160k_ade20k_ss.py): AdamW lr 1e-4, betas (0.9, 0.999),
# weight decay 0.05 (none on 1-d tensors and biases), stage-wise lr decay 0.9 with every downsampling
# layer at the stem's rate (its constructor's rule: downsample_at_stem), mixed precision, 16 images per
# iteration; single-scale test by 512x512 sliding windows with stride 341. Its ms+flip numbers come from
# the *_ms.py files (upernet_convnext_{tiny,small,base}_512_160k_ade20k_ms.py), which set no test_cfg and so
# test whole images (their base models/upernet_convnext.py: mode='whole'): `tta_test_cfg` is that fact, and
# tools/test.py --tta applies it to the model it wraps (finetune.segmentation.use_test_time_augmentation).
# Recipes set num_layers (6 for T, 12 for S/B), the backbone and the schedule.
_base_ = [
    '../models/upernet_timm.py',
    '../datasets/ade20k.py',
    '../default_runtime.py',
]

model = dict(test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
tta_test_cfg = dict(mode='whole')
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    constructor='TimmLayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=None, downsample_at_stem=True))
