# Runtime shared by every detection config: mmdet's defaults plus what this project adds.
_base_ = 'mmdet::_base_/default_runtime.py'

# `backbones` registers TimmBackbone, TimmLayerDecayOptimizerConstructor and PretrainProvenanceHook.
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)

# Records which pretraining checkpoint (and its provenance) the run started from:
# <work_dir>/pretrain_provenance.json, read by tools/compare.py.
custom_hooks = [dict(type='PretrainProvenanceHook')]

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))

# Experiment tracking, mmengine's convention: LocalVisBackend writes <work_dir>/<timestamp>/vis_data/scalars.json;
# `tools/train.py --vis tensorboard` (or wandb) adds TensorboardVisBackend (WandbVisBackend) beside it, or list
# them here: vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')].
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')

# A fixed seed makes a baseline/EfficientTrain pair differ only in the pretrained weights;
# change it with --cfg-options randomness.seed=N for repeated runs.
randomness = dict(seed=0)

# On machines without GPUs tools/train.py and tools/test.py start a gloo process group instead.
env_cfg = dict(dist_cfg=dict(backend='nccl'))
