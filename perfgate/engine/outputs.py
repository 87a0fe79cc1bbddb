"""Do the two models give the same answers? Both run the same batches outside the timed
region (a seeded sample of the first batch size), and each output is reduced to how far
the candidate's values are from the reference's (see ``perfgate.metrics.outputs`` for
the checks on them).

Outputs are paired by name where both models name them alike, else by position (an
ONNX model's "scores" and a TorchScript module's single tensor); a different number of
outputs, or different shapes, is a usage error. A row is one slice along an output's
first axis where that axis is the batch, else the whole output of a batch. A reference
whose outputs hold NaN or Inf is an error: there is nothing to judge the candidate
against. A candidate's NaN or Inf is counted here and fails its check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from perfgate.data.dataset import RowSelection
from perfgate.errors import PerfgateRuntimeError, UsageError, option
from perfgate.metrics.outputs import non_finite_reason
from perfgate.measurements import OutputDifference, OutputsCompared
from perfgate.results import SIDES
from perfgate.specs import DataSpec, MeasuringSpec
from perfgate.worker.process import Worker
from perfgate.worker.protocol import RunOutputs, Timeout

BYTES_PER_CALL = 32 * 2**20  # a call's outputs, per model, that cross the pipe at a time
MAX_BATCHES_PER_CALL = 64
# Comparing answers is untimed but on the way to the verdict: past this, and once this many
# batches are compared, the rest of --output-rows is left out (a 25 ms model's 256 rows
# would take 13 s of two models' calls, where the verdict itself takes a second).
OUTPUTS_SECONDS = 1.0
MIN_OUTPUT_BATCHES = 8
SKIP = option("output_rows", 0)


def compare_outputs(
    workers: Mapping[str, Worker],
    batches: Mapping[int, int],
    data: DataSpec,
    measuring: MeasuringSpec,
    selection: RowSelection,
    paths: Mapping[str, str],
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> OutputsCompared | None:
    """Both models' outputs on up to ``data.output_rows`` rows of the first batch size
    (fewer where that would take over OUTPUTS_SECONDS, never under MIN_OUTPUT_BATCHES
    batches), compared; None when ``output_rows`` is 0. Both models must have read the
    same rows: with data drift the caller compares none (different rows, different answers;
    ``CompareConfig.compares_outputs``)."""
    if not data.output_rows:
        return None
    batch_size, total = measuring.batch_sizes[0], batches[measuring.batch_sizes[0]]
    chosen = sample_batches(total, math.ceil(data.output_rows / batch_size), data.seed)
    rows = tuple(_file_row(selection, index * batch_size + offset) for index in chosen for offset in range(batch_size))
    say(f"comparing outputs on {len(rows)} rows (batch size {batch_size})")
    comparison = _Comparison(paths, batch_size)
    done, per_call = 0, 1  # one batch first: its outputs' size sets how many go in a call
    began = clock()
    while done < len(chosen):
        if done >= MIN_OUTPUT_BATCHES and clock() - began > OUTPUTS_SECONDS:
            say(f"outputs compared on the first {done * batch_size} of those rows: the rest would take longer than the verdict")
            comparison.cut = f"compared on {done * batch_size} of the {len(rows)} rows asked for: the rest would have taken over {OUTPUTS_SECONDS:g} s"
            chosen, rows = chosen[:done], rows[: done * batch_size]
            break
        group = tuple(chosen[done : done + per_call])
        # the models' first calls: nothing is known of their speed yet, so --call-timeout bounds each
        timeout = Timeout((measuring.call_timeout_s * len(group),), by_call_timeout=True)
        called = clock()
        answers = {side: workers[side].call(RunOutputs(batch_size, group), timeout=timeout) for side in SIDES}
        per_batch_s = (clock() - called) / len(group)
        for offset, pair in enumerate(zip(answers["reference"], answers["candidate"])):
            first_row = (done + offset) * batch_size
            if not comparison.add(*pair, rows[first_row : first_row + batch_size]):
                return OutputsCompared(batch_size, tuple(chosen), rows, data.seed, total, (), comparison.note(), data.allow_nonfinite)
        done += len(group)
        # a call's batches fit in the pipe, and in a quarter of the time allowed
        per_call = min(_batches_per_call(answers), max(1, int(OUTPUTS_SECONDS / 4 / max(per_batch_s, 1e-9))))
    compared = tuple(difference.result() for difference in comparison.differences.values())
    for difference in compared:
        if difference.non_finite["reference"] and not data.allow_nonfinite:
            raise PerfgateRuntimeError(
                f"{non_finite_reason('reference', difference, paths['reference'])}: a broken reference leaves nothing "
                f"to judge the candidate against (NaN in the input rows? skip comparing outputs with {SKIP})"
            )
    return OutputsCompared(batch_size, tuple(chosen), rows, data.seed, total, compared, comparison.note(), data.allow_nonfinite)


def _batches_per_call(answers: Mapping[str, list[dict[str, np.ndarray]]]) -> int:
    largest = max(sum(np.asarray(array).nbytes for array in outputs.values()) for side in SIDES for outputs in answers[side])
    return int(min(MAX_BATCHES_PER_CALL, max(1, BYTES_PER_CALL // max(largest, 1))))


class _Comparison:
    """The output pairs of both models, accumulated batch by batch."""

    def __init__(self, paths: Mapping[str, str], batch_size: int) -> None:
        self.paths, self.batch_size = paths, batch_size
        self.pairs: list[tuple[str, str]] | None = None
        self.silent: list[str] = []  # the models whose backend returns no outputs
        self.differences: dict[tuple[str, str], _Difference] = {}
        self.skipped: dict[str, str] = {}  # outputs that are not numbers: their dtypes
        self.cut = ""  # why fewer rows than asked for were compared

    def add(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], rows: Sequence[int]) -> bool:
        """Add one batch; False when there is nothing to compare (a backend returns no outputs)."""
        if self.pairs is None:
            self.silent = [side for side, outputs in zip(SIDES, (reference, candidate)) if not outputs]
            if self.silent:
                return False
            self.pairs = pair_outputs(reference, candidate, self.paths)
        for names in self.pairs:
            if names[0] not in reference or names[1] not in candidate:
                raise UsageError(f"output {names[0]!r} or {names[1]!r} is missing from the batch from row {rows[0]}; "
                                 f"the models' outputs must be the same for every batch (or skip comparing them with {SKIP})")  # fmt: skip
            arrays = (np.asarray(reference[names[0]]), np.asarray(candidate[names[1]]))
            if any(array.dtype.kind not in "biuf" for array in arrays):
                self.skipped[f"{names[0]}/{names[1]}"] = "/".join(str(array.dtype) for array in arrays)
                continue
            _check_shapes(names, arrays, self.paths, rows[0])
            self.differences.setdefault(names, _Difference(*names)).add(*arrays, self.batch_size, rows)
        return True

    def note(self) -> str:
        notes = [self._skipped_note(), self.cut]
        return "; ".join(note for note in notes if note)

    def _skipped_note(self) -> str:
        if self.silent:
            return f"the {' and the '.join(self.silent)}'s backend returns no outputs"
        return "; ".join(f"output {label} not compared: its values are not numbers ({dtypes})" for label, dtypes in self.skipped.items())


def sample_batches(total: int, wanted: int, seed: int) -> list[int]:
    """``wanted`` distinct batch indices of ``total`` (all of them if fewer), drawn with ``seed``, in order."""
    if wanted >= total:
        return list(range(total))
    return sorted(int(index) for index in np.random.default_rng(seed).choice(total, size=wanted, replace=False))


def pair_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], paths: Mapping[str, str]) -> list[tuple[str, str]]:
    """(reference name, candidate name) of each output: by name where both name them alike, else by position."""
    if set(reference) == set(candidate):
        return [(name, name) for name in reference]
    if len(reference) == len(candidate):
        return list(zip(reference, candidate))
    raise UsageError(
        f"the models return different numbers of outputs: reference {paths['reference']!r} {len(reference)} "
        f"({', '.join(reference)}), candidate {paths['candidate']!r} {len(candidate)} ({', '.join(candidate)}); "
        f"their answers cannot be compared (skip comparing outputs with {SKIP})"
    )


def _check_shapes(names: tuple[str, str], arrays: tuple[np.ndarray, np.ndarray], paths: Mapping[str, str], row: int) -> None:
    if arrays[0].shape != arrays[1].shape:
        raise UsageError(
            f"output shapes differ: reference {paths['reference']!r} output {names[0]!r} is {list(arrays[0].shape)}, "
            f"candidate {paths['candidate']!r} output {names[1]!r} is {list(arrays[1].shape)} (on the batch from row {row}); "
            f"their answers cannot be compared (skip comparing outputs with {SKIP})"
        )


def _file_row(selection: RowSelection, position: int) -> int:
    return position if selection.indices is None else int(selection.indices[position])


@dataclass
class _Difference:
    """One output pair, accumulated batch by batch."""

    reference_output: str
    candidate_output: str
    row_shape: tuple[int | None, ...] | None = None
    rows: int = 0
    values: int = 0
    non_finite: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    nan: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    first_non_finite_row: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(SIDES))
    max_abs: tuple[float, int] | None = None  # (value, row)
    abs_sum: float = 0.0
    finite_values: int = 0
    cosines: list[np.ndarray] = field(default_factory=list)
    cosine_rows: list[np.ndarray] = field(default_factory=list)
    agreeing: int = 0
    positions: int = 0
    has_classes: bool = True

    def add(self, reference: np.ndarray, candidate: np.ndarray, batch_size: int, rows: Sequence[int]) -> None:
        if not (reference.ndim >= 1 and reference.shape[0] == batch_size):
            reference, candidate, rows = reference[None], candidate[None], rows[:1]  # the batch's output is one row
        self._merge_shape(reference.shape[1:])
        self.rows += len(rows)
        self.values += reference.size
        row_numbers = np.asarray(rows)
        pair = {"reference": reference.astype(np.float64), "candidate": candidate.astype(np.float64)}
        finite = {side: np.isfinite(values) for side, values in pair.items()}
        for side in SIDES:
            bad = ~finite[side]
            self.non_finite[side] += int(bad.sum())
            self.nan[side] += int(np.isnan(pair[side]).sum())
            if self.first_non_finite_row[side] is None and bad.any():
                self.first_non_finite_row[side] = int(row_numbers[bad.reshape(len(rows), -1).any(axis=1)][0])
        both = finite["reference"] & finite["candidate"]
        with np.errstate(invalid="ignore", over="ignore"):
            difference = np.where(both, np.abs(pair["reference"] - pair["candidate"]), 0.0)
        difference = np.minimum(difference, np.finfo(np.float64).max)  # two huge finite values can differ by more
        if both.any():
            flat = difference.reshape(len(rows), -1)
            worst = int(np.argmax(flat.max(axis=1, initial=0.0)))
            if self.max_abs is None or flat[worst].max(initial=0.0) > self.max_abs[0]:
                self.max_abs = (float(flat[worst].max(initial=0.0)), int(row_numbers[worst]))
            self.abs_sum += float(difference.sum())
            self.finite_values += int(both.sum())
        whole = both.reshape(len(rows), -1).all(axis=1)  # rows finite in both: their cosine is defined
        if whole.any():
            self.cosines.append(_cosines(pair["reference"].reshape(len(rows), -1)[whole], pair["candidate"].reshape(len(rows), -1)[whole]))
            self.cosine_rows.append(row_numbers[whole])
        if reference.ndim < 2 or reference.shape[-1] < 2:
            self.has_classes = False
        elif self.has_classes:
            valid = both.all(axis=-1)
            agree = (np.argmax(pair["reference"], axis=-1) == np.argmax(pair["candidate"], axis=-1)) & valid
            self.agreeing += int(agree.sum())
            self.positions += int(valid.sum())

    def _merge_shape(self, shape: tuple[int, ...]) -> None:
        if self.row_shape is None:
            self.row_shape = tuple(shape)
        elif len(self.row_shape) != len(shape):
            self.row_shape = ()
        else:
            self.row_shape = tuple(dim if dim == other else None for dim, other in zip(self.row_shape, shape))

    def result(self) -> OutputDifference:
        cosines = np.concatenate(self.cosines) if self.cosines else np.empty(0)
        rows = np.concatenate(self.cosine_rows) if self.cosine_rows else np.empty(0, dtype=np.int64)
        lowest = int(np.argmin(cosines)) if cosines.size else None
        return OutputDifference(
            reference_output=self.reference_output,
            candidate_output=self.candidate_output,
            row_shape=self.row_shape or (),
            rows=self.rows,
            values=self.values,
            non_finite=dict(self.non_finite),
            nan=dict(self.nan),
            first_non_finite_row=dict(self.first_non_finite_row),
            max_abs_diff=None if self.max_abs is None else self.max_abs[0],
            max_abs_diff_row=None if self.max_abs is None else self.max_abs[1],
            mean_abs_diff=self.abs_sum / self.finite_values if self.finite_values else None,
            cosine=float(cosines.mean()) if cosines.size else None,
            cosine_min=None if lowest is None else float(cosines[lowest]),
            cosine_min_row=None if lowest is None else int(rows[lowest]),
            top1_agreement=self.agreeing / self.positions if self.has_classes and self.positions else None,
            top1_positions=self.positions if self.has_classes else 0,
        )


def _cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Each row's cosine similarity; identical rows (two all-zero rows too) 1, one all-zero row and another 0."""
    scale = np.maximum(np.abs(reference).max(axis=1, initial=0.0), np.abs(candidate).max(axis=1, initial=0.0))
    scale = np.where(scale > 0, scale, 1.0)[:, None]  # so that squaring huge values cannot overflow
    reference, candidate = reference / scale, candidate / scale
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    dots = np.einsum("ij,ij->i", reference, candidate)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    alike = np.all(reference == candidate, axis=1)  # exactly 1, also for two all-zero rows, which rounding would miss
    return np.clip(np.where(alike, 1.0, cosines), -1.0, 1.0)
