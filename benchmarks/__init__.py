"""optaxswap benchmarks: ``python -m benchmarks [--quick]``."""
