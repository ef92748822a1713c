"""The curriculum search's picture: top-1 change and compute ratio of every trial, the accepted path highlighted."""

from __future__ import annotations

from pathlib import Path

from pretraining.search import SearchResult
from pretraining.search_trials import schedule_tag


def plot_search(result: SearchResult, tolerance: float, path: Path) -> Path:
    """Two panels over the trials in search order: top-1 change vs baseline per model, and compute ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in result.trials if t.stage is not None]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(trials) + 2), 6.5), sharex=True)
    xs = list(range(len(trials)))
    for model, base in sorted(result.baseline_accuracy.items()):
        deltas = [t.accuracy[model] - base for t in trials]
        (line,) = top.plot(xs, deltas, marker="o", linestyle="-", linewidth=0.8, label=model)
        top.scatter(
            [x for x, t in zip(xs, trials) if t.accepted],
            [d for d, t in zip(deltas, trials) if t.accepted],
            s=90,
            facecolors="none",
            edgecolors=line.get_color(),
        )
    top.axhline(0.0, color="gray", linewidth=0.8)
    top.axhline(-tolerance, color="red", linestyle="--", linewidth=0.8, label=f"-tolerance ({tolerance:g})")
    top.set_ylabel("top-1 minus baseline (points)")
    top.legend(fontsize=8)
    top.set_title(
        f"curriculum search: found {schedule_tag(result.schedule)} "
        f"({result.curriculum.compute_ratio():.3f} of full-size compute)",
        fontsize=10,
    )
    ratios = [t.compute_ratio for t in trials]
    bottom.plot(xs, ratios, marker="o", color="tab:gray", linewidth=0.8)
    accepted = [(x, r) for x, r, t in zip(xs, ratios, trials) if t.accepted]
    if accepted:
        bottom.plot(*zip(*accepted), marker="o", color="tab:green", linewidth=2.0, label="accepted (search path)")
        bottom.legend(fontsize=8)
    bottom.set_ylabel("compute / full size")
    bottom.set_xticks(xs)
    bottom.set_xticklabels([schedule_tag(t.schedule)[1:] for t in trials], rotation=70, fontsize=7)
    bottom.set_xlabel("trial (stage sizes)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
