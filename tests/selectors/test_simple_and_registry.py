import numpy as np
import pytest

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.selectors import SELECTORS, Selector, get_selector, option_names, selector_class
from selectgym.selectors.dpo_gap import DpoGapSelector
from selectgym.selectors.uniform import RandomSelector


class ByLoss(Selector):
    """A user's own selector, found by dotted path."""

    name = "by_loss"

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def score(self, train, val, rng):
        return self.sign * train.get("loss")


def test_dpo_gap_smallest_signed_gap_first(make_table):
    train = make_table(dpo_gap=[0.3, -0.5, 0.1, -2.0, 0.0])
    sel = DpoGapSelector().select(train, None, 3, seed=0)
    # signed, not absolute: the pair the DPO model ranks wrong way round (-2.0) comes first
    assert sel.ids == ["ex3", "ex1", "ex4"]
    assert sel.scores == pytest.approx([2.0, 0.5, 0.0])
    assert DpoGapSelector.default_budget == 0.1
    assert DpoGapSelector().select(train, None, 0.4, seed=0).ids == ["ex3", "ex1"]


def test_random_is_seeded_uniform(make_table):
    train = make_table(loss=np.zeros(50))
    a = RandomSelector().select(train, None, 10, seed=1)
    assert a.ids == RandomSelector().select(train, None, 10, seed=1).ids
    assert a.ids != RandomSelector().select(train, None, 10, seed=2).ids
    assert len(set(a.ids)) == 10
    counts = dict.fromkeys(train.ids, 0)
    for seed in range(400):
        for i in RandomSelector().select(train, None, 10, seed=seed).ids:
            counts[i] += 1
    assert 50 <= min(counts.values()) and max(counts.values()) <= 115  # expected 80 each


def test_selection_is_deterministic_for_every_method(make_table):
    rng = np.random.default_rng(0)
    n = 30
    train = make_table(grad=rng.normal(size=(n, 4)), grad_adam=rng.normal(size=(n, 4)), dpo_gap=rng.normal(size=n),
                       grpo_grad=rng.normal(size=(n, 4)), grpo_signal=rng.integers(0, 2, n),
                       pass_rate=rng.uniform(size=n))
    val = make_table(grad=rng.normal(size=(3, 4)), pg_grad=rng.normal(size=(3, 4)), grpo_grad=rng.normal(size=(3, 4)))
    for name in ("random", "less", "nice", "gradalign", "dpo_gap"):
        first = get_selector(name).select(train, val, 0.2, seed=5)
        again = get_selector(name).select(train, val, 0.2, seed=5)
        assert first.ids == again.ids and len(first.ids) == 6 and first.method == name
        assert first.pool_scores.shape == (n,)


def test_registry_lists_every_method_and_resolves_lazily():
    assert set(SELECTORS) == {"random", "less", "nice", "gradalign", "dpo_gap", "rds", "length", "learnability",
                              "policy"}
    assert SELECTORS["policy"] == "selectgym.agents.selector:PolicySelector"
    for name in ("random", "less", "nice", "gradalign", "dpo_gap", "rds", "length", "learnability"):
        cls = selector_class(name)
        assert issubclass(cls, Selector) and cls.name == name
    assert option_names(selector_class("gradalign")) == ["mode", "chunk_size", "q", "batch_size", "iters_per_select",
                                                     "skip_nonfinite"]
    assert issubclass(selector_class("policy"), Selector)
    assert option_names(selector_class("policy")) == ["policy_path", "subtasks"]


def test_dotted_paths_find_user_selectors(make_table):
    train = make_table(loss=[0.2, 0.9, 0.5])
    for path in ("tests.selectors.test_simple_and_registry:ByLoss", "tests.selectors.test_simple_and_registry.ByLoss"):
        assert get_selector(path).select(train, None, 2, seed=0).ids == ["ex1", "ex2"]
    assert get_selector("selectgym.selectors.uniform.RandomSelector").name == "random"
    assert get_selector("tests.selectors.test_simple_and_registry:ByLoss", sign=-1.0).select(
        train, None, 1, seed=0).ids == ["ex0"]


def test_lookup_errors_are_one_line():
    with pytest.raises(SelectgymError, match="unknown selector 'lesss'; choose from random, less, nice") as err:
        get_selector("lesss")
    assert "\n" not in str(err.value)
    with pytest.raises(SelectgymError, match="cannot import 'no_such_pkg.mod'"):
        get_selector("no_such_pkg.mod:Thing")
    with pytest.raises(SelectgymError, match="has no 'Nope'"):
        get_selector("selectgym.selectors.uniform:Nope")
    with pytest.raises(SelectgymError, match="not a Selector subclass"):
        get_selector("selectgym.errors:SelectgymError")
    with pytest.raises(SelectgymError, match="has no option\\(s\\) modee; it takes: mode, chunk_size"):
        get_selector("gradalign", modee="sim")


@pytest.mark.parametrize("budget", [0, 0.0, 31, float("nan"), 2.5, -1, True])
def test_bad_budgets_are_errors(make_table, budget):
    train = make_table(dpo_gap=np.arange(30.0))
    with pytest.raises(SelectgymError, match="budget"):
        DpoGapSelector().select(train, None, budget, seed=0)


def test_nan_scores_and_missing_arrays_are_errors(make_table):
    with pytest.raises(SelectgymError, match="NaN or inf in table .*'dpo_gap': 1 row.*'ex1'"):
        DpoGapSelector().select(make_table(dpo_gap=[0.1, float("nan")]), None, 1, seed=0)

    class NanSelector(Selector):
        name = "nan"

        def score(self, train, val, rng):
            return np.array([0.5, np.nan])

    with pytest.raises(SelectgymError, match="nan produced NaN scores"):
        NanSelector().select(make_table(dpo_gap=[0.1, 0.2]), None, 1, seed=0)
    with pytest.raises(SelectgymError, match="features have no 'dpo_gap'"):
        DpoGapSelector().select(FeatureTable(["a"], {}), None, 1, seed=0)
