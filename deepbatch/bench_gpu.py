"""Deprecated: the GPU benchmark and its installer are ``benchmarks/bench_gpu.py`` of the source repository (``make
bench-gpu``). Importing this name loads that script from a checkout, with a ``DeprecationWarning``."""

import sys
import warnings

from .source_tree import load_benchmark

warnings.warn("deepbatch.bench_gpu is deprecated: the GPU benchmark is benchmarks/bench_gpu.py of the repository "
              "(run it with make bench-gpu)", DeprecationWarning, stacklevel=2)
_benchmark = load_benchmark("bench_gpu")
if __name__ == "__main__":
    sys.exit(_benchmark.main())
sys.modules[__name__] = _benchmark
