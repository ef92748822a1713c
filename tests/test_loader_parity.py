"""tools/loader_parity.py: the seed-paired runs it plans, the interval it reports, and the inputs it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import study_runner.parity as parity
from etcore.errors import UserInputError, run_cli
from etcore.formats import METRICS_FILE, METRICS_SCHEMA, PROVENANCE_FILE

REPO = Path(__file__).resolve().parents[1]


def test_plan_pairs_each_seed_across_the_two_modes(tmp_path: Path) -> None:
    graph, arms = parity.plan(
        REPO / "studies/demo_smoke.yaml", ["fft", "direct"], [0, 1, 2], tmp_path / "w", "retinanet", "d"
    )
    kinds = [step.kind for step in graph.steps]
    assert kinds[0] == "prepare" and kinds.count("pretrain") == 6 and kinds.count("train") == kinds.count("test") == 6
    pretrainings = [step for step in graph.steps if step.kind == "pretrain"]
    assert [step.work_dir.name.split("_")[0] for step in pretrainings[:2]] == ["fft", "direct"]
    assert arms[("direct", 2)].name == "retinanet_direct_resnet18_efficienttrain_e2_s2" and len(arms) == 6
    assert [step.command[step.command.index("--lowfreq") + 1] for step in pretrainings[:2]] == ["fft", "direct"]
    assert all("--curriculum" in s.command and "efficienttrain" in s.command for s in pretrainings)
    assert "report" not in kinds and not any(step.is_done() for step in graph.steps[1:])


def test_interval_is_the_student_t_interval_of_the_paired_deltas() -> None:
    delta = parity.PairedDelta("top-1", (0, 1, 2), (50.0, 40.0, 45.0), (51.0, 42.0, 48.0))
    assert delta.deltas == (1.0, 2.0, 3.0)
    mean, low, high = delta.interval()
    half = 4.302653 * 1.0 / 3**0.5  # t(0.975, 2 df) x sample std 1 / sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (low, high) == (pytest.approx(2.0 - half, abs=1e-5), pytest.approx(2.0 + half, abs=1e-5))
    table = parity.parity_table([delta], "fft", "direct")
    assert "| top-1 | 50.0 / 51.0 | 40.0 / 42.0 | 45.0 / 48.0 | +2.00 | [-0.48, +4.48] | 5.00 |" in table


def _finished_pair(root: Path, mode: str, recorded_mode: str) -> Path:
    """A fine-tuned detector's work dir as tools/test.py and the provenance hook write it (docs/FORMATS.md)."""
    det = root / mode / "det" / "retinanet_resnet18_efficienttrain_e2_s0"
    det.mkdir(parents=True)
    bbox = {"AP": 0.25, "AP50": 0.5, "AP75": 0.2, "APs": -1.0, "APm": 0.3, "APl": 0.4}
    metrics = {"schema": METRICS_SCHEMA, "detector": "retinanet", "backbone": "resnet18", "schedule": "tiny"}
    (det / METRICS_FILE).write_text(json.dumps({**metrics, "seed": 0, "metrics": {"bbox": bbox}}))
    provenance = {"curriculum": {"name": parity.CURRICULUM}, "final_top1": 47.5, "lowfreq": recorded_mode}
    (det / PROVENANCE_FILE).write_text(json.dumps({"checkpoint": "final.pth", "provenance": provenance}))
    return det


def test_metrics_are_read_in_percent_and_a_mismatched_mode_is_refused(tmp_path: Path) -> None:
    det = _finished_pair(tmp_path, "direct", "direct")
    assert parity.read_metric(det, "direct", "pretrain", "top1") == 47.5
    assert parity.read_metric(det, "direct", "det", "AP50") == 50.0
    det = _finished_pair(tmp_path, "fft", "direct")
    with pytest.raises(UserInputError, match="--lowfreq direct, not fft"):
        parity.read_metric(det, "fft", "pretrain", "top1")


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
