"""Deprecated: the detector benchmark is ``benchmarks/bench_detector.py`` of the source repository (``deepbatch
bench``, ``make bench``). Importing this name loads that script from a checkout, with a ``DeprecationWarning``."""

import sys
import warnings

from .source_tree import load_benchmark

warnings.warn("deepbatch.bench is deprecated: the benchmark is benchmarks/bench_detector.py of the repository "
              "(run it with deepbatch bench or make bench)", DeprecationWarning, stacklevel=2)
_benchmark = load_benchmark("bench_detector")
if __name__ == "__main__":
    sys.exit(_benchmark.main())
sys.modules[__name__] = _benchmark
