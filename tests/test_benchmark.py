"""tools/benchmark.py: the arithmetic on fabricated timings, and a tiny smoke run of every sub-command's code path.

No test asserts a time: speed is measured by the tool (BENCHMARKS.md), never by assertions here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bench.curriculum import SpeedupReport, log_speedups, log_times, predict_wall_time, stage_sizes, theoretical_speedup
from bench.timing import Spread, interleaved_rounds, per_round_ratios
from etcore.errors import UserInputError
from pretrain_fixtures import TINY_MODELS, make_image_folder
from pretraining.curriculum import build_curriculum

ET = build_curriculum("efficienttrain", 300, final_size=224)
BASE = build_curriculum("baseline", 300, final_size=224)


# --- arithmetic ------------------------------------------------------------------------------------
def test_theoretical_speedup_is_the_papers_ratio():
    assert theoretical_speedup(BASE, ET) == pytest.approx(300 / 195.918, rel=1e-4)  # 1/0.653 = 1.53x
    assert stage_sizes(ET, BASE) == [160, 192, 224]


def test_prediction_sums_epochs_times_per_image_cost():
    per_image = {160: 1.0, 192: 2.0, 224: 3.0}
    # 180 epochs at 160, 60 at 192, 60 at 224, 10 images each
    assert predict_wall_time(ET, per_image, 10) == pytest.approx(10 * (180 * 1 + 60 * 2 + 60 * 3))
    with pytest.raises(KeyError, match="160"):
        predict_wall_time(ET, {224: 1.0}, 10)


def _report(step_seconds, batches=None):
    batches = batches or {160: 4, 192: 4, 224: 4}
    return SpeedupReport(ET, BASE, batches, step_seconds, images_per_epoch=1000)


def test_cost_proportional_to_pixels_reaches_exactly_the_theoretical_speedup():
    rounds = [1.0, 1.7, 0.8]  # the machine's speed drifts between rounds; each round stays self-consistent
    steps = {s: [r * (s / 224) ** 2 for r in rounds] for s in (160, 192, 224)}
    report = _report(steps)
    assert report.measured().median == pytest.approx(report.theoretical)
    ratio = report.measured_over_theoretical()
    assert (ratio.low, ratio.median, ratio.high) == pytest.approx((1.0, 1.0, 1.0))


def test_fixed_overhead_per_step_lowers_measured_over_theoretical_by_the_expected_amount():
    overhead, pixel_cost = 0.5, 2.0  # seconds per step: overhead + pixel_cost * (size/224)^2
    steps = {s: [overhead + pixel_cost * (s / 224) ** 2] for s in (160, 192, 224)}
    report = _report(steps)
    per_image = {s: steps[s][0] / 4 for s in steps}
    expected = (300 * per_image[224]) / (180 * per_image[160] + 60 * per_image[192] + 60 * per_image[224])
    assert report.measured().median == pytest.approx(expected)
    assert report.measured_over_theoretical().median == pytest.approx(expected / report.theoretical)
    assert report.measured_over_theoretical().median < 1.0
    row160 = report.size_rows()[0]
    assert row160["cost_vs_final_measured"]["median"] == pytest.approx(per_image[160] / per_image[224])
    assert row160["cost_vs_final_theoretical"] == pytest.approx((160 / 224) ** 2)


def test_doubled_batch_at_small_sizes_is_counted_per_image():
    steps = {160: [2 * (160 / 224) ** 2], 192: [2 * (192 / 224) ** 2], 224: [1.0]}
    report = _report(steps, batches={160: 8, 192: 8, 224: 4})  # twice the images per step below 224
    assert report.measured().median == pytest.approx(report.theoretical)


def test_report_round_trips_to_json():
    steps = {s: [0.1 * s / 224, 0.12 * s / 224] for s in (160, 192, 224)}
    data = json.loads(json.dumps(_report(steps).to_dict()))
    assert data["rounds"] == 2 and data["measured_over_theoretical"]["n"] == 2
    assert "measured/theoretical" in _report(steps).table()


def test_spread_and_per_round_ratios():
    s = Spread.of([3.0, 1.0, 2.0])
    assert (s.median, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 3)
    assert s.relative_range == pytest.approx(1.0)
    assert (s.q1, s.q3) == (1.5, 2.5) and s.fmt(1) == "2.0 [1.5-2.5]"
    assert Spread.from_dict(s.scaled(10).to_dict()) == Spread(20.0, 10.0, 30.0, 3, 15.0, 25.0)
    assert per_round_ratios([2.0, 6.0], [1.0, 3.0]) == [2.0, 2.0]
    with pytest.raises(ValueError):
        per_round_ratios([1.0], [1.0, 2.0])


def test_interleaved_rounds_rotates_the_order_and_excludes_warmup():
    calls: list[str] = []
    cases = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = interleaved_rounds(cases, rounds=3, warmup=1, number=2)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    timed = calls[3:]
    firsts = [timed[i] for i in range(0, len(timed), 6)]
    assert firsts == ["a", "b", "c"]  # each round starts with the next case
    assert all(len(v) == 3 and all(t > 0 for t in v) for v in times.values())


def test_log_speedups_from_fabricated_logs():
    def log(epoch_times, rates, images=100):
        return [
            {
                "epoch_time_s": t,
                "images_per_s": r,
                "images_seen": images * (i + 1),
                "wall_clock_s": sum(epoch_times[: i + 1]),
            }
            for i, (t, r) in enumerate(zip(epoch_times, rates))
        ]

    base = log([10.0, 10.0], [20.0, 20.0])
    cur = log([5.0, 10.0], [40.0, 20.0])
    times = log_times(base)
    assert times == {"epoch_time_s": 20.0, "train_time_s": pytest.approx(10.0), "wall_clock_s": 20.0}
    speed = log_speedups(base, cur)
    assert speed["epoch_time_s"] == pytest.approx(20 / 15)
    assert speed["train_time_s"] == pytest.approx(10 / 7.5)


def _timed_records() -> list[dict]:
    """Three epochs of a fabricated log: two at 32 px (stage 0), one at 64 px (stage 1), 10 images each."""

    def record(epoch, stage, size, wall, epoch_time, top1, checkpoint):
        return {
            "epoch": epoch,
            "stage": stage,
            "input_size": size,
            "images_seen": 10 * (epoch + 1),
            "epoch_time_s": epoch_time,
            "wall_clock_s": wall,
            "top1": top1,
            "lowfreq": "direct",
            "workers": 2,
            "stage_switch_s": 0.5 if epoch in (0, 2) else 0.0,
            "first_batch_s": 0.2,
            "data_wait_s": 0.3,
            "lowfreq_s": 0.0,
            "step_s": 2.0,
            "optimizer_s": 0.4,
            "loader_s": 0.1,
            "loader_cpu_s": 0.05,
            "train_s": 2.3,
            "eval_s": 1.0 if top1 is not None else 0.0,
            "checkpoint_s": checkpoint,
        }

    # wall steps: 3.8 (epoch 0), 2.3 + 0.1 ckpt + 0.1 other + 1.0 eval, 2.8 + 0.2 ckpt + 0.0 other + 1.0 eval
    return [
        record(0, 0, 32, 2.8, 2.8, None, 0.0),
        record(1, 0, 32, 2.8 + 3.5, 3.3, 50.0, 0.1),
        record(2, 1, 64, 6.3 + 4.0, 3.8, 60.0, 0.2),
    ]


def test_breakdown_sums_each_stage_and_places_the_checkpoint_writes():
    from bench.breakdown import breakdown_table, stage_times

    first, second = stage_times(_timed_records())
    assert (first.input_size, first.epochs, first.images, second.images) == (32, 2, 20, 10)
    assert first.per_image_ms("step_s") == pytest.approx(200.0) and first.per_image_ms("loader_s") == 10.0
    assert (first.evaluations, first.eval_s, second.evaluations) == (1, 1.0, 1)
    # epoch 0's and 1's last.pth writes are logged by epochs 1 and 2; the run's last one is not logged
    assert (first.checkpoint_s, first.checkpoints, second.checkpoints) == (pytest.approx(0.3), 2, 0)
    assert first.other_s == pytest.approx(0.1) and second.other_s == pytest.approx(0.0)
    assert first.wall_s + second.wall_s == pytest.approx(10.3)
    assert "total: wall 10.3 s" in breakdown_table([first, second])
    with pytest.raises(ValueError, match="per-epoch timers"):
        stage_times([{k: v for k, v in _timed_records()[0].items() if k != "loader_s"}])


def test_breakdown_command_reads_work_dirs(bench, tmp_path, capsys):
    work = tmp_path / "run"
    work.mkdir()
    (work / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _timed_records()))
    out = tmp_path / "bd.json"
    assert bench.main(["breakdown", str(work), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["result"][0]["stages"][1]["input_size"] == 64
    assert "loader ms/img" in capsys.readouterr().out
    with pytest.raises(UserInputError, match="no log.jsonl there"):
        bench.main(["breakdown", str(tmp_path)])
    (work / "log.jsonl").write_text(json.dumps({"epoch": 0, "stage": 0}) + "\n")
    with pytest.raises(UserInputError, match="written before"):
        bench.main(["breakdown", str(work)])


def test_swin_unfold_order_is_a_permutation_matching_both_layouts():
    from bench.mmdet_keymap import unfold_order

    channels = 3
    x = torch.arange(2 * 2 * channels, dtype=torch.float32).reshape(1, channels, 2, 2)  # one 2x2 patch, NCHW
    mmdet = torch.nn.functional.unfold(x, kernel_size=2, stride=2)[0, :, 0]  # channel-major, as mmdet merges
    nhwc = x.permute(0, 2, 3, 1)
    timm = torch.cat([nhwc[0, 0, 0], nhwc[0, 1, 0], nhwc[0, 0, 1], nhwc[0, 1, 1]])  # (h,w) = 00, 10, 01, 11
    order = unfold_order(channels)
    assert sorted(order.tolist()) == list(range(4 * channels))
    assert torch.equal(timm[order], mmdet)


# --- smoke runs of each sub-command (tiny sizes, one round) ---------------------------------------------
@pytest.fixture(scope="module")
def bench():
    import bench.cli

    return bench.cli


def _run(bench, argv, tmp_path, name):
    out = tmp_path / f"{name}.json"
    assert bench.main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["machine"]["date"] and payload["command"].startswith("python tools/benchmark.py")
    return payload["result"]


@pytest.mark.slow
def test_smoke_curriculum_steps(bench, tmp_path, capsys):
    result = _run(
        bench,
        [
            "curriculum",
            "--final-size",
            "64",
            "--batch-size",
            "2",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--num-classes",
            "10",
        ],
        tmp_path,
        "cur",
    )
    assert "measured/theoretical" in capsys.readouterr().out
    assert result["theoretical_speedup"] > 1 and math.isfinite(result["measured_over_theoretical"]["median"])


@pytest.mark.slow
def test_smoke_curriculum_end_to_end(bench, tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", classes=2, per_class=4, size=32)
    kwargs = json.dumps(TINY_MODELS["convnext_atto"])
    result = _run(
        bench,
        [
            "curriculum",
            "--end-to-end",
            "--data",
            str(data),
            "--epochs",
            "2",
            "--final-size",
            "64",
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--lowfreq",
            "fft",
            "direct",
            "--work-dir",
            str(tmp_path / "runs"),
            "--pretrain-args",
            f"--model-kwargs '{kwargs}' --mixup 0 --cutmix 0",
        ],
        tmp_path,
        "e2e",
    )
    assert set(result["modes"]) == {"fft", "direct"}
    assert set(result["modes"]["direct"]["measured_speedup"]) == {
        "epoch_time_s",
        "train_time_s",
        "wall_clock_s",
        "train_s",
    }
    for name in ("baseline", "baseline_direct", "curriculum_fft", "curriculum_direct"):
        assert (tmp_path / "runs" / f"rep0_{name}" / "log.jsonl").is_file()
    out = capsys.readouterr().out
    assert "theoretical speedup" in out and "per-stage breakdown" in out


@pytest.mark.slow
def test_smoke_lowfreq(bench, tmp_path):
    result = _run(
        bench,
        [
            "lowfreq",
            "--final-size",
            "64",
            "--sizes",
            "32",
            "--batch-sizes",
            "2",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--loader-batch",
            "2",
            "--loader-batches",
            "1",
            "--loader-rounds",
            "1",
            "--workers",
            "0",
            "--num-classes",
            "10",
        ],
        tmp_path,
        "lf",
    )
    assert result["ops"][0]["fft_fraction"]["median"] > 0
    assert result["loader"][0]["resize_over_fft"]["n"] == 1 and result["loader"][0]["direct_over_fft"]["n"] == 1


@pytest.mark.slow
def test_smoke_backbone_checks_equal_outputs(bench, tmp_path):
    rows = _run(bench, ["backbone", "--size", "64", "--rounds", "1", "--warmup", "0"], tmp_path, "bb")
    assert {r["family"] for r in rows} == {"resnet50", "swin_tiny"}
    assert all(r["max_abs_output_diff"] < 1e-4 for r in rows)


@pytest.mark.slow
def test_smoke_detector_tiny_config(bench, tmp_path):
    config = "det_configs/_base_/recipes/retinanet_convnext-atto_fpn_tiny-demo.py"
    result = _run(
        bench,
        [
            "detector",
            "--configs",
            str(Path(__file__).resolve().parents[1] / config),
            "--batch",
            "1",
            "--image-size",
            "64",
            "64",
            "--rounds",
            "1",
            "--warmup",
            "0",
        ],
        tmp_path,
        "det",
    )
    assert result["rows"][0]["detector"] == "retinanet"


def test_user_errors_are_one_line(bench):
    with pytest.raises(UserInputError, match="--end-to-end needs --data"):
        bench.main(["curriculum", "--end-to-end", "--device", "cpu"])
    with pytest.raises(UserInputError, match="side by side need --end-to-end"):
        bench.main(["curriculum", "--lowfreq", "fft", "direct", "--device", "cpu"])
    with pytest.raises(UserInputError, match="does not exist"):
        bench.main(["detector", "--configs", "no/such/config.py", "--device", "cpu"])
    with pytest.raises(UserInputError, match="below --final-size"):
        bench.main(["lowfreq", "--sizes", "256", "--device", "cpu"])
