"""Build the proxy models selectgym makes itself: `selectgym model pretrain` pretrains `mini`.

Example: `selectgym model pretrain` builds the default `mini` into the cache (`load_model("mini")` then finds
it); `selectgym model pretrain --out mini-model --steps 300` writes a variant to a folder that `--model
mini-model` loads. The build is offline (reasoning-gym problems, a BPE trained on them) and the same seed
gives the same weights.
"""

from __future__ import annotations

import argparse

from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selectgym.proxies.mini import MiniConfig

    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    pre = sub.add_parser("pretrain", help="pretrain the mini proxy on reasoning-gym problems (minutes on CPU)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flag(pre)
    pre.add_argument("--out", default=None, help="output folder (default: the cache, where load_model('mini') "
                     "looks when the settings are the defaults)")
    pre.add_argument("--threads", type=int, default=1, help="CPU threads for training (with 1 every run gives the "
                     "same weights, and it is the fastest on a busy 2-core machine)")
    pre.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    pre.set_defaults(_run=run_pretrain, _fields=add_dataclass_arguments(pre, MiniConfig))


def run(args: argparse.Namespace) -> int:  # pragma: no cover - argparse always dispatches to an action
    return args._run(args)


def run_pretrain(args: argparse.Namespace) -> int:
    from selectgym.proxies.mini import MiniConfig, build_mini, build_report, mini_dir

    cfg = dataclass_from_args(MiniConfig, args, args._fields)
    if args.out:
        path = build_mini(args.out, cfg, progress=args.progress, threads=args.threads)
    else:
        path = mini_dir(cfg, progress=args.progress, threads=args.threads)
    report = build_report(path)
    curve = report["curve"]
    print(f"mini ({report['parameters']:,} parameters, {report['examples']:,} training examples) in {path}")
    print(f"reply loss {curve[0]['reply_loss']:.3f} (step {curve[0]['step']}) -> {curve[-1]['reply_loss']:.3f} "
          f"(step {curve[-1]['step']}); built in {report['seconds']['total']:.0f} s")
    return 0
