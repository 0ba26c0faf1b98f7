"""benchmarks.speed.scale on a tiny pool: it writes its stores once, measures each op in a child, writes the table."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_scale_benchmark_smoke(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.speed.scale", "--data", str(tmp_path / "data"), "--sizes", "600",
           "--dim", "32", "--ops", "open", "less", "gradalign_sim", "--out", str(tmp_path / "out")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)
    rows = json.loads((tmp_path / "out" / "scale.json").read_text())["rows"]
    assert [(r["n"], r["op"]) for r in rows] == [(600, "open"), (600, "less"), (600, "gradalign_sim")]
    assert all(r["seconds"] >= 0 and r["peak_rss_gb"] > 0 for r in rows)
    assert rows[1]["selected"] == 30 and rows[2]["rounds"] >= 1
    assert "| 600 | less | this branch |" in (tmp_path / "out" / "scale.md").read_text()
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.safetensors")}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)  # stores reused as they are
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.safetensors")} == stamp
