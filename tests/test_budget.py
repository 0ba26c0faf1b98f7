"""One budget rule for every layer: shares in (0, 1), whole counts >= 1, 1.0 refused."""

import pytest

from selectgym.budget import DEFAULT_SHARE, check_budget, parse_budget, resolve_budget
from selectgym.errors import SelectgymError


def test_parse_then_resolve():
    assert parse_budget("0.05") == 0.05 and parse_budget("40") == 40 and parse_budget(None) is None
    assert resolve_budget(0.05, 200) == 10 and resolve_budget(0.001, 200) == 1 and resolve_budget(40, 200) == 40
    assert resolve_budget(40.0, 200) == 40 and resolve_budget(DEFAULT_SHARE, 1000) == 50


@pytest.mark.parametrize(("budget", "message"), [
    (1.0, "ambiguous"), (0, "share in"), (-0.5, "share in"), (2.5, "whole count"), (True, "share in"),
    (float("nan"), "share in"), ("0.1", "share in"),
])
def test_bad_budgets(budget, message):
    with pytest.raises(SelectgymError, match=message):
        check_budget(budget)


def test_counts_above_the_pool_and_empty_pools():
    with pytest.raises(SelectgymError, match="above the pool size 10"):
        resolve_budget(11, 10)
    with pytest.raises(SelectgymError, match="empty"):
        resolve_budget(0.5, 0)
    with pytest.raises(SelectgymError, match="--budget must be"):
        parse_budget("lots")


def test_every_config_uses_the_same_rule():
    from selectgym.agents import AgentConfig
    from selectgym.bench.harness import BenchConfig
    from selectgym.finetune.config import FinetuneConfig

    for make in (lambda b: AgentConfig(budget=b), lambda b: BenchConfig(budgets=[b]),
                 lambda b: FinetuneConfig(reselect="random", budget=b)):
        with pytest.raises(SelectgymError, match="ambiguous"):
            make(1.0)
        make(30)
