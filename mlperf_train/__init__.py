"""mlperf-train: train MLPerf reference models to their quality target, timed by the rules."""

__version__ = "0.1.0"
