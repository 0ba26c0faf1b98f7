"""The proxy models selectgym makes itself: `model info` describes one, `model pretrain` builds a `mini`.

The default `mini` ships with the package: `selectgym model info mini` prints where it lies and its weights
digest. `selectgym model pretrain --seed 1` builds a variant into the cache (`selectgym model pretrain` with the
default settings rebuilds the shipped model on this machine and says whether its weights came out the same);
`selectgym model pretrain --out mini-model --steps 300` writes a variant to a folder that `--model mini-model`
loads. The build is offline (reasoning-gym problems, a BPE trained on them).
"""

from __future__ import annotations

import argparse

from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selectgym.proxies.mini import MiniConfig

    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    pre = sub.add_parser("pretrain", help="pretrain the mini proxy on reasoning-gym problems (minutes on CPU)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flag(pre)
    pre.add_argument("--out", default=None, help="output folder (default: the cache, where load_model('mini') "
                     "finds a variant's build; the default build ships with the package)")
    pre.add_argument("--overwrite", action="store_true", help="write into an --out folder selectgym did not make "
                     "(its files of the same names are replaced, the others kept)")
    pre.add_argument("--threads", type=positive_int, default=1, help="CPU threads for training (with 1 every run "
                     "gives the same weights, and it is the fastest on a busy 2-core machine)")
    pre.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    pre.set_defaults(_run=run_pretrain, _fields=add_dataclass_arguments(pre, MiniConfig))
    info = sub.add_parser("info", help="where a model lies, its size and its weights digest",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    info.add_argument("model", nargs="?", default="mini", help="mini, tiny, smollm2, a model folder or a .gguf file")
    info.set_defaults(_run=run_info)


def run(args: argparse.Namespace) -> int:  # pragma: no cover - argparse always dispatches to an action
    return args._run(args)


def run_pretrain(args: argparse.Namespace) -> int:
    from selectgym.outputs import claim_folder
    from selectgym.proxies.mini import SHIPPED_DIGEST, MiniConfig, build_mini, build_report, cached_build, is_shipped
    from selectgym.proxies.models import weights_digest

    cfg = dataclass_from_args(MiniConfig, args, args._fields)
    if args.out:
        claim_folder(args.out, overwrite=args.overwrite, made_by="selectgym model pretrain")
        path = build_mini(args.out, cfg, progress=args.progress, threads=args.threads)
    else:
        path = cached_build(cfg, progress=args.progress, threads=args.threads)
    report = build_report(path)
    curve = report["curve"]
    print(f"mini ({report['parameters']:,} parameters, {report['examples']:,} training examples) in {path}")
    print(f"reply loss {curve[0]['reply_loss']:.3f} (step {curve[0]['step']}) -> {curve[-1]['reply_loss']:.3f} "
          f"(step {curve[-1]['step']}); built in {report['seconds']['total']:.0f} s")
    digest = weights_digest(str(path))
    if is_shipped(cfg):
        same = "the same weights as" if digest == SHIPPED_DIGEST else "other weights than (this CPU's floating point)"
        print(f"weights digest {digest}: {same} the shipped mini ({SHIPPED_DIGEST}), which load_model('mini') uses")
    else:
        print(f"weights digest {digest}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from selectgym.proxies.mini import MINI_NAME, SHIPPED_DIR, mini_dir
    from selectgym.proxies.models import describe_model

    info = describe_model(args.model)
    for key, value in info.items():
        print(f"{key:>10}: {value}")
    if args.model == MINI_NAME and mini_dir() == SHIPPED_DIR:
        print("   shipped: yes (inside the package; every machine loads these same files)")
    return 0
