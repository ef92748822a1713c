"""#Params and FLOPs of a detector or segmentor at its test size, for `tools/compare.py --format zoo`.

Measured the way mmdet's and mmseg's `get_flops.py` do: the model built from the config (no weights needed),
one test image through the config's test pipeline and the model's data preprocessor (so the size is the
padded test input the model really sees), then `mmengine.analysis`: `FlopAnalyzer` on the network's
`mode='tensor'` forward (backbone, neck and heads; no NMS or other post-processing), counting one
multiply-add as one FLOP as mmengine and fvcore do, and `parameter_count`. The first test image stands for
the test set (its padded size is recorded); tools/test.py stores the result in its metrics file.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import torch
from mmengine.config import Config

COUNTER = "mmengine.analysis (FlopAnalyzer, parameter_count), first test image"


def model_complexity(cfg: Config) -> dict[str, Any]:
    """{'params', 'flops', 'input_shape': [H, W], 'counter'} of `cfg.model` on the first test image."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import Runner

    cfg = copy.deepcopy(cfg)
    init_default_scope(cfg.get("default_scope") or "mmdet")
    loader_cfg = cfg.test_dataloader
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    batch = next(iter(Runner.build_dataloader(loader_cfg)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MODELS.build(cfg.model).to(device).eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        inputs = data["inputs"]
        model.forward = partial(model.forward, data_samples=data["data_samples"], mode="tensor")
        flops = FlopAnalyzer(model, inputs).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        total = int(flops.total())
    params = int(parameter_count(model)[""])
    shape = [int(s) for s in inputs.shape[-2:]]
    del model
    return {"params": params, "flops": total, "input_shape": shape, "counter": COUNTER}


def zoo_facts(cfg: Config, checkpoint: dict, checkpoint_path: str, logger: Any, measure: bool = True) -> dict[str, Any]:
    """The metrics files' `complexity` and `train_log` entries (docs/FORMATS.md) for the model-zoo table.

    `measure=False` (tools/test.py --no-complexity) records a null complexity; so does a model that
    `FlopAnalyzer` cannot trace (an operator torch.jit refuses), with a warning: the evaluation stands without it.
    """
    from finetune.checkpoints import training_log_dir

    complexity = None
    try:
        complexity = model_complexity(cfg) if measure else None
    except (RuntimeError, TypeError, ValueError, AssertionError, NotImplementedError, KeyError) as err:
        logger.warning(f"#params / FLOPs not measured ({type(err).__name__}: {err}); 'complexity' is null")
    return {"complexity": complexity, "train_log": training_log_dir(checkpoint, checkpoint_path)}
