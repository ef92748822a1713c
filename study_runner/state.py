"""What a study's executors record in its folder: each step's last state, log and (on Slurm) job id.

`<root>/study.json` is rewritten atomically after every change, so `tools/study.py status` (from any shell,
while a run goes on or after it was killed) reads a whole file. The done-checks stay the authority on what is
finished; this record says what was started, where its log is, which job runs it and why it failed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etcore.checkpoint_io import write_text_atomic

STATE_FILE = "study.json"


@dataclass
class StudyState:
    """The record of one study folder (see the module docstring)."""

    root: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, root: Path) -> "StudyState":
        path = Path(root) / STATE_FILE
        try:
            steps = json.loads(path.read_text())["steps"]
        except (OSError, ValueError, KeyError, TypeError):
            steps = {}
        return cls(Path(root), dict(steps))

    def set(self, step_id: str, status: str, **details: Any) -> None:
        """Record `status` of a step (with its log, job, note ...) and write the file."""
        with self._lock:
            entry = dict(self.steps.get(step_id, {}))
            entry.update({k: (str(v) if isinstance(v, Path) else v) for k, v in details.items() if v is not None})
            entry["state"] = status
            entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            if "note" not in details:  # a note belongs to the state it was written with
                entry.pop("note", None)
            self.steps[step_id] = entry
            self._write()

    def get(self, step_id: str) -> dict[str, Any]:
        return dict(self.steps.get(step_id, {}))

    def _write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps({"steps": self.steps}, indent=2) + "\n", self.root / STATE_FILE)
