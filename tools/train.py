"""Train a detector from an mmdet 3.x config (mmdet's tools/train.py command line).

    python tools/train.py det_configs/retinanet/retinanet_swin-t_fpn_1x_coco_efficienttrain.py \
        [--work-dir D] [--resume [CKPT]] [--amp] [--auto-scale-lr] [--cfg-options k=v ...] [--launcher L]

Differences from mmdet's tool, all about failing early and clearly: a missing config, data root,
annotation file, pretrained backbone checkpoint or resume checkpoint is one `error:` line (exit 2) before
the runner starts; `data_root` (config or --cfg-options) is the one place that points at the data; a
CPU-only machine runs distributed jobs on gloo; COCO annotation files are validated first
(etcore.coco_validation); checkpoints are written atomically and `--resume` skips one that a kill left
unreadable (etcore.det_checkpoints, docs/RELIABILITY.md). The config helpers here are shared with
tools/test.py.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import warnings
from pathlib import Path
from typing import Iterable, Sequence

# mmengine imports pkg_resources, whose deprecation notice would precede every message of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

try:
    import backbones  # noqa: F401  (registers TimmBackbone & co.; installs the checkpoint allowlist)
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import backbones  # noqa: F401

import torch
from mmengine.config import Config, DictAction
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner

from etcore.checkpoint_io import load_checkpoint_file
from etcore.coco_validation import validate_coco_file
from etcore.det_checkpoints import resume_checkpoint, use_atomic_checkpoints
from etcore.errors import UserInputError, run_cli
from etcore.paths import check_writable_dir

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
CFG_OPTIONS_HELP = ('override config settings, key=value pairs (e.g. data_root=/data/coco/ '
                    'model.backbone.checkpoint=work_dirs/pretrain/x/final.pth); lists as key="[a,b]"')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector (mmdet 3.x config).')
    parser.add_argument('config', help='train config file, e.g. det_configs/retinanet/..._baseline.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the lr by (GPUs x batch per GPU) / the config's auto_scale_lr.base_batch_size")
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or (no value) from the last one in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


# ------------------------------------------------------------------------------------------ config

def load_config(config: str, cfg_options: dict | None = None, launcher: str = 'none') -> Config:
    """Read `config`, merge `cfg_options`, re-point the datasets at `data_root`, pick a dist backend."""
    if not Path(config).is_file():
        raise UserInputError(f'config {config} does not exist: give the path of a config file '
                             '(the runnable ones are listed in det_configs/README.md)')
    try:
        cfg = Config.fromfile(config)
    except SyntaxError as err:
        raise UserInputError(f'config {config} is not valid Python ({err.msg}, line {err.lineno}): '
                             'fix the file') from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (KeyError, TypeError) as err:
            raise UserInputError(f'--cfg-options {cfg_options} do not fit the config ({err}): '
                                 'check the keys against the config') from None
    cfg.launcher = launcher
    point_datasets_at_data_root(cfg)
    return cfg


def _datasets(loader: dict) -> Iterable[dict]:
    """The leaf dataset configs of a dataloader config (looking through RepeatDataset & co.)."""
    stack = [loader.get('dataset')]
    while stack:
        dataset = stack.pop()
        if not isinstance(dataset, dict):
            continue
        if 'dataset' in dataset or 'datasets' in dataset:
            stack.extend([dataset.get('dataset')] + list(dataset.get('datasets') or []))
        else:
            yield dataset


def _evaluators(cfg: Config, key: str) -> list[dict]:
    evaluator = cfg.get(key)
    if isinstance(evaluator, dict) and 'metrics' in evaluator:  # an Evaluator wrapper
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        return [evaluator]
    return [e for e in (evaluator or []) if isinstance(e, dict)]


def point_datasets_at_data_root(cfg: Config) -> None:
    """Make the top-level `data_root` the one place that says where the data is.

    mmengine evaluates `data_root + 'annotations/...'` when it parses the file, so a later
    `--cfg-options data_root=...` would otherwise leave every dataset and evaluator on the old path
    (no library does this re-derivation). Evaluator annotation files that do not end with their
    dataset's annotation file (e.g. a test-dev image list) are left alone.
    """
    root = cfg.get('data_root')
    if not root:
        return
    for loader_key, evaluator_key in (('train_dataloader', None), ('val_dataloader', 'val_evaluator'),
                                      ('test_dataloader', 'test_evaluator')):
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict):
            continue
        for dataset in _datasets(loader):
            ann_file = dataset.get('ann_file')
            if evaluator_key and ann_file and not osp.isabs(ann_file):
                for evaluator in _evaluators(cfg, evaluator_key):
                    current = evaluator.get('ann_file')
                    if isinstance(current, str) and current.endswith(ann_file):
                        evaluator['ann_file'] = osp.join(root, ann_file)
            dataset['data_root'] = root


def check_data(cfg: Config, loader_keys: Sequence[str]) -> None:
    """Fail with one line if the data root, an annotation file or an image folder is missing."""
    hint = ('put COCO there (annotations/, train2017/, val2017/) or point at it with '
            '--cfg-options data_root=PATH/')
    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict):
            continue
        for dataset in _datasets(loader):
            root = dataset.get('data_root') or ''
            if root and not osp.isdir(root):
                raise UserInputError(f'data root {root} ({loader_key}) does not exist: {hint}')
            ann_file = dataset.get('ann_file')
            if ann_file and not osp.isfile(osp.join(root, ann_file)):
                raise UserInputError(f'annotation file {osp.join(root, ann_file)} ({loader_key}) does not '
                                     f'exist: {hint}')
            images = (dataset.get('data_prefix') or {}).get('img')
            if images is not None and not osp.isdir(osp.join(root, images)):
                raise UserInputError(f'image folder {osp.join(root, images)} ({loader_key}) does not '
                                     f'exist: {hint}')
    for evaluator_key in ('val_evaluator', 'test_evaluator'):
        if evaluator_key.replace('evaluator', 'dataloader') not in loader_keys:
            continue
        for evaluator in _evaluators(cfg, evaluator_key):
            ann_file = evaluator.get('ann_file')
            if isinstance(ann_file, str) and not osp.isfile(ann_file):
                raise UserInputError(f'annotation file {ann_file} ({evaluator_key}) does not exist: {hint}')


def validate_annotations(cfg: Config, loader_keys: Sequence[str]) -> None:
    """Check each dataset's COCO annotation file (ids, boxes, categories, images) before the runner starts."""
    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        for dataset in _datasets(loader if isinstance(loader, dict) else {}):
            root, ann_file = dataset.get('data_root') or '', dataset.get('ann_file')
            if not (isinstance(ann_file, str) and ann_file.endswith('.json')):
                continue
            images = (dataset.get('data_prefix') or {}).get('img')
            summary = validate_coco_file(osp.join(root, ann_file),
                                         None if images is None else osp.join(root, images),
                                         classes=(dataset.get('metainfo') or {}).get('classes'),
                                         evaluated=loader_key != 'train_dataloader')
            for note in summary.notes:
                print(f'note: {note}', flush=True)


def uses_validation(cfg: Config) -> bool:
    return bool(cfg.get('val_cfg')) and bool(cfg.get('val_dataloader')) and bool(cfg.get('val_evaluator'))


def check_pretrained_checkpoint(cfg: Config) -> None:
    """The backbone loads `model.backbone.checkpoint` in init_weights(): check it exists up front."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    checkpoint = backbone.get('checkpoint') if isinstance(backbone, dict) else None
    if isinstance(checkpoint, str) and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise UserInputError(
            f'pretrained backbone checkpoint {checkpoint} (model.backbone.checkpoint) does not exist: '
            'pretrain it first (tools/pretrain.py), or pass --cfg-options model.backbone.checkpoint=PATH '
            '(=None trains from random init)')


def default_work_dir(config: str) -> str:
    return osp.join('work_dirs', osp.splitext(osp.basename(config))[0])


class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU processes: torch's DDP refuses `device_ids` for CPU modules."""

    def __init__(self, module: torch.nn.Module, device_ids: list | None = None, **kwargs) -> None:
        super().__init__(module=module, device_ids=None, **kwargs)


def prepare_cpu_distributed(cfg: Config) -> None:
    """torchrun without GPUs: start a gloo process group and wrap the model in CPUDistributedDataParallel.

    Hand-written because mmengine's 'pytorch' launcher always calls torch.cuda.set_device and hands DDP
    a CUDA device id; with the process group already up, mmengine skips its own initialisation.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise UserInputError(f'--launcher {cfg.launcher} without a GPU: CPU-only distributed runs work with '
                             '--launcher pytorch (tools/dist_train.sh, tools/dist_test.sh)')
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    MODEL_WRAPPERS.register_module(name='CPUDistributedDataParallel', module=CPUDistributedDataParallel,
                                   force=True)
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', False))


def build_runner(cfg: Config) -> Runner:
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        from mmdet.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


# ------------------------------------------------------------------------------------------ train

def apply_train_args(cfg: Config, args: argparse.Namespace) -> None:
    """--work-dir, --amp, --auto-scale-lr and --resume, as mmdet's tools/train.py applies them."""
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    check_writable_dir(cfg.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            raise UserInputError('--amp needs a GPU (torch.cuda.is_available() is False): drop --amp')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        raise UserInputError(f'config {args.config} trains with mixed precision (AmpOptimWrapper), which needs '
                             'a GPU: run it on one, or add --cfg-options optim_wrapper.type=OptimWrapper')
    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr') or {}
        if 'base_batch_size' not in scale:
            raise UserInputError(f'--auto-scale-lr: config {args.config} has no auto_scale_lr.base_batch_size: '
                                 'add auto_scale_lr = dict(enable=False, base_batch_size=N) to it')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        # mmengine finds <work_dir>/last_checkpoint; we step in only when it names a wreck (killed save)
        found, note = resume_checkpoint(cfg.work_dir)
        if note:
            print(f'note: {note}', flush=True)
        cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UserInputError(f'--resume checkpoint {args.resume} does not exist: give an existing '
                                 'checkpoint, or --resume alone to continue from the work dir')
        load_checkpoint_file(args.resume)  # a truncated or unsafe file is one line, not a traceback
        cfg.resume, cfg.load_from = True, args.resume


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    apply_train_args(cfg, args)
    loader_keys = ['train_dataloader', 'val_dataloader'] if uses_validation(cfg) else ['train_dataloader']
    check_data(cfg, loader_keys)
    validate_annotations(cfg, loader_keys)
    check_pretrained_checkpoint(cfg)
    use_atomic_checkpoints(cfg)

    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()
    build_runner(cfg).train()
    return 0


if __name__ == '__main__':
    run_cli(main)
