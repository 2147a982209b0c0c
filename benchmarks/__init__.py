"""reconcile's benchmarks (issue 6): `python -m benchmarks [--quick]`, each figure beside its baseline."""
