"""Build the mmengine runner for a config; CPU-only machines run distributed jobs on gloo."""

from __future__ import annotations

import torch
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner

from etcore.errors import UserInputError


class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU processes: torch's DDP refuses `device_ids` for CPU modules."""

    def __init__(self, module: torch.nn.Module, device_ids: list | None = None, **kwargs) -> None:
        super().__init__(module=module, device_ids=None, **kwargs)


def prepare_cpu_distributed(cfg: Config) -> None:
    """torchrun without GPUs: start a gloo process group and wrap the model in CPUDistributedDataParallel.

    Hand-written because mmengine's 'pytorch' launcher always calls torch.cuda.set_device and hands DDP
    a CUDA device id; with the process group already up, mmengine skips its own initialisation.
    """
    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return
    if cfg.launcher != "pytorch":
        raise UserInputError(
            f"--launcher {cfg.launcher} without a GPU: CPU-only distributed runs work with "
            "--launcher pytorch (tools/dist_train.sh, tools/dist_test.sh)"
        )
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    MODEL_WRAPPERS.register_module(name="CPUDistributedDataParallel", module=CPUDistributedDataParallel, force=True)
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="CPUDistributedDataParallel",
            broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False),
        )


def build_runner(cfg: Config) -> Runner:
    prepare_cpu_distributed(cfg)
    if "runner_type" in cfg:
        from mmdet.registry import RUNNERS

        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
