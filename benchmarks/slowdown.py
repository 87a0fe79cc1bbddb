"""A backend for benchmarks: the ONNX Runtime model, made exactly `factor` times slower.

Each call runs the real model, then busy-waits until `factor` times its own duration has
passed, so the slowdown scales with the call (noise included), like more compute would.
The factor comes from PERFGATE_BENCH_SLOWDOWN (the worker inherits the environment).
The wrapper itself costs a little (a few % on a 7 us call), so decision_quality.py
calibrates the factor until the measured slowdown is the one it means to inject.
Use it as `--candidate-backend slowdown:SlowedOnnxRuntime` with benchmarks/ on sys.path.
"""

from __future__ import annotations

import os
import time
from typing import Any

from perfgate.backends.onnxruntime import OnnxRuntimeBackend


class SlowedOnnxRuntime(OnnxRuntimeBackend):
    name = "slowed-onnxruntime"

    def load(self, path: str) -> None:
        super().load(path)
        self._factor = float(os.environ.get("PERFGATE_BENCH_SLOWDOWN", "1"))

    def run(self, prepared: Any) -> Any:
        clock = time.perf_counter_ns
        began = clock()
        outputs = self._session.run(self._output_names, prepared)
        until = began + (clock() - began) * self._factor
        while clock() < until:
            pass
        return outputs
