"""``BenchConfig``: a benchmark's pools, proxy, target, methods, budgets, seeds, and how hard to train.

Kept apart from the harness so the CLI can build its flags without importing the training stack.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from selectgym.bench.report import FULL
from selectgym.budget import check_budget
from selectgym.errors import SelectgymError
from selectgym.registry import parse_options


class _FeaturePools(Mapping):
    """Pool kind -> the features computed on that pool file (the suite's three pools share example ids).

    Read from ``proxies.features.FEATURES`` each time, so a feature registered later is computed too; imported
    only when read, so the CLI builds its flags without the training stack.
    """

    def __getitem__(self, kind: str) -> list[str]:
        from selectgym.proxies.features import POOL_KINDS, features_for_pool

        if kind not in POOL_KINDS:
            raise KeyError(kind)
        return features_for_pool(kind)

    def __iter__(self) -> Iterator[str]:
        from selectgym.proxies.features import POOL_KINDS

        return iter(POOL_KINDS)

    def __len__(self) -> int:
        return len(list(iter(self)))


#: which pool file each feature is computed on: ``features_for_pool`` of every pool kind
FEATURE_POOLS: Mapping[str, list[str]] = _FeaturePools()
#: the suite pool each fine-tuning objective trains the target on (the suite's pools share example ids)
OBJECTIVE_POOLS = {"sft": "sft", "dpo": "preference", "grpo": "verifiable"}


def feature_sources(objective: str) -> dict[str, str]:
    """Feature pool kind -> the pool file its features are computed on. With ``sft`` each kind reads its own
    pool; with ``dpo`` or ``grpo`` the selectors see only the pool the target trains on: its own kind's features
    and the SFT ones (gradients, loss, length... of its prompts and responses) come from it, the third kind
    cannot be had."""
    if objective == "sft":
        return {"sft": "sft", "preference": "preference", "verifiable": "verifiable"}
    own = OBJECTIVE_POOLS[objective]
    return {"sft": own, own: own}


#: AgentConfig settings a benchmark sets itself
BENCH_AGENT_KEYS = {"algo", "timesteps", "seed", "budget"}


def method_names() -> list[str]:
    """Every method a benchmark runs: the registered selectors and ``full`` (training on the whole pool)."""
    from selectgym.selectors import SELECTORS  # names only: no selector module is imported

    return [*SELECTORS, FULL]


#: how a method names its selector's options, for the errors
OPTIONS_LIKE = "less:gradient_type=sgd,loss_weight=1"
#: the comma before the next KEY= of a method's options
NEXT_OPTION = re.compile(r",(?=\s*[\w-]+\s*=)")


def method_options(method: str) -> tuple[str, dict[str, Any]]:
    """A benchmark method's selector name and options: ``less`` (none), ``gradalign:sim`` (a GradAlign mode) or
    ``less:gradient_type=sgd,loss_weight=1`` (options as ``selectgym select --option`` takes them, comma-separated),
    so a variant of a selector is benchmarked under the name that says what it is."""
    name, colon, rest = method.partition(":")
    if colon and not rest.strip():
        raise SelectgymError(f"method {method!r} ends in ':' with nothing after it: drop the ':', or name options "
                             f"as {OPTIONS_LIKE}")
    if not rest:
        return name, {}
    if "=" not in rest:
        return name, {"mode": rest}
    # split only at the commas that start a KEY=, so a list value (like ids=[a, b]) stays whole
    return name, parse_options(NEXT_OPTION.split(rest), what=f"method {method!r}", like=OPTIONS_LIKE)


def check_method_options(method: str) -> None:
    """A method's options are ones its selector takes, with values it accepts: a one-line error before any work.
    ``full`` and ``policy`` take none here (a policy's come from policy_path and agent), and the subtask options
    come from balance_subtasks."""
    from selectgym.selectors import SELECTORS, get_selector

    name, options = method_options(method)
    if not options:
        return
    if name in (FULL, "policy"):
        raise SelectgymError(f"method {method!r}: {name} takes no options in a benchmark (a policy's come from "
                             "policy_path and agent); drop the part after ':'")
    if "=" not in method and "mode" not in SELECTORS.options(name):
        raise SelectgymError(f"method {method!r}: {name} has no modes; give its options as KEY=VALUE after the ':' "
                             f"(like {OPTIONS_LIKE})")
    taken = sorted({"subtasks", "balance"} & set(options))
    if taken:
        raise SelectgymError(f"method {method!r}: {', '.join(taken)} come(s) from balance_subtasks; drop them from "
                             "the method")
    get_selector(name, **options)


def method_needs(method: str) -> list[str]:
    """The feature pools ``method`` reads (its selector's ``needs``; their cost is charged to it); GradAlign's
    modes (``gradalign:sim``, ...) share ``gradalign``'s."""
    return _declared(method, "needs")


def method_reads(method: str) -> list[str]:
    """The on-demand features ``method``'s selector reads (``Selector.reads``), computed only when it runs."""
    return _declared(method, "reads")


def _declared(method: str, attribute: str) -> list[str]:
    """What ``method``'s selector class declares in ``attribute`` (nothing for ``full``, which reads no features)."""
    from selectgym.selectors import selector_class

    name = method.partition(":")[0]
    return [] if name == FULL else list(getattr(selector_class(name), attribute))


DEFAULT_METHODS = ["policy", "nice", "less", "gradalign:sim", "gradalign:dot", "gradalign:align",
                   "gradalign:learnalign", "gradalign:accgreedy", "gradalign:rand", "dpo_gap", "random", "full"]


@dataclass
class BenchConfig:
    """A benchmark: pools, proxy, target, methods, budgets, seeds, and how hard to train."""

    out: str = field(default="bench-out", metadata={"help": "output folder (runs.json, table.md, plots)"})
    suite_dir: str | None = field(default=None, metadata={
        "help": "folder with sft/preference/verifiable/validation.jsonl; built from the suite settings if unset"})
    suite_seed: int = field(default=0, metadata={"help": "seed of the built-in suite"})
    suite_size: int = field(default=400, metadata={"help": "examples in the built-in pool"})
    validation_size: int = field(default=48, metadata={"help": "target problems held out for evaluation"})
    noisy_answer_share: float = field(default=0.0, metadata={
        "help": "share of the built-in verifiable pool given a wrong reference answer, so the verifier's reward on "
                "it is noise (GRPO's regime); the table then shows the share of such prompts each method picked"})
    pair_defect_share: float = field(default=0.0, metadata={
        "help": "share of the built-in preference pool made defective, half swapped, half near-identical (DPO's "
                "regime); the table then shows the share of such pairs each method picked"})
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS), metadata={
        "help": "methods; 'gradalign:MODE' picks a GradAlign mode, 'NAME:KEY=VALUE,...' passes selector "
                "options (like 'less:gradient_type=sgd,loss_weight=1', the headline's best fixed rule)"})
    budgets: list[float] = field(default_factory=lambda: [0.05], metadata={
        "help": "budgets: shares of the pool in (0, 1) or whole counts"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds (selection + training)"})
    proxy: str = field(default="tiny", metadata={"help": "proxy model for features"})
    target: str = field(default="tiny", metadata={"help": "model fine-tuned on each selection"})
    proj_dim: int = field(default=2048, metadata={"help": "projected gradient dimension of the proxy features"})
    proxy_warmup_steps: int = field(default=20, metadata={"help": "LoRA warm-up steps of the proxy (Adam state)"})
    rollouts: int = field(default=4, metadata={"help": "samples per prompt for NICE / GradAlign"})
    max_new_tokens: int = field(default=8, metadata={"help": "generation length for rollouts and evaluation"})
    agent_timesteps: int = field(default=20_000, metadata={"help": "env steps to train the learned policy"})
    agent_algo: str = field(default="maskable_ppo", metadata={"help": "ppo, maskable_ppo, dqn or a2c"})
    ft_epochs: float = field(default=3.0, metadata={"help": "fine-tuning epochs over each selection"})
    ft_max_steps: int = field(default=-1, metadata={
        "help": "fine-tuning steps per selection (-1: epochs decide); full data always trains full_epochs"})
    ft_lr: float = field(default=1e-3, metadata={"help": "fine-tuning learning rate"})
    ft_batch_size: int = field(default=8, metadata={"help": "fine-tuning batch size"})
    full_epochs: float = field(default=1.0, metadata={"help": "epochs for the full-data baseline"})
    policy_path: str | None = field(default=None, metadata={
        "help": "a saved policy for the method 'policy' ('{seed}' is replaced by the seed; 'default' is the policy "
                "that ships with selectgym) instead of training one per seed on this pool; its training cost is not "
                "charged"})
    agent: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "settings of the agent trained here for the method 'policy', as in `selectgym train-agent` (e.g. "
                "'{env_id: selectgym/ExampleSelect-v0, alignment_target: unit_mean}'); agent_algo, "
                "agent_timesteps, the seed and the budget come from the benchmark"})
    balance_subtasks: str | None = field(default=None, metadata={
        "help": "share the budget of policy, less and nice among the target's subtasks, named by this field of each "
                "target example (e.g. task), as `selectgym select --balance-subtasks` does"})
    split_target: bool = field(default=False, metadata={
        "help": "align the features with one half of the target set and score on the other (alternating within "
                "each task), so no selector sees the problems it is scored on"})
    objective: str = field(default="sft", metadata={
        "help": "how the target trains on each selection: sft (on the sft pool), dpo (the preference pool, TRL's "
                "DPOTrainer) or grpo (the verifiable pool, TRL's GRPOTrainer rewarded by the pool's verifier); "
                "with dpo or grpo the selectors' features are computed on that pool too"})

    def _check_objective(self) -> None:
        if self.objective not in OBJECTIVE_POOLS:
            raise SelectgymError(f"--objective {self.objective!r} is unknown; choose from {', '.join(OBJECTIVE_POOLS)}")
        if self.objective == "grpo" and self.ft_batch_size % self.rollouts:
            raise SelectgymError(f"objective grpo trains on groups of --rollouts {self.rollouts} completions: use an "
                                 f"--ft-batch-size that is a multiple of it (got {self.ft_batch_size})")
        wrong = _objective_errors(self)
        if wrong:
            raise SelectgymError(f"objective {self.objective} trains on the {OBJECTIVE_POOLS[self.objective]} pool, "
                                 f"which cannot give what {'; '.join(wrong)}: drop those methods, or use objective "
                                 "sft")

    def __post_init__(self) -> None:
        if not self.methods or not self.seeds or not self.budgets:
            raise SelectgymError("a benchmark needs at least one method, one seed and one budget")
        unknown = [m for m in self.methods if m.partition(":")[0] not in method_names()]
        if unknown:
            raise SelectgymError(f"unknown method(s) {unknown}; choose from {', '.join(method_names())} "
                                 "(GradAlign modes as gradalign:sim|dot|align|learnalign|accgreedy|rand, selector "
                                 f"options as {OPTIONS_LIKE})")
        for method in self.methods:
            check_method_options(method)
        for b in self.budgets:
            check_budget(b)
        for name in ("suite_size", "validation_size", "proj_dim", "rollouts", "max_new_tokens", "agent_timesteps",
                     "ft_batch_size"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        self._check_objective()
        for name in ("noisy_answer_share", "pair_defect_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SelectgymError(f"--{name.replace('_', '-')} must lie in [0, 1], got {value}")
            if value and self.suite_dir:
                raise SelectgymError(f"--{name.replace('_', '-')} puts defects in the built-in suite, but --suite-dir "
                                     f"{self.suite_dir} brings its own pools: drop one of them")
        if self.proxy_warmup_steps < 0:
            raise SelectgymError(f"--proxy-warmup-steps must be >= 0 (0: no warm-up), got {self.proxy_warmup_steps}")
        for name in ("ft_lr", "ft_epochs", "full_epochs"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise SelectgymError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if self.ft_max_steps < 1 and self.ft_max_steps != -1:
            raise SelectgymError(f"--ft-max-steps must be >= 1, or -1 to let ft_epochs decide; got {self.ft_max_steps}")
        if "policy" in [m.partition(":")[0] for m in self.methods] and not self.policy_path:
            from selectgym.agents.config import ALGORITHMS  # only when a policy is trained here

            if self.agent_algo not in ALGORITHMS:
                raise SelectgymError(f"--agent-algo {self.agent_algo!r} is unknown; choose from "
                                     f"{', '.join(ALGORITHMS)}")
        taken = sorted(set(self.agent) & BENCH_AGENT_KEYS)
        if taken:
            raise SelectgymError(f"agent settings {taken} come from the benchmark (agent_algo, agent_timesteps, "
                                 "seeds, budgets): set those instead")
        if not self.agent:
            return
        from selectgym.agents.config import AgentConfig  # only when asked: the CLI builds flags without it

        unknown = sorted(set(self.agent) - {f.name for f in dataclasses.fields(AgentConfig)})
        if unknown:
            raise SelectgymError(f"agent has no setting(s) {unknown}; see `selectgym train-agent --help`")


def _objective_errors(cfg: BenchConfig) -> list[str]:
    """Methods whose features the objective's pool cannot give (a policy reads whichever it is given)."""
    from selectgym.selectors import selector_class

    sources = feature_sources(cfg.objective)
    wrong = []
    for method in cfg.methods:
        name = method.partition(":")[0]
        if name == FULL or selector_class(name).needs_any:
            continue
        missing = [k for k in method_needs(method) if k not in sources]
        if missing:
            wrong.append(f"{method} reads {'/'.join(missing)} features")
    return wrong


def changed_settings(saved: dict[str, Any], cfg: BenchConfig) -> list[str]:
    """The settings in which ``cfg`` differs from a saved config; a setting newer than the save counts as its
    default, so results saved before it existed stay usable."""
    defaults = asdict(BenchConfig())
    return sorted(k for k, v in asdict(cfg).items() if saved.get(k, defaults[k]) != v)
