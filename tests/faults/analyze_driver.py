"""`analyze` in a process of its own, with a backend that can stop at a known point.

    python analyze_driver.py CONFIG [--group-rows N] [--stop-at K --stopped FILE [--go FILE]]

The K-th call to the backend creates FILE (the test then knows where the process is) and waits
for the file named by ``--go`` (for ever when there is none: the test kills it there). The
backend answers from the text, like the tests' `EchoBackend`, with no model to load. Prints the
report's counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # the tests' conftest, for EchoBackend

from conftest import EchoBackend  # noqa: E402

from flows.config import load_config  # noqa: E402
from flows.stages import analyze as analyze_stage  # noqa: E402


class StoppingBackend(EchoBackend):
    def __init__(self, stop_at: int, stopped: Path | None, go: Path | None) -> None:
        super().__init__()
        self.stop_at, self.stopped, self.go = stop_at, stopped, go

    def classify(self, texts):
        if len(self.calls) + 1 == self.stop_at:
            self.stopped.touch()
            while self.go is None or not self.go.exists():
                time.sleep(0.02)
        return super().classify(texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--group-rows", type=int, default=0)
    parser.add_argument("--stop-at", type=int, default=0)
    parser.add_argument("--stopped", type=Path)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.group_rows:  # several groups from a small lake: kills land between them
        analyze_stage.GROUP_ROWS["cpu"] = args.group_rows
    backend = StoppingBackend(args.stop_at, args.stopped, args.go)
    report = analyze_stage.analyze(load_config(args.config), backend=backend)
    classified = sum(len(call) for call in backend.calls)
    counts = {"files": report.files, "analysed": report.analysed, "classified": classified}
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
