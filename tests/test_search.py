"""Greedy curriculum search against fabricated evaluators whose accuracy is a known function of the schedule."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from etcore.errors import UserInputError
from pretraining.search import (
    compute_constrained_search,
    greedy_curriculum_search,
    schedule_curriculum,
)

CANDIDATES = (96, 128, 160, 192, 224)
STEP = 32  # candidates are 32 apart
BASE = {"resnet18": 70.0, "convnext_atto": 72.0}
# per model, the smallest size each stage tolerates without losing accuracy (monotone)
THRESHOLDS = {"resnet18": (96, 128, 160, 160, 224), "convnext_atto": (128, 128, 128, 192, 224)}


class CountingEvaluator:
    """accuracy = baseline - penalty * (number of 32-pixel steps any stage sits below its threshold)."""

    def __init__(self, thresholds=THRESHOLDS, base=BASE, penalty=1.0, fail_after=None):
        self.thresholds, self.base, self.penalty, self.fail_after = thresholds, base, penalty, fail_after
        self.calls: list[tuple[int, ...]] = []

    def accuracy(self, schedule):
        return {
            model: self.base[model] - self.penalty * sum(max(0, t - b) // STEP for t, b in zip(limits, schedule))
            for model, limits in self.thresholds.items()
        }

    def __call__(self, schedule):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated crash of a training run")
        self.calls.append(schedule)
        return self.accuracy(schedule)


def brute_force_cheapest(evaluator, tolerance):
    """The cheapest monotone schedule whose accuracy is within tolerance of the baseline for every model."""
    feasible = [
        s
        for s in itertools.product(CANDIDATES, repeat=5)
        if list(s) == sorted(s) and all(evaluator.accuracy(s)[m] >= BASE[m] - tolerance for m in BASE)
    ]
    return min(feasible, key=lambda s: sum(b * b for b in s))


def test_finds_the_known_optimum_with_monotone_sizes_and_counts_trials(tmp_path):
    evaluator = CountingEvaluator()
    result = greedy_curriculum_search(
        evaluator, 5, CANDIDATES, BASE, tolerance=0.0, trial_log=tmp_path / "trials.jsonl", epochs=10
    )
    assert result.schedule == (128, 128, 160, 192, 224) == brute_force_cheapest(evaluator, 0.0)
    # hand count: stage 4 tries 96..192 (4, all fail); stage 3 fails 96,128,160 then accepts 192;
    # stage 2 accepts 160 after 96,128; stage 1 accepts 128 after 96; stage 0 fails 96
    assert len(evaluator.calls) == 4 + 4 + 3 + 2 + 1 == result.evaluated == len(result.trials)
    for trial in result.trials:
        assert list(trial.schedule) == sorted(trial.schedule)
        passes = all(trial.accuracy[m] >= BASE[m] for m in BASE)
        assert trial.accepted == passes
    assert [t.schedule for t in result.trials if t.accepted] == [
        (192, 192, 192, 192, 224),
        (160, 160, 160, 192, 224),
        (128, 128, 160, 192, 224),
    ]
    assert result.curriculum.stages[0].input_size == 128 and result.curriculum.total_epochs == 10
    expected_equivalent = 2 * sum((b / 224) ** 2 for b in result.schedule)
    assert result.curriculum.equivalent_epochs() == pytest.approx(expected_equivalent)


def test_tolerance_is_respected_and_used():
    evaluator = CountingEvaluator(thresholds={"m": (96, 128, 160, 192, 224)}, base={"m": 50.0}, penalty=0.5)
    strict = greedy_curriculum_search(evaluator, 5, CANDIDATES, {"m": 50.0}, tolerance=0.0)
    assert strict.schedule == (96, 128, 160, 192, 224)
    loose = greedy_curriculum_search(
        CountingEvaluator(thresholds={"m": (96, 128, 160, 192, 224)}, base={"m": 50.0}, penalty=0.5),
        5,
        CANDIDATES,
        {"m": 50.0},
        tolerance=0.5,
    )
    # the tolerance buys exactly one 32-pixel step, spent greedily on the last stage
    assert loose.schedule == (96, 128, 160, 192, 192)
    assert evaluator.accuracy(loose.schedule)["m"] == 49.5
    for trial in loose.trials:
        assert trial.accepted == (trial.accuracy["m"] >= 49.5)


def test_largest_first_takes_fewer_trials_for_monotone_accuracy():
    smallest = CountingEvaluator()
    largest = CountingEvaluator()
    a = greedy_curriculum_search(smallest, 5, CANDIDATES, BASE)
    b = greedy_curriculum_search(largest, 5, CANDIDATES, BASE, smallest_first=False)
    assert a.schedule == b.schedule
    assert len(largest.calls) < len(smallest.calls)


def test_baseline_is_evaluated_when_not_given():
    evaluator = CountingEvaluator()
    result = greedy_curriculum_search(evaluator, 5, CANDIDATES, None)
    assert evaluator.calls[0] == (224,) * 5 and result.trials[0].stage is None
    assert result.baseline_accuracy == BASE and result.schedule == (128, 128, 160, 192, 224)


def test_resume_reuses_every_finished_trial(tmp_path):
    log = tmp_path / "trials.jsonl"
    first = greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, BASE, trial_log=log, epochs=10)
    again = CountingEvaluator()
    second = greedy_curriculum_search(again, 5, CANDIDATES, BASE, trial_log=log, epochs=10)
    assert again.calls == [] and second.evaluated == 0 and second.reused == len(first.trials)
    assert second.schedule == first.schedule
    assert [t.schedule for t in second.trials] == [t.schedule for t in first.trials]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["kind"] == "header" and records[0]["models"] == sorted(BASE)
    assert [r["schedule"] for r in records[1:]] == [list(t.schedule) for t in first.trials]
    assert all({"accuracy", "equivalent_epochs", "accepted", "wall_time_s"} <= set(r) for r in records[1:])


def test_resume_after_a_crash_runs_only_the_missing_trials(tmp_path):
    log = tmp_path / "trials.jsonl"
    crashing = CountingEvaluator(fail_after=6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        greedy_curriculum_search(crashing, 5, CANDIDATES, BASE, trial_log=log)
    assert len(log.read_text().splitlines()) == 1 + 6  # header + the six finished trials
    resumed = CountingEvaluator()
    result = greedy_curriculum_search(resumed, 5, CANDIDATES, BASE, trial_log=log)
    assert result.schedule == (128, 128, 160, 192, 224)
    assert result.reused == 6 and result.evaluated == len(resumed.calls) == 14 - 6
    assert not set(resumed.calls) & set(crashing.calls)


def test_log_from_a_different_search_or_corrupt_log_is_refused(tmp_path):
    log = tmp_path / "trials.jsonl"
    greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, BASE, trial_log=log, epochs=10)
    with pytest.raises(UserInputError, match="num_stages=5, this one has 4"):
        greedy_curriculum_search(CountingEvaluator(), 4, CANDIDATES, BASE, trial_log=log, epochs=10)
    with pytest.raises(UserInputError, match="holds models convnext_atto, resnet18 but the baseline names resnet18"):
        greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, {"resnet18": 70.0}, trial_log=log, epochs=10)
    log.write_text(log.read_text() + "{not json\n")
    with pytest.raises(UserInputError, match=r"trials.jsonl line \d+ is not JSON"):
        greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, BASE, trial_log=log, epochs=10)


def test_bad_search_arguments():
    with pytest.raises(UserInputError, match="above the final size"):
        greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, BASE, final_size=192)
    with pytest.raises(UserInputError, match="3 RandAugment magnitudes for 5 stages"):
        greedy_curriculum_search(CountingEvaluator(), 5, CANDIDATES, BASE, magnitudes=(1, 2, 3))
    with pytest.raises(ValueError, match="no accuracy for resnet18"):
        greedy_curriculum_search(lambda s: {"convnext_atto": 1.0}, 5, CANDIDATES, BASE)


def test_schedule_curriculum_layouts():
    by_epochs = schedule_curriculum((160, 160, 192, 224), 20, 224, magnitudes=(1, 3, 5, 9))
    assert [(s.epochs, s.input_size, s.randaug_magnitude) for s in by_epochs.stages] == [
        (5, 160, 1.0),
        (5, 160, 3.0),
        (5, 192, 5.0),
        (5, 224, 9.0),
    ]
    by_compute = schedule_curriculum((112, 224), 20, 224, layout="equal_compute")
    assert [(s.epochs, s.input_size) for s in by_compute.stages] == [(40, 112), (10, 224)]
    assert by_compute.equivalent_epochs() == pytest.approx(20.0)


def test_compute_constrained_search_finds_the_known_best_schedule(tmp_path):
    peaks = (128, 160, 192, 224)
    weights = (1.0, 2.0, 4.0, 8.0)  # each stage outweighs all earlier ones, so the greedy optimum is `peaks`
    calls = []

    def evaluate(schedule):
        calls.append(schedule)
        score = -sum(w * abs(b - p) / STEP for w, b, p in zip(weights, schedule, peaks))
        return {"m": 60.0 + score}

    full = evaluate((224,) * 4)["m"]
    calls.clear()
    log = tmp_path / "budget.jsonl"
    result = compute_constrained_search(
        evaluate, 4, CANDIDATES, budget_epochs=40, baseline_accuracy={"m": full}, trial_log=log
    )
    assert result.schedule == peaks
    assert (224,) * 4 not in calls  # the given baseline is not re-run
    # stage 3 tries 4 sizes below 224, stage 2 tries 96..192 (4), stage 1 96..160 (3), stage 0 96, 128 (2)
    assert len(calls) == 4 + 4 + 3 + 2
    accepted = [t.schedule for t in result.trials if t.accepted]
    assert accepted[-1] == peaks
    for trial in result.trials:
        assert trial.equivalent_epochs == pytest.approx(40, abs=0.5)  # fixed compute in every trial
    assert result.curriculum.total_epochs > 40  # smaller sizes bought extra passes
    again = compute_constrained_search(
        evaluate, 4, CANDIDATES, budget_epochs=40, baseline_accuracy={"m": full}, trial_log=log
    )
    assert again.evaluated == 0 and again.schedule == peaks


def test_compute_constrained_ties_prefer_the_smaller_size():
    result = compute_constrained_search(
        lambda s: {"m": 1.0}, 3, CANDIDATES, budget_epochs=30, baseline_accuracy={"m": 1.0}
    )
    assert result.schedule == (96, 96, 96)


# --- tools/search_curriculum.py, with a stand-in for the engine's entry point -----------------------
# The stand-in honours the contract of docs/FORMATS.md (final.pth with provenance.final_top1) and makes
# top-1 a known function of the curriculum, so the tool's orchestration, files and resume are checked
# without training. The real engine is exercised by its own room's tests.
TOOL_THRESHOLDS = {"resnet18": (128, 192), "convnext_atto": (160, 160)}


class FakePretrainCli:
    def __init__(self):
        self.runs: list[tuple[str, tuple[int, ...]]] = []

    def main(self, argv):
        import argparse

        import torch

        from pretraining.curriculum import build_curriculum

        parser = argparse.ArgumentParser()
        for flag in ("--model", "--data", "--curriculum", "--work-dir", "--resume", "--batch-size", "--lr-progress"):
            parser.add_argument(flag)
        parser.add_argument("--size-multiple", type=int)
        for flag in ("--epochs", "--final-size", "--seed"):
            parser.add_argument(flag, type=int)
        args = parser.parse_args(argv)
        assert args.resume == "auto" and args.batch_size == "8"  # extra arguments after `--` are passed on
        self.size_multiple = args.size_multiple
        curriculum = build_curriculum(
            args.curriculum, args.epochs, final_size=args.final_size, size_multiple=args.size_multiple
        )
        sizes = tuple(stage.input_size for stage in curriculum.stages)
        self.runs.append((args.model, sizes))
        self.lr_progress = args.lr_progress
        self.lr_axis = curriculum.lr_axis
        self.equivalent_epochs = curriculum.equivalent_epochs()
        steps = sum(max(0, t - b) // 32 for t, b in zip(TOOL_THRESHOLDS[args.model], sizes))
        provenance = {"model_name": args.model, "curriculum": curriculum.to_dict(), "final_top1": 50.0 - steps}
        work_dir = Path(args.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"format": "efficienttrain-det/pretrain-v1", "model": {}, "provenance": provenance}, work_dir / "final.pth"
        )
        return 0


def test_search_tool_runs_trials_writes_outputs_and_resumes(tmp_path, monkeypatch):

    import pretraining.search_cli as tool
    from pretraining.curriculum import build_curriculum

    fake = FakePretrainCli()
    monkeypatch.setattr("pretraining.cli.main", fake.main)
    (tmp_path / "data").mkdir()
    work = tmp_path / "search"
    argv = [
        "--models",
        "resnet18,convnext_atto",
        "--data",
        str(tmp_path / "data"),
        "--epochs",
        "4",
        "--stages",
        "2",
        "--candidates",
        "96,128,160,192,224",
        "--work-dir",
        str(work),
        "--result-magnitudes",
        "5,9",
        "--",
        "--batch-size",
        "8",
    ]
    assert tool.main(argv) == 0
    # baseline first (once per model), then stage 1 tries 96..192 with both stages equal (192 accepted),
    # then stage 0 tries 96, 128 (fail for convnext_atto) and 160 (accepted)
    assert fake.runs[:2] == [("resnet18", (224, 224)), ("convnext_atto", (224, 224))]
    assert len(fake.runs) == 2 * (1 + 4 + 3)
    summary = json.loads((work / "search_summary.json").read_text())
    assert summary["schedule"] == [160, 192] and summary["baseline_top1"] == {"resnet18": 50.0, "convnext_atto": 50.0}
    found = build_curriculum(str(work / "searched_curriculum.yaml"), 4)
    assert [(s.epochs, s.input_size, s.randaug_magnitude) for s in found.stages] == [(2, 160, 5.0), (2, 192, 9.0)]
    trial_curriculum = build_curriculum(str(work / "trials" / "b96-192" / "curriculum.json"), 4)
    assert [s.input_size for s in trial_curriculum.stages] == [96, 192]
    records = [json.loads(line) for line in (work / "trials.jsonl").read_text().splitlines()[1:]]
    assert len(records) == 8 and all(set(r["accuracy"]) == {"resnet18", "convnext_atto"} for r in records)
    assert (work / "search_path.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    fake.runs.clear()
    assert tool.main(argv) == 0
    assert fake.runs == []  # every trial re-used from the log
    (work / "trials.jsonl").unlink()
    assert tool.main(argv) == 0
    assert fake.runs == []  # finished runs are read back from their final.pth
    assert json.loads((work / "search_summary.json").read_text())["schedule"] == [160, 192]


def test_search_tool_compute_mode_keeps_the_budget(tmp_path, monkeypatch):

    import pretraining.search_cli as tool

    fake = FakePretrainCli()
    monkeypatch.setattr("pretraining.cli.main", fake.main)
    (tmp_path / "data").mkdir()
    work = tmp_path / "search"
    assert (
        tool.main(
            [
                "--models",
                "resnet18",
                "--data",
                str(tmp_path / "data"),
                "--epochs",
                "6",
                "--stages",
                "2",
                "--candidates",
                "128,160,224",
                "--mode",
                "compute",
                "--work-dir",
                str(work),
                "--",
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    # EfficientTrain++: the LR follows compute, not passes; the trial's curriculum file says so itself
    assert fake.lr_axis == "compute" and fake.lr_progress is None
    records = [json.loads(line) for line in (work / "trials.jsonl").read_text().splitlines()[1:]]
    assert all(abs(r["equivalent_epochs"] - 6) <= 0.5 for r in records)
    # top-1 only falls below resnet18's thresholds (128, 192), so ties go to the smaller size: stage 1 keeps
    # 224 (192 is not a candidate; 160 loses a point), stage 0 takes 128
    assert json.loads((work / "search_summary.json").read_text())["schedule"] == [128, 224]


def test_search_tool_size_multiple_admits_finer_sizes_and_reaches_every_run(tmp_path, monkeypatch):

    import pretraining.search_cli as tool

    fake = FakePretrainCli()
    monkeypatch.setattr("pretraining.cli.main", fake.main)
    (tmp_path / "data").mkdir()
    argv = [
        "--models",
        "resnet18",
        "--data",
        str(tmp_path / "data"),
        "--epochs",
        "2",
        "--stages",
        "2",
        "--candidates",
        "48,64",
        "--work-dir",
        str(tmp_path / "s"),
        "--",
        "--batch-size",
        "8",
    ]
    with pytest.raises(Exception, match="size 48 is not a multiple of 32"):
        tool.main(argv)
    assert tool.main(argv[:-3] + ["--size-multiple", "16", "--", "--batch-size", "8"]) == 0
    assert fake.size_multiple == 16 and (48, 48) in [sizes for _, sizes in fake.runs]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--candidates": "96,150,224"}, "size 150 is not a multiple of 32"),
        ({"--data": "missing-folder"}, "is not a folder"),
        ({"--epochs": "1"}, "at least --stages"),
        ({"--randaug-magnitudes": "1,2,3"}, "one per stage"),
    ],
)
def test_search_tool_bad_input_is_one_line_exit_2(tmp_path, capsys, change, message):
    import pretraining.search_cli as tool
    from etcore.errors import run_cli

    options = {
        "--models": "resnet18",
        "--data": str(tmp_path),
        "--epochs": "4",
        "--stages": "2",
        "--work-dir": str(tmp_path / "w"),
        **change,
    }
    if change.get("--data") == "missing-folder":
        options["--data"] = str(tmp_path / "missing-folder")
    argv = [item for pair in options.items() for item in pair]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_search_tool_end_to_end_with_the_real_engine(tmp_path):
    """Two real (tiny) pretraining runs: the baseline and one trial; a huge tolerance makes acceptance certain."""
    import pretraining.search_cli as tool
    from etcore.checkpoint_io import load_checkpoint_file
    from pretrain_fixtures import TINY_MODELS, make_image_folder

    data = make_image_folder(tmp_path / "data", classes=2, per_class=4, size=40)
    work = tmp_path / "search"
    argv = [
        "--models",
        "convnext_atto",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--stages",
        "2",
        "--candidates",
        "32,64",
        "--tolerance",
        "100",
        "--work-dir",
        str(work),
        "--model-kwargs",
        f"convnext_atto={json.dumps(TINY_MODELS['convnext_atto'])}",
        "--",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--warmup-epochs",
        "0.5",
    ]
    assert tool.main(argv) == 0
    records = [json.loads(line) for line in (work / "trials.jsonl").read_text().splitlines()[1:]]
    assert [r["schedule"] for r in records] == [[64, 64], [32, 32]]
    for record in records:
        final = work / "trials" / ("b" + "-".join(map(str, record["schedule"]))) / "convnext_atto" / "final.pth"
        provenance = load_checkpoint_file(final)["provenance"]
        assert record["accuracy"]["convnext_atto"] == provenance["final_top1"]
        assert [s["input_size"] for s in provenance["curriculum"]["stages"]] == record["schedule"]
        assert provenance["model_kwargs"]["dims"] == TINY_MODELS["convnext_atto"]["dims"]
    assert json.loads((work / "search_summary.json").read_text())["schedule"] == [32, 32]
    assert tool.main(argv) == 0  # resumes: nothing new to train
    assert json.loads((work / "search_summary.json").read_text())["trials_run_now"] == 0


def test_searched_curriculum_file_keeps_the_lr_axis_it_was_searched_with(tmp_path):
    """Written to YAML and read back, a compute-mode curriculum gives the same LR at every step."""
    from types import SimpleNamespace

    import torch

    from pretraining.curriculum import build_curriculum, save_curriculum_file
    from pretraining.optim import CurriculumLRSchedule
    from pretraining.search import schedule_curriculum

    searched = schedule_curriculum((96, 160, 224), 30, 224, (2.0, 5.0, 9.0), "equal_compute", name="searched")
    path = save_curriculum_file(searched, tmp_path / "searched_curriculum.yaml")
    rerun = build_curriculum(str(path), searched.total_epochs)
    assert (rerun.lr_axis, rerun.budget_epochs) == ("compute", 30.0) and rerun.stages == searched.stages

    def lrs(curriculum):
        config = SimpleNamespace(lr_progress="auto", warmup_epochs=None, min_lr=1e-6, warmup_lr=0.0)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        schedule = CurriculumLRSchedule(optimizer, curriculum, config)
        values = []
        for step in range(curriculum.total_epochs * 4):
            schedule.step(step / 4)
            values.append(optimizer.param_groups[0]["lr"])
        return values

    assert lrs(rerun) == lrs(searched)
    as_epochs = build_curriculum(str(path), searched.total_epochs)
    assert lrs(type(as_epochs)(**{**as_epochs.__dict__, "lr_axis": "epochs"})) != lrs(searched)  # the axis matters


@pytest.mark.slow
def test_searched_curriculum_rerun_reproduces_the_trial_lr_schedule(tmp_path):
    """A compute-mode search with the real engine, then its searched_curriculum.yaml rerun by tools/pretrain.py's
    main with the same settings: the LR of every epoch equals the searched trial's."""
    import pretraining.search_cli as tool
    from pretrain_fixtures import TINY_MODELS, make_image_folder, read_log
    from pretraining.cli import main as pretrain_main
    from pretraining.curriculum import build_curriculum

    image_folder = make_image_folder(tmp_path / "data", classes=2, per_class=4, size=32)
    work = tmp_path / "search"
    extra = ["--batch-size", "4", "--workers", "0", "--device", "cpu", "--warmup-epochs", "0.5"]
    kwargs = json.dumps(TINY_MODELS["convnext_atto"])
    assert (
        tool.main(
            [
                "--models",
                "convnext_atto",
                "--data",
                str(image_folder),
                "--epochs",
                "3",
                "--stages",
                "2",
                "--candidates",
                "32,64",
                "--mode",
                "compute",
                "--tolerance",
                "100",
                "--work-dir",
                str(work),
                "--model-kwargs",
                f"convnext_atto={kwargs}",
                "--",
                *extra,
            ]
        )
        == 0
    )
    found = build_curriculum(str(work / "searched_curriculum.yaml"), None, final_size=64)
    assert found.lr_axis == "compute"
    schedule = json.loads((work / "search_summary.json").read_text())["schedule"]
    trial = work / "trials" / ("b" + "-".join(map(str, schedule))) / "convnext_atto"
    rerun = tmp_path / "rerun"
    assert (
        pretrain_main(
            [
                "--model",
                "convnext_atto",
                "--data",
                str(image_folder),
                "--curriculum",
                str(work / "searched_curriculum.yaml"),
                "--epochs",
                str(found.total_epochs),
                "--final-size",
                "64",
                "--work-dir",
                str(rerun),
                "--model-kwargs",
                kwargs,
                *extra,
            ]
        )
        == 0
    )
    assert [row["lr"] for row in read_log(rerun)] == [row["lr"] for row in read_log(trial)]
