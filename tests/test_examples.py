"""The example scripts run end to end with tiny settings (as subprocesses, like a user would run them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selectgym.agents.policy_file import read_sidecar

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("selectgym.proxies.pipeline")


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_examples_train_apply_compare(tmp_path):
    out = run("train_agent.py", "--out", str(tmp_path / "agent"), "--pool-size", "48", "--proj-dim", "32",
              "--timesteps", "512", "--n-clusters", "4")
    policy = tmp_path / "agent" / "policy.zip"
    assert policy.exists() and read_sidecar(policy)["algorithm"]
    assert "trained on 48 examples" in out

    # the real pipeline end to end: a policy from one pool selects from a differently seeded pool of another size
    out = run("apply_policy.py", "--policy", str(policy), "--out", str(tmp_path / "apply"), "--seed", "7",
              "--pool-size", "30", "--budget", "0.2")
    assert "selected 6 of 30 examples" in out

    out = run("compare_selectors.py", "--policy", str(policy), "--out", str(tmp_path / "compare"),
              "--pool-size", "30", "--budget", "0.2")
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(lines) == {"policy", "nice", "gradalign", "random"}
    assert all(row[1] == "6" for row in lines.values())
