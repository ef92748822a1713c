"""RetinaNet and Cascade Mask R-CNN (mmdet's own model dicts) with TimmBackbone: one train step, predict."""

from __future__ import annotations

from pathlib import Path

import mmdet
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

pytest.importorskip("mmcv.ops", reason="mmcv.ops (RoIAlign, nms) is built by `make setup`")
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

from backbones import feature_channels  # noqa: E402  (also registers TimmBackbone)

MODEL_CONFIGS = Path(mmdet.__file__).parent / ".mim" / "configs" / "_base_" / "models"
BACKBONE = dict(type="TimmBackbone", model_name="convnext_atto", out_indices=(0, 1, 2, 3), drop_path_rate=0.1)
HEIGHT, WIDTH = 128, 160


def model_dict(file_name: str, out_indices: tuple) -> dict:
    cfg = Config.fromfile(str(MODEL_CONFIGS / file_name)).model
    cfg.backbone = dict(BACKBONE, out_indices=out_indices)
    cfg.neck.in_channels = feature_channels("convnext_atto", out_indices)
    cfg.neck.out_channels = 32
    return cfg


def tiny_retinanet() -> dict:
    cfg = model_dict("retinanet_r50_fpn.py", (1, 2, 3))
    cfg.neck.start_level = 0
    cfg.bbox_head.update(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1)
    cfg.test_cfg.update(score_thr=0.0, max_per_img=50)  # untrained scores sit near the 0.01 prior
    return cfg


def tiny_cascade() -> dict:
    cfg = model_dict("cascade-mask-rcnn_r50_fpn.py", (0, 1, 2, 3))
    cfg.rpn_head.update(in_channels=32, feat_channels=32)
    for head in cfg.roi_head.bbox_head:
        head.update(num_classes=3, in_channels=32, fc_out_channels=64)
    cfg.roi_head.bbox_roi_extractor.out_channels = 32
    cfg.roi_head.mask_roi_extractor.out_channels = 32
    cfg.roi_head.mask_head.update(num_classes=3, in_channels=32, conv_out_channels=32)
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    for stage in cfg.train_cfg.rcnn:
        stage.sampler.num = 64
    return cfg


def batch(with_masks: bool) -> dict:
    torch.manual_seed(0)
    samples = []
    for i in range(2):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(HEIGHT, WIDTH),
                ori_shape=(HEIGHT, WIDTH),
                pad_shape=(HEIGHT, WIDTH),
                scale_factor=(1.0, 1.0),
                batch_input_shape=(HEIGHT, WIDTH),
            )
        )
        boxes = torch.tensor([[10.0, 12.0, 70.0, 90.0], [60.0 + i, 30.0, 150.0, 120.0]])
        instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 2]))
        if with_masks:
            masks = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.uint8)
            for m, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[m, y1:y2, x1:x2] = 1
            instances.masks = BitmapMasks(masks.numpy(), HEIGHT, WIDTH)
        sample.gt_instances = instances
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, HEIGHT, WIDTH), dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.slow
@pytest.mark.parametrize(
    "build, masks", [(tiny_retinanet, False), (tiny_cascade, True)], ids=["retinanet", "cascade_mask_rcnn"]
)
def test_train_step_and_predict(build, masks: bool) -> None:
    register_all_modules()
    torch.manual_seed(0)
    detector = MODELS.build(build())
    detector.init_weights()
    optimizer = torch.optim.SGD(detector.parameters(), lr=1e-3)
    detector.train()
    data = detector.data_preprocessor(batch(masks), training=True)
    losses = detector(**data, mode="loss")
    total, _ = detector.parse_losses(losses)
    assert torch.isfinite(total), losses
    if masks:
        assert "s2.loss_mask" in losses and "loss_rpn_cls" in losses
    optimizer.zero_grad()
    total.backward()
    grad = detector.backbone.body.stages_1.blocks[0].conv_dw.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    optimizer.step()

    detector.eval()
    with torch.no_grad():
        results = detector.test_step(batch(masks))
    assert len(results) == 2
    for result in results:
        assert isinstance(result, DetDataSample)
        pred = result.pred_instances
        n = len(pred)
        assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,) and pred.labels.shape == (n,)
        assert n > 0 and torch.isfinite(pred.bboxes).all()
        assert ((pred.labels >= 0) & (pred.labels < 3)).all()
        if masks:
            assert pred.masks.shape == (n, HEIGHT, WIDTH) and pred.masks.dtype == torch.bool
        else:
            assert "masks" not in pred
