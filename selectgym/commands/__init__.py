"""One module per ``selectgym`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
