"""`selectgym select` on features with a NaN row: one line and exit 2, or rows skipped when asked."""

import numpy as np

from selectgym.cli import main
from selectgym.data import load_pool
from selectgym.proxies.table import FeatureTable
from tests.commands.test_select_cmd import write_store


def _features(tmp_path, suite_dir):
    pool = load_pool(suite_dir / "sft.jsonl")
    grads = np.random.default_rng(0).normal(size=(len(pool), 4))
    grads[7, 2] = np.nan
    train = FeatureTable(pool.ids, {"grad_adam": grads, "grad": grads})
    val = FeatureTable(["v0", "v1"], {"grad": np.array([[1.0, 0, 0, 0], [1.0, 0.1, 0, 0]])})
    return write_store(tmp_path / "feats", suite_dir / "sft.jsonl", train, val), pool


def test_nan_gradient_row_is_one_line_and_exit_2(tmp_path, suite_dir, capsys):
    folder, pool = _features(tmp_path, suite_dir)
    out = tmp_path / "chosen.jsonl"
    assert main(["select", "--method", "less", "--features", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "NaN or inf in table 'train'" in err and "'grad_adam': 1 row(s)" in err and repr(pool.ids[7]) in err
    assert not out.exists()


def test_skip_nonfinite_option_selects_without_the_row(tmp_path, suite_dir, capsys):
    folder, pool = _features(tmp_path, suite_dir)
    out = tmp_path / "chosen.jsonl"
    assert main(["select", "--method", "less", "--features", str(folder), "--out", str(out), "--budget", "0.5",
                 "--option", "skip_nonfinite=true"]) == 0
    chosen = [line for line in out.read_text().splitlines()]
    assert len(chosen) == round(0.5 * len(pool)) and not any(f'"{pool.ids[7]}"' in line for line in chosen)
