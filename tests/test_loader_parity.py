"""tools/loader_parity.py: the seed-paired runs it plans, the interval it reports, and the inputs it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import embedded_demo.parity as parity
import embedded_demo.pipeline as demo
from etcore.errors import UserInputError, run_cli
from etcore.formats import METRICS_FILE, METRICS_SCHEMA, PROVENANCE_FILE


def test_plan_pairs_each_seed_across_the_two_modes(tmp_path: Path) -> None:
    steps = parity.plan(
        demo.PROFILES["smoke"], ["fft", "direct"], [0, 1, 2], tmp_path / "w", tmp_path / "d", "retinanet"
    )
    kinds = [step.kind for step in steps]
    assert kinds[0] == "data" and kinds.count("pretrain") == 6 and kinds.count("train") == kinds.count("test") == 6
    pretrain_labels = [step.label for step in steps if step.kind == "pretrain"]
    assert pretrain_labels[:2] == [
        "pretrain resnet18 with efficienttrain (seed 0, --lowfreq fft)",
        "pretrain resnet18 with efficienttrain (seed 0, --lowfreq direct)",
    ]
    assert not any(step.is_done() for step in steps[1:])


def test_interval_is_the_student_t_interval_of_the_paired_deltas() -> None:
    delta = parity.PairedDelta("top-1", (0, 1, 2), (50.0, 40.0, 45.0), (51.0, 42.0, 48.0))
    assert delta.deltas == (1.0, 2.0, 3.0)
    mean, low, high = delta.interval()
    half = 4.302653 * 1.0 / 3**0.5  # t(0.975, 2 df) x sample std 1 / sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (low, high) == (pytest.approx(2.0 - half, abs=1e-5), pytest.approx(2.0 + half, abs=1e-5))
    table = parity.parity_table([delta], "fft", "direct")
    assert "| top-1 | 50.0 / 51.0 | 40.0 / 42.0 | 45.0 / 48.0 | +2.00 | [-0.48, +4.48] | 5.00 |" in table


def _finished_pair(root: Path, mode: str, recorded_mode: str) -> None:
    """A fine-tuned detector's work dir as tools/test.py and the provenance hook write it (docs/FORMATS.md)."""
    det = demo.Layout(root / mode, Path()).det("retinanet", parity.CURRICULUM, 0)
    det.mkdir(parents=True)
    bbox = {"AP": 0.25, "AP50": 0.5, "AP75": 0.2, "APs": -1.0, "APm": 0.3, "APl": 0.4}
    metrics = {"schema": METRICS_SCHEMA, "detector": "retinanet", "backbone": "resnet18", "schedule": "tiny"}
    (det / METRICS_FILE).write_text(json.dumps({**metrics, "seed": 0, "metrics": {"bbox": bbox}}))
    provenance = {"curriculum": {"name": parity.CURRICULUM}, "final_top1": 47.5, "lowfreq": recorded_mode}
    (det / PROVENANCE_FILE).write_text(json.dumps({"checkpoint": "final.pth", "provenance": provenance}))


def test_metrics_are_read_in_percent_and_a_mismatched_mode_is_refused(tmp_path: Path) -> None:
    _finished_pair(tmp_path, "direct", "direct")
    assert parity.read_metric(tmp_path, "direct", 0, "pretrain", "top1", "resnet18", "retinanet") == 47.5
    assert parity.read_metric(tmp_path, "direct", 0, "det", "AP50", "resnet18", "retinanet") == 50.0
    _finished_pair(tmp_path, "fft", "direct")
    with pytest.raises(UserInputError, match="--lowfreq direct, not fft"):
        parity.read_metric(tmp_path, "fft", 0, "pretrain", "top1", "resnet18", "retinanet")


@pytest.mark.parametrize(
    "argv, message",
    [(["--seeds", "0"], "at least 2 distinct seeds"), (["--modes", "fft", "fft"], "two different modes")],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(parity.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
