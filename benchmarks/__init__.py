"""The benchmarks: scripts grouped by what they measure, each run as a module from the root of a checkout.

- ``speed/``: seconds and memory (per-example gradients, the selection envs, selection at 10^5-10^6 examples);
- ``quality/``: what the picks are worth before the target is trained (the useful share per selector, the transfer
  policy on families and kinds of pool it never saw, what the headline's methods picked, the proxy's testbed);
- ``accuracy/``: the target fine-tuned on the picks and scored (the headline, with its configs beside it, on
  several builds of ``mini``; the transfer policies downstream; the target's sensitivity; ``selectgym demo``).

``envelope`` is what every results file records around its figures (the command, the machine, the load, the
paired tests) and how it is written; ``harness`` holds what several scripts share. Results are committed under
``results/``, each with the command that makes it again, e.g. ``.venv/bin/python -m benchmarks.quality.transfer``.
"""
