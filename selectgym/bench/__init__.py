"""The benchmark harness: methods x budgets x seeds on the same pool, proxy and target."""
