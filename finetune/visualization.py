"""What `tools/train.py --vis` and `tools/test.py --show-dir` change in a config: mmengine's visualizer settings.

Tracking follows mmengine's `visualizer.vis_backends` convention: `--vis tensorboard` adds a
`TensorboardVisBackend` beside the config's `LocalVisBackend` (event files in `<work_dir>/<timestamp>/vis_data/`,
where mmengine puts every backend's files), `--vis wandb` a `WandbVisBackend` (W&B project from
`WANDB_PROJECT`, else `efficienttrain-det`; run name the work dir's). Writing them into the config instead is
the same thing, e.g. `visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
dict(type='TensorboardVisBackend')])`.

`--show-dir` turns on the config's visualization hook for every test image, as the libraries' own
tools/test.py do: mmdet's `DetVisualizationHook` writes `<work_dir>/<timestamp>/DIR/<image file name>` (DIR
as it is when absolute), mmseg's `SegVisualizationHook` draws through the visualizer whose `save_dir`
becomes DIR (`DIR/vis_data/vis_image/test_<image file name>_<n>.png`).
"""

from __future__ import annotations

import os
import os.path as osp
from typing import Sequence

from mmengine.config import Config

from etcore.errors import UserInputError
from etcore.tracking import MMENGINE_VIS_BACKENDS, WANDB_PROJECT, require_vis_backends


def add_vis_backends(cfg: Config, names: Sequence[str], config: str) -> list[dict]:
    """Add mmengine's backend for each of `names` to `cfg.visualizer.vis_backends` (once); returns the list."""
    require_vis_backends(names)
    visualizer = cfg.get("visualizer")
    if not isinstance(visualizer, dict):
        raise UserInputError(
            f"--vis: config {config} has no visualizer: add one (the default_runtime.py of det_configs/_base_ "
            "or seg_configs/_base_ inherits mmdet's / mmseg's)"
        )
    backends = [dict(b) for b in visualizer.get("vis_backends") or []]
    present = {b.get("type") for b in backends}
    for name in names:
        kind = MMENGINE_VIS_BACKENDS[name]
        if kind in present:
            continue
        backend: dict = dict(type=kind)
        if name == "wandb":
            run_name = osp.basename(osp.normpath(str(cfg.get("work_dir") or "work_dir")))
            backend["init_kwargs"] = dict(project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT, name=run_name)
        backends.append(backend)
        present.add(kind)
    visualizer["vis_backends"] = backends
    return backends


def draw_test_predictions(cfg: Config, show_dir: str, segmentation: bool, config: str) -> None:
    """Have the config's visualization hook draw every test image's predictions into `show_dir`."""
    hook = (cfg.get("default_hooks") or {}).get("visualization")
    if not isinstance(hook, dict):
        raise UserInputError(
            f"--show-dir: config {config} has no default_hooks.visualization: add "
            f"dict(type='{'SegVisualizationHook' if segmentation else 'DetVisualizationHook'}') or drop --show-dir"
        )
    hook["draw"] = True
    hook["interval"] = 1  # every test image (mmseg's hook otherwise draws every 50th)
    if segmentation:
        cfg.visualizer["save_dir"] = show_dir
    else:
        hook["test_out_dir"] = show_dir
