"""The default run as a newcomer meets it: `selectgym demo` from nothing, timed, with its table and every pick.

Runs ``selectgym demo --out <fresh folder>`` as its own process (suite, features with the shipped ``mini``, the
agents, every fine-tuning run), times it as a whole, and records the table, each run's accuracy and picked ids,
and the digest of the ``mini`` weights it read. On another machine the same command should make the same picks
and print the same accuracies (``tests/proxies/test_shipped.py`` pins LESS's picks); compare its
``demo.json`` with the committed one.

Run: ``.venv/bin/python -m benchmarks.accuracy.demo`` from the checkout root (about 2-4 minutes on 2 cores). Writes
``benchmarks/results/demo.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.envelope import RESULTS, command_line, environment, load_average, load_note, write_results
from selectgym.proxies.models import weights_digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "demo"), help="results file stem")
    args = parser.parse_args(argv)
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "selectgym-demo"
        started = time.perf_counter()
        run = subprocess.run([str(Path(sys.executable).parent / "selectgym"), "demo", "--out", str(folder)],
                             capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if run.returncode:
            raise SystemExit(f"error: selectgym demo failed (exit {run.returncode}): {run.stderr[-2000:]}")
        saved = json.loads((folder / "runs.json").read_text())
    runs = [{k: r[k] for k in ("method", "seed", "budget", "accuracy", "useful_share", "ids") if k in r}
            for r in saved["runs"]]
    report = {"command": command_line(__file__, argv), "environment": environment(),
              "seconds": round(seconds, 1), "proxy_digest": weights_digest("mini"), "table": saved["table"],
              "summary": saved["summary"], "runs": runs, "load_note": load_note(before, load_average())}
    lines = ["# `selectgym demo`, timed from nothing", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             f"`selectgym demo` took {seconds:.0f} s as a whole process (suite, features with the shipped `mini`, "
             f"weights digest {report['proxy_digest']}, five agents, every fine-tuning run). Its table:", "",
             saved["table"].strip(), "",
             "Every run's picked ids are in `demo.json`: on another machine the same command should make the same "
             "picks (a pick may differ only where two scores tie to float precision) and print these accuracies.", ""]
    write_results(args.out, report, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
