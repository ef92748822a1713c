"""Compare fine-tuning runs: one table of pretraining cost, COCO AP and ADE20K mIoU, EfficientTrain against baseline.

Reads every `coco_metrics.json` and `seg_metrics.json` (+ `pretrain_provenance.json`) below the given work
dirs (docs/FORMATS.md), groups runs by detector or segmentor, backbone and schedule, averages seeds
(mean +- std), and adds below each non-baseline row its seed-paired delta to the `baseline` curriculum.
Runs are paired only when their resolved configs differ in nothing but the pretrained checkpoint, the work
dir and the seed. Segmentation groups show mIoU single-scale and with multi-scale + flip test.

    python tools/compare.py work_dirs/demo [--format markdown|csv|latex|json|zoo] [--out FILE] [--paper]
    python tools/compare.py work_dirs/demo_frontier --frontier DIR

`--frontier DIR` draws top-1, RetinaNet box AP / AP50 and UperNet mIoU against pretraining cost (equivalent
epochs and measured training time; each point the mean over seeds with its 95% interval) and prints the
seed-paired differences to the baseline at matched compute and at matched measured time, each pair with its
cost ratio (`reporting/frontier.py`), into DIR/frontier.md.
`--format zoo` lists every fine-tuned model instead, model-zoo style (`reporting.zoo`): scores, #Params and
FLOPs at the test size, and links to its config, log and checkpoint relative to where the table is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from etcore.checkpoint_io import write_text_atomic
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from reporting.frontier import write_frontier
from reporting.render import FORMATS, render
from reporting.runs import load_runs
from reporting.table import build_table, paper_table
from reporting.zoo import ZOO_FORMAT, zoo_markdown


def main(argv: Sequence[str] | None = None) -> int:
    """Load runs, build the table, print it or write it atomically to --out."""
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "work_dirs",
        nargs="*",
        help="fine-tuning work dirs (searched recursively); none with --paper: only the published rows",
    )
    parser.add_argument(
        "--format",
        default="markdown",
        choices=(*FORMATS, ZOO_FORMAT),
        help="the comparison table as markdown, csv, latex or json; or zoo: one row per fine-tuned model with "
        "#Params, FLOPs and links to its config, log and checkpoint (markdown)",
    )
    parser.add_argument("--out", help="write the table to this file instead of stdout")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="add the papers' published rows (EfficientTrain++ Table 17, COCO; Table 18, ADE20K) beside the runs "
        "of the same detector or segmentor, schedule, backbone and curriculum (alone: print every published row)",
    )
    parser.add_argument(
        "--frontier",
        metavar="DIR",
        help="also write DIR/frontier.md and its plots: every arm against pretraining cost, with intervals over "
        "seeds, and the differences to the baseline at matched compute and measured time (printed)",
    )
    args = parser.parse_args(argv)
    if args.frontier:
        if not args.work_dirs:
            raise UserInputError("--frontier needs the work dirs of the runs to draw")
        text = write_frontier(load_runs(args.work_dirs), Path(args.frontier))
        print(text.split("## Every point")[0].rstrip())
        print(f"wrote {Path(args.frontier) / 'frontier.md'}", file=sys.stderr)
        return 0
    if not args.work_dirs and not args.paper:
        raise UserInputError(
            "no work dir given: pass fine-tuning work dirs (e.g. work_dirs/demo), or --paper alone "
            "for the published rows"
        )
    if args.format == ZOO_FORMAT:
        if args.paper or not args.work_dirs:
            raise UserInputError(
                "--format zoo lists fine-tuned runs (no published rows): pass their work dirs and drop --paper"
            )
        base = Path(args.out).absolute().parent if args.out else Path.cwd()
        return _emit(zoo_markdown(load_runs(args.work_dirs), base), args.out, "the zoo table")
    table = paper_table() if not args.work_dirs else build_table(load_runs(args.work_dirs), paper=args.paper)
    text = render(table, args.format)
    if args.format == "csv":
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
    return _emit(text, args.out, f"{len(table.rows)} rows")


def _emit(text: str, out_path: str | None, what: str) -> int:
    """Print `text`, or write it atomically to `out_path`."""
    if out_path is None:
        sys.stdout.write(text)
        return 0
    out = Path(out_path)
    if out.is_dir():
        raise UserInputError(f"--out {out} is a folder: give a file name such as {out / 'compare.md'}")
    try:
        write_text_atomic(text, out)
    except OSError as err:
        raise UserInputError(f"--out {out}: cannot write ({err.strerror or err}): choose a writable path") from None
    print(f"wrote {out} ({what})", file=sys.stderr)
    return 0
