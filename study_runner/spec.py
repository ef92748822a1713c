"""A study spec (YAML) and the graph of steps it expands into.

    base: demo.yaml                      # optional: start from another spec (path relative to this one) and
                                         # change it: mappings merge, entries of the same `name` merge (an entry
                                         # `{name: x, drop: true}` removes x), the rest is replaced
    name: demo                           # optional; default: the file name
    root: work_dirs/demo                 # where every step writes (default: work_dirs/studies/<name>)
    vars: {data: data/demo}              # values for `{data}` below; --var data=... replaces them
    pretrain_root: work_dirs/pretrain    # optional: where the pretrainings go (default <root>/pretrain); studies
                                         # that share it share their pretrainings (on Slurm too: a queued job
                                         # for the same folder is waited for, not submitted again)
    lanes: 2                             # local executor: fine-tunes of this many checkpoints side by side
    estimates: {pretrain: 75, ...}       # seconds per step kind, for the local ETA (optional)
    prepare:                             # steps without inputs that run first (e.g. generate data)
      - {name: data, command: [tools/make_demo_data.py, --out, data/demo]}
    pretrain:                            # tools/pretrain.py runs: curricula x epochs x seeds
      - name: r18
        model: resnet18
        data: data/demo/imagenet
        curricula: [baseline, efficienttrain]
        epochs: 12                       # a number, a list, or {curriculum: number or list}
        seeds: [0]
        final_size: 64                   # optional
        lowfreq: direct                  # optional: --lowfreq, checked in the finished run's provenance
        recipe: {batch_size: 32, hflip: 0}  # tools/pretrain.py settings (field names): passed as flags, and
                                         # checked in a finished run's recorded recipe
        args: [--eval-every, "4"]        # more flags, passed as they are
        tasks: 1                         # processes (GPUs) of one run; Slurm starts them with srun
    finetune:                            # tools/train.py then tools/test.py from each pretraining
      - name: retinanet
        config: det_configs/tiny/retinanet_{stem}_fpn_tiny-demo_{curriculum}.py
        from: [r18]                      # which pretrain entries feed it (default: all)
        data_root: data/demo/coco
        cfg_options: [train_cfg.max_iters=4]
        tests: [single]                  # single and/or tta (mmseg's multi-scale + flip)
        vis: [tensorboard]               # tools/train.py --vis (tracking); a pretrain entry's is recipe.vis
        tasks: 1
    report: {command: [tools/demo_report.py, "{root}"]}   # default: that command; `false`: none
    check_images: true                   # decode every image before a fine-tune or test reads it (default)
    bootstrap: 200                       # resamples of the test images kept with every metric (0: none)
    slurm: {partition: gpu, account: null, qos: null, resources: {pretrain: {gpus: 8, ...}, ...}}

Templates: `{stem}` (the model's config-name stem, `etcore.families`), `{model}`, `{curriculum}`, `{root}` and
the spec's `vars`.
Every problem is one `UserInputError` naming the spec, the entry and the fix, before anything runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from etcore.errors import UserInputError
from etcore.families import config_stem
from study_runner.runs import REPO, TEST_MODES, FineTune, Pretraining, Study

_TOP_KEYS = {
    "base",
    "bootstrap",
    "pretrain_root",
    "name",
    "root",
    "vars",
    "lanes",
    "estimates",
    "prepare",
    "pretrain",
    "finetune",
    "report",
    "slurm",
    "check_images",
}
_PRETRAIN_KEYS = {
    "name",
    "model",
    "data",
    "curricula",
    "epochs",
    "seeds",
    "final_size",
    "lowfreq",
    "args",
    "recipe",
    "tasks",
}
# set by the entry's own keys (or by the study), not by `recipe`
_NOT_RECIPE = {"model", "data", "work_dir", "curriculum", "epochs", "seed", "final_size", "lowfreq", "resume", "config"}
_FINETUNE_KEYS = {"name", "config", "from", "data_root", "cfg_options", "tests", "vis", "tasks"}
_KNOWN_CURRICULA = ("baseline", "efficienttrain", "efficienttrain++")


# ------------------------------------------------------------------------------------------------ loading


def _read_spec(path: Path, seen: tuple[Path, ...]) -> dict:
    """The spec at `path` with its `base` chain merged in (a spec changes the one it names)."""
    import yaml

    where = f"study spec {path}"
    if not path.is_file():
        raise UserInputError(f"{where} does not exist: give a YAML file such as studies/demo.yaml")
    if path.resolve() in seen:
        raise UserInputError(f"{where}: its `base` chain comes back to itself: remove one `base`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserInputError(f"{where} is not valid YAML ({' '.join(str(err).split())}): fix it") from None
    _mapping(data, where)
    _known_keys(data, _TOP_KEYS, where)
    if not data.get("base"):
        return dict(data)
    base = _read_spec(path.parent / str(data["base"]), (*seen, path.resolve()))
    base.pop("name", None)  # a derived spec is a study of its own
    merged = _merge(base, {k: v for k, v in data.items() if k != "base"})
    return merged


def _merge(base: Any, change: Any) -> Any:
    """`change` over `base`: mappings merge key by key, lists of named entries merge by name, the rest is replaced."""
    if isinstance(base, Mapping) and isinstance(change, Mapping):
        merged = dict(base)
        for key, value in change.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if _named(base) and _named(change):
        merged_entries = {entry["name"]: entry for entry in base}
        for entry in change:
            name = entry["name"]
            if entry.get("drop"):  # `{name: x, drop: true}`: the derived study has no entry x
                merged_entries.pop(name, None)
                continue
            merged_entries[name] = _merge(merged_entries[name], entry) if name in merged_entries else entry
        return list(merged_entries.values())
    return change


def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) and "name" in v for v in value)


def load_study(
    path: str | Path,
    seeds: Sequence[int] | None = None,
    root: str | Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> Study:
    """Read and check a spec; `seeds` (e.g. --seeds 0 1 2), `root` and `variables` replace the spec's own."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"study spec {path} does not exist: give a YAML file such as studies/demo.yaml")
    where = f"study spec {path}"
    data = _read_spec(path, ())
    name = str(data.get("name") or path.stem)
    values = {str(k): str(v) for k, v in _mapping(data.get("vars") or {}, f"{where}: vars").items()}
    unknown = sorted(set(variables or {}) - set(values))
    if unknown:
        raise UserInputError(
            f"{where}: --var {unknown[0]} is not one of the spec's vars ({', '.join(values) or 'none'})"
        )
    values.update(variables or {})
    study_root = Path(root) if root is not None else Path(data.get("root") or f"work_dirs/studies/{name}")
    values["root"] = str(study_root)
    data = _substitute(data, values)
    lanes = _positive_int(data.get("lanes", 2), f"{where}: lanes")
    estimates = {str(k): float(v) for k, v in (_mapping(data.get("estimates") or {}, f"{where}: estimates")).items()}
    check_images = bool(data.get("check_images", True))
    bootstrap = 0 if data.get("bootstrap", 200) in (False, None) else int(data.get("bootstrap", 200))
    prepare = [_prepare(item, f"{where}: prepare[{i}]") for i, item in enumerate(_list(data, "prepare", where))]
    pretrainings: list[Pretraining] = []
    groups: dict[str, list[Pretraining]] = {}
    pretrain_root = Path(data.get("pretrain_root") or study_root / "pretrain")
    for index, item in enumerate(_list(data, "pretrain", where)):
        runs = _pretrain_entry(item, f"{where}: pretrain[{index}]", pretrain_root, seeds)
        entry = runs[0].entry
        if entry in groups:
            raise UserInputError(f"{where}: two pretrain entries are called {entry!r}: name them apart")
        groups[entry] = runs
        pretrainings += runs
    finetunes: list[FineTune] = []
    for index, item in enumerate(_list(data, "finetune", where)):
        finetunes += _finetune_entry(item, f"{where}: finetune[{index}]", study_root, groups, check_images, bootstrap)
    report = _report(data.get("report", True), where, study_root)
    slurm = _mapping(data.get("slurm") or {}, f"{where}: slurm")
    return Study(name, path, study_root, lanes, estimates, prepare, pretrainings, finetunes, report, dict(slurm))


def _prepare(item: Any, where: str) -> tuple[str, tuple[str, ...]]:
    _mapping(item, where)
    _known_keys(item, {"name", "command"}, where)
    command = _strings(item.get("command"), f"{where}: command")
    _check_tool(command, where)
    return str(item.get("name") or Path(command[0]).stem), command


def _pretrain_entry(item: Any, where: str, root: Path, seeds: Sequence[int] | None) -> list[Pretraining]:
    _mapping(item, where)
    _known_keys(item, _PRETRAIN_KEYS, where)
    for key in ("model", "data", "curricula", "epochs"):
        if key not in item:
            raise UserInputError(f"{where}: '{key}' is missing: add it")
    model = str(item["model"])
    _check_model(model, where)
    curricula = _strings(item["curricula"], f"{where}: curricula")
    for curriculum in curricula:
        if curriculum not in _KNOWN_CURRICULA and not Path(curriculum).is_file():
            raise UserInputError(
                f"{where}: curriculum {curriculum!r} is unknown: use one of {', '.join(_KNOWN_CURRICULA)} "
                "or the path of a curriculum file"
            )
    epochs = _epochs(item["epochs"], curricula, f"{where}: epochs")
    run_seeds = list(seeds) if seeds is not None else [int(s) for s in _list(item, "seeds", where) or [0]]
    name = str(item.get("name") or model)
    final_size = item.get("final_size")
    tasks = _positive_int(item.get("tasks", 1), f"{where}: tasks")
    recipe = _recipe(item.get("recipe"), where)
    runs = []
    for curriculum in curricula:
        tag = Path(curriculum).stem if curriculum not in _KNOWN_CURRICULA else curriculum
        for budget in epochs[curriculum]:
            for seed in run_seeds:
                runs.append(
                    Pretraining(
                        entry=name,
                        model=model,
                        curriculum=curriculum,
                        epochs=budget,
                        seed=int(seed),
                        data=str(item["data"]),
                        final_size=None if final_size is None else _positive_int(final_size, f"{where}: final_size"),
                        lowfreq=None if item.get("lowfreq") is None else str(item["lowfreq"]),
                        args=(*_recipe_flags(recipe), *_strings(item.get("args") or [], f"{where}: args")),
                        expect=_checked_recipe(recipe),
                        tasks=tasks,
                        work_dir=root / f"{name}_{tag}_e{budget}_s{seed}",
                    )
                )
    return runs


def _finetune_entry(
    item: Any, where: str, root: Path, groups: Mapping[str, list[Pretraining]], check_images: bool, bootstrap: int
) -> list[FineTune]:
    _mapping(item, where)
    _known_keys(item, _FINETUNE_KEYS, where)
    for key in ("config", "data_root"):
        if key not in item:
            raise UserInputError(f"{where}: '{key}' is missing: add it")
    name = str(item.get("name") or Path(str(item["config"])).stem)
    sources = _strings(item.get("from") or list(groups), f"{where}: from")
    for source in sources:
        if source not in groups:
            raise UserInputError(
                f"{where}: 'from' names {source!r}, which is no pretrain entry (known: {', '.join(groups) or 'none'})"
            )
    tests = _strings(item.get("tests") or ["single"], f"{where}: tests")
    for mode in tests:
        if mode not in TEST_MODES:
            raise UserInputError(f"{where}: test {mode!r} is unknown: use {' and/or '.join(TEST_MODES)}")
    cfg_options = _strings(item.get("cfg_options") or [], f"{where}: cfg_options")
    vis = _strings(item.get("vis") or [], f"{where}: vis")
    tasks = _positive_int(item.get("tasks", 1), f"{where}: tasks")
    runs = []
    for source in sources:
        for pretraining in groups[source]:
            config = _template(str(item["config"]), pretraining, root, where)
            segmentation, final = _config_facts(config, cfg_options, where)
            if "tta" in tests and not segmentation:
                raise UserInputError(f"{where}: 'tta' tests are for segmentation configs; {config} is a detector")
            folder = "seg" if segmentation else "det"
            runs.append(
                FineTune(
                    entry=name,
                    config=config,
                    segmentation=segmentation,
                    source=pretraining,
                    data_root=str(item["data_root"]),
                    cfg_options=cfg_options,
                    tests=tests,
                    final_name=final,
                    tasks=tasks,
                    work_dir=root / folder / f"{name}_{pretraining.id}",
                    check_images=check_images,
                    bootstrap=bootstrap,
                    vis=vis,
                )
            )
    return runs


def _report(value: Any, where: str, root: Path) -> tuple[str, ...] | None:
    if value is False or value is None:
        return None
    if value is True:
        return ("tools/demo_report.py", str(root))
    _mapping(value, f"{where}: report")
    _known_keys(value, {"command"}, f"{where}: report")
    command = _strings(value.get("command"), f"{where}: report.command")
    _check_tool(command, f"{where}: report")
    return command


# ------------------------------------------------------------------------------------------------ checks


def _recipe(value: Any, where: str) -> dict[str, Any]:
    """The entry's `recipe`: tools/pretrain.py settings by field name, checked as the tool checks them."""
    from pretraining.config import FIELDS, coerce_value

    recipe = {}
    for name, setting in _mapping(value or {}, f"{where}: recipe").items():
        if name not in FIELDS or name in _NOT_RECIPE:
            raise UserInputError(
                f"{where}: recipe.{name} is not a recipe setting of tools/pretrain.py (model, data, curricula, "
                "epochs, seeds, final_size and lowfreq are keys of the entry itself; `python tools/pretrain.py "
                "--help` lists the settings)"
            )
        recipe[name] = coerce_value(name, setting, f"{where}: recipe.{name}")
    return recipe


def _recipe_flags(recipe: Mapping[str, Any]) -> list[str]:
    """The recipe as tools/pretrain.py flags (`--crop-scale 0.35`, `--no-ema`)."""
    flags: list[str] = []
    for name, value in recipe.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        elif isinstance(value, Mapping):
            flags += [flag, json.dumps(dict(value))]
        else:
            flags += [flag, str(value)]
    return flags


def _checked_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What a finished run must have recorded: the recipe, but for settings a resume may change (workers ...)."""
    from pretraining.config import RESUMABLE_CHANGES

    return {name: value for name, value in recipe.items() if name not in RESUMABLE_CHANGES}


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    """Every `{key}` of `values` replaced in the spec's strings (other templates are left for later)."""
    if isinstance(value, str):
        for key, text in values.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, Mapping):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def _template(text: str, run: Pretraining, root: Path, where: str) -> str:
    values = {"model": run.model, "curriculum": run.curriculum, "root": str(root)}
    if "{stem}" in text:
        values["stem"] = config_stem(run.model)
    try:
        config = text.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        raise UserInputError(
            f"{where}: config {text!r} uses an unknown template field ({err}): use {{stem}}, {{model}}, {{curriculum}}"
        ) from None
    if not (REPO / config).is_file() and not Path(config).is_file():
        raise UserInputError(f"{where}: config {config} does not exist (for {run.id}): fix the path or the template")
    return config


def _config_facts(config: str, cfg_options: tuple[str, ...], where: str) -> tuple[bool, str]:
    """(is a segmentation config, the name of its last checkpoint) after the spec's --cfg-options."""
    segmentation, final = _read_config(config, cfg_options)
    if final is None:
        raise UserInputError(
            f"{where}: config {config} has neither train_cfg.max_iters nor max_epochs: studies need the length "
            "of a run to know its last checkpoint before it starts"
        )
    return segmentation, final


@functools.lru_cache(maxsize=None)
def _read_config(config: str, cfg_options: tuple[str, ...]) -> tuple[bool, str | None]:
    """The config's scope and its last checkpoint's name (`iter_N.pth` or `epoch_N.pth`), read once per process."""
    from mmengine.config import Config, DictAction

    path = config if Path(config).is_file() else str(REPO / config)
    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--cfg-options", nargs="+", action=DictAction)
        cfg.merge_from_dict(parser.parse_args(["--cfg-options", *cfg_options]).cfg_options)
    train_cfg = cfg.get("train_cfg") or {}
    if train_cfg.get("max_iters") is not None:
        final = f"iter_{int(train_cfg['max_iters'])}.pth"
    elif train_cfg.get("max_epochs") is not None:
        final = f"epoch_{int(train_cfg['max_epochs'])}.pth"
    else:
        final = None
    return cfg.get("default_scope") == "mmseg", final


def _check_model(model: str, where: str) -> None:
    import timm

    if not timm.is_model(model):
        close = timm.list_models(f"*{model.split('_')[0]}*")[:5]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UserInputError(f"{where}: model {model!r} is not a timm model{hint}: fix the name")


def _check_tool(command: Sequence[str], where: str) -> None:
    if not command or not re.fullmatch(r"tools/[\w.-]+\.py", command[0]) or not (REPO / command[0]).is_file():
        raise UserInputError(
            f"{where}: command {list(command)} does not start with one of the project's tools (tools/<name>.py)"
        )


def _epochs(value: Any, curricula: Sequence[str], where: str) -> dict[str, list[int]]:
    if isinstance(value, Mapping):
        missing = [c for c in curricula if c not in value]
        if missing:
            raise UserInputError(f"{where}: no epochs for {', '.join(missing)}: add them")
        return {c: _int_list(value[c], f"{where}.{c}") for c in curricula}
    budgets = _int_list(value, where)
    return {c: budgets for c in curricula}


def _int_list(value: Any, where: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [_positive_int(v, where) for v in values]


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserInputError(f"{where} must be a positive whole number, got {value!r}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if value is None or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise UserInputError(f"{where} must be a list of strings, got {value!r}")
    return tuple(str(v) for v in values)


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise UserInputError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _list(data: Mapping, key: str, where: str) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise UserInputError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    return value


def _known_keys(data: Mapping, allowed: set[str], where: str) -> None:
    extra = sorted(set(map(str, data)) - allowed)
    if extra:
        raise UserInputError(f"{where}: unknown key(s) {', '.join(extra)}: allowed are {', '.join(sorted(allowed))}")
