"""benchmarks.envelope: the recorded command is free of the checkout's path, the paired p-value is the one t-test's,
and the files keep the sections other benchmarks wrote."""

from __future__ import annotations

import math
import os

import pytest
from scipy import stats

from benchmarks import envelope
from benchmarks.envelope import ROOT, command_line, module_name, paired_p, replace_section, section_of, write_results


def test_the_command_names_the_module_and_no_path():
    script = ROOT / "benchmarks" / "quality" / "transfer.py"
    assert module_name(script) == "benchmarks.quality.transfer"
    command = command_line(script, ["--seeds", "0", "1", "--out", "a b"])
    prefix = f"nice -n {os.nice(0)} " if os.nice(0) > 0 else ""
    assert command == prefix + ".venv/bin/python -m benchmarks.quality.transfer --seeds 0 1 --out 'a b'"
    assert str(ROOT) not in command_line(script, [])


def test_paired_p_is_the_paired_t_test_or_none():
    a, b = [0.2, 0.3, 0.5, 0.4], [0.1, 0.3, 0.2, 0.2]
    assert paired_p(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_p([0.2], [0.1]) is None
    assert math.isnan(paired_p([0.2, 0.3], [0.1, 0.2]))  # every difference the same: no test
    assert envelope.paired_test is __import__("selectgym.bench.report", fromlist=["x"]).paired_test


def test_the_load_note_reads_the_load_before(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert "otherwise idle" in envelope.load_note([0.5, 1.0, 1.0], [3.0, 1.0, 1.0])
    assert "already busy" in envelope.load_note([1.5, 1.0, 1.0], [0.1, 1.0, 1.0])


def test_results_merge_and_sections_are_kept(tmp_path):
    stem = tmp_path / "transfer"
    write_results(stem, {"a": 1, "b": 2}, "# Transfer\n\nold table\n\n## Downstream\n\nold rows\n")
    assert write_results(stem, {"b": 3}, merge=True) == {"a": 1, "b": 3}
    md = stem.with_suffix(".md")
    assert section_of(md, "## Downstream") == "\n## Downstream\n\nold rows\n"
    assert section_of(md, "## Target sensitivity") == ""
    text = replace_section(md, "## Downstream", "## Downstream\n\nnew rows\n")
    assert text == "# Transfer\n\nold table\n\n## Downstream\n\nnew rows\n"
    assert replace_section(tmp_path / "none.md", "## Downstream", "## Downstream\n") == "\n\n## Downstream\n"
