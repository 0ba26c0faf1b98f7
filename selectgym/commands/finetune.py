"""Fine-tune a model on a selection with LoRA (SFT, DPO or GRPO via TRL), optionally re-selecting as it trains.

Examples: `selectgym finetune --method sft --data selected.jsonl --model tiny --eval suite/validation.jsonl`;
`selectgym finetune --method grpo --data suite/verifiable.jsonl --max-steps 20 --batch-size 8`;
`selectgym finetune --config configs/finetune_sft.yaml --data selected.jsonl --merge`. Prints the final
metrics and where the adapter (and with --merge the merged model) went.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args
from selectgym.errors import SelectgymError
from selectgym.finetune.config import FinetuneConfig

#: config fields that get a short flag of their own instead of the generated one
OWN_FLAGS = {"output_dir": "out"}
#: YAML keys of older versions -> today's (refused with a message naming the new one)
RENAMED = {"reward": "completion_reward"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    parser.add_argument("--data", default=None, help="the selection to train on (a pool file: .jsonl, .json, .parquet)")
    parser.add_argument("--eval", default=None, help="target set to evaluate on after training (verifiable format "
                        "with reference answers, e.g. suite/validation.jsonl)")
    parser.add_argument("--out", dest="output_dir", default=FinetuneConfig.output_dir,
                        help="output folder (adapter, checkpoints, metrics.json)")
    parser.add_argument("--merge", action="store_true", help="also merge the adapter into the base model and save "
                        "the full model to <out>/merged")
    parser.add_argument("--overwrite", action="store_true", help="write into an --out folder (or <out>/merged) "
                        "selectgym did not make (its files of the same names are replaced, the others kept)")
    parser.set_defaults(_finetune_fields=add_dataclass_arguments(parser, FinetuneConfig, skip=tuple(OWN_FLAGS)),
                        _renamed=RENAMED)


def claim_outputs(cfg: FinetuneConfig, args: argparse.Namespace) -> None:
    """Refuse an --out that is, or would replace, an input (the data, the target set, the model being fine-tuned),
    and a folder of the user's unless --overwrite."""
    from selectgym.finetune.train import ADAPTER, SIDECAR
    from selectgym.outputs import claimed_folder

    model = cfg.model if Path(cfg.model).exists() else None
    return claimed_folder(cfg.output_dir, {"--data": args.data, "--eval": args.eval, "--model": model}, args.overwrite,
                 made_by="selectgym finetune", own_files=[f"{ADAPTER}/{SIDECAR}"],
                 subfolders=[ADAPTER, *(["merged"] if args.merge else [])])


def run(args: argparse.Namespace) -> int:
    from selectgym.finetune.train import merge_and_export, train

    if not args.data:
        raise SelectgymError("finetune needs --data: the pool file to train on (e.g. the output of selectgym select)")
    for flag, path in (("--data", args.data), ("--eval", args.eval)):
        if path is not None and not Path(path).is_file():
            raise SelectgymError(f"{flag} {path}: no such file")
    names = [*args._finetune_fields, *OWN_FLAGS]
    cfg = dataclass_from_args(FinetuneConfig, args, names)
    from selectgym.data import load_pool
    from selectgym.data.checks import degenerate_report, log_report

    data, target = load_pool(args.data), load_pool(args.eval) if args.eval else None  # read once, used twice
    # chosen == rejected pairs (DPO loss ln 2), empty replies, ...: named before any model loads
    log_report(degenerate_report(data, target))
    with claim_outputs(cfg, args):
        result = train(cfg, data, eval_pool=target)
    shown = {k: v for k, v in result.metrics.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=2, default=str))
    print(f"adapter: {result.adapter_dir}")
    if result.selections:
        print(f"selections: {len(result.selections)} (their ids are in {Path(cfg.output_dir) / 'metrics.json'})")
    if args.merge:
        merged = merge_and_export(result.adapter_dir, Path(cfg.output_dir) / "merged")
        print(f"merged model: {merged}")
    return 0
