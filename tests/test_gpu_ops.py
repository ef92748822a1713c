"""GPU check, Tier 2: mmcv's compiled ops on the device against their CPU results.

nms, RoIAlign (forward and input gradient) and sigmoid focal loss, the ops the detectors lean on. The
tolerances are float32 summation-order noise. Needs mmcv with compiled ops: under mmcv-lite (a lent
machine's Tier 1) these tests skip and say so; tools/gpu_check.sh --tier 2 counts such a skip as a failure.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest
from gpu_fixtures import Profile, active_profile, focal_loss_reference, record

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def profile() -> Profile:
    return active_profile()


@pytest.fixture(scope="module")
def ops() -> Any:
    """mmcv.ops, or a skip that names why it cannot be had."""
    try:
        import mmcv.ops
    except ImportError as err:  # mmcv-lite: no mmcv._ext
        pytest.skip(f"mmcv has no compiled ops ({' '.join(str(err).split())[:80]}): Tier 2 builds them")
    return mmcv.ops


def mmcv_build_info(ops: Any) -> dict[str, Any]:
    """mmcv's version, the CUDA it was compiled with ('not available' for CPU ops) and its wheel build tag."""
    import mmcv

    build_tag = None
    try:
        wheel = distribution("mmcv").read_text("WHEEL") or ""
        build_tag = next(
            (line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Build:")), None
        )
    except PackageNotFoundError:
        pass
    return {
        "version": mmcv.__version__,
        "compiling_cuda": ops.get_compiling_cuda_version(),
        "compiler": ops.get_compiler_version(),
        "wheel_build_tag": build_tag,
    }


def max_diff(a: Any, b: Any) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def test_mmcv_was_built_for_this_device(ops: Any, profile: Profile) -> None:
    info = mmcv_build_info(ops)
    record("mmcv_build", info)
    if profile.device != "cuda":
        return
    import torch

    assert info["compiling_cuda"] not in (None, "", "not available"), (
        "the installed mmcv has CPU ops only: build the CUDA ops (FORCE_CUDA=1 make setup, or the lent machine's "
        "Tier 2 build)"
    )
    major, minor = torch.cuda.get_device_capability(0)
    if info["wheel_build_tag"]:  # e.g. '1cu130_sm90': no kernels for another GPU
        built = [a.rstrip("af") for a in info["wheel_build_tag"].split("_")[1:]]
        assert f"sm{major}{minor}" in built or any(a.endswith("ptx") for a in built), (
            f"mmcv's ops were built for {built}, this GPU is sm{major}{minor}: rebuild them for it"
        )


def test_nms_keeps_the_same_boxes(ops: Any, profile: Profile) -> None:
    import torch

    gen = torch.Generator().manual_seed(0)
    n = profile.nms_boxes
    xy = torch.rand(n, 2, generator=gen) * 800
    wh = torch.rand(n, 2, generator=gen) * 120 + 4
    boxes, scores = torch.cat([xy, xy + wh], 1), torch.rand(n, generator=gen)
    _, keep_cpu = ops.nms(boxes, scores, iou_threshold=0.5)
    _, keep_dev = ops.nms(boxes.to(profile.device), scores.to(profile.device), iou_threshold=0.5)
    record("ops_nms", {"device": profile.device, "boxes": n, "kept": int(keep_dev.numel())})
    assert 0 < keep_dev.numel() < n and torch.equal(keep_cpu.cpu(), keep_dev.cpu())


def test_roi_align_forward_and_backward_match_the_cpu(ops: Any, profile: Profile) -> None:
    import torch

    gen = torch.Generator().manual_seed(1)
    bn, c, h, w = profile.roi_input
    feat = torch.randn(bn, c, h, w, generator=gen)
    k = profile.rois
    corner = torch.rand(k, 2, generator=gen) * torch.tensor([w * 8.0, h * 8.0]) * 0.8
    size = torch.rand(k, 2, generator=gen) * 200 + 8
    rois = torch.cat([torch.randint(0, bn, (k, 1), generator=gen).float(), corner, corner + size], 1)
    grad_out = torch.randn(k, c, 7, 7, generator=gen)
    outs = {}
    for where in ("cpu", profile.device):
        x = feat.to(where).requires_grad_(True)
        y = ops.roi_align(x, rois.to(where), (7, 7), 1 / 8, 2, "avg", True)  # aligned, 7x7, sampling 2, stride 8
        y.backward(grad_out.to(where))
        outs[where] = (y, x.grad)
    forward = max_diff(outs["cpu"][0], outs[profile.device][0])
    backward = max_diff(outs["cpu"][1], outs[profile.device][1])
    record("ops_roi_align", {"device": profile.device, "rois": k, "max_abs_diff": [forward, backward]})
    assert forward < 1e-4 and backward < 1e-4


def test_sigmoid_focal_loss_matches_the_formula(ops: Any, profile: Profile) -> None:
    import torch
    from torchvision.ops import sigmoid_focal_loss as torchvision_focal

    gen = torch.Generator().manual_seed(2)
    m = profile.focal_samples
    logits = torch.randn(m, 80, generator=gen) * 3
    labels = torch.randint(0, 81, (m,), generator=gen)  # 80 = background
    reference_input = logits.clone().requires_grad_(True)
    reference = focal_loss_reference(reference_input, labels)
    reference.sum().backward()
    one_hot = torch.nn.functional.one_hot(labels, 81)[:, :80].float()
    # the reference itself against an independent implementation
    assert max_diff(reference, torchvision_focal(logits, one_hot, alpha=0.25, gamma=2.0, reduction="none")) < 1e-5
    if profile.device == "cpu":  # mmcv's kernel has no CPU version: the dry run checks the reference alone
        record("ops_sigmoid_focal_loss", {"samples": m, "kernel": "no CPU kernel: compared on the GPU only"})
        return
    x = logits.to(profile.device).requires_grad_(True)
    loss = ops.sigmoid_focal_loss(x, labels.to(profile.device), 2.0, 0.25, None, "none")
    loss.sum().backward()
    forward, backward = max_diff(reference, loss), max_diff(reference_input.grad, x.grad)
    record("ops_sigmoid_focal_loss", {"samples": m, "max_abs_diff": [forward, backward]})
    assert forward < 1e-4 and backward < 1e-4
