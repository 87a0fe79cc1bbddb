"""The run's noise in every report: computed from seeded synthetic block series, kept
through JSON, absent (and harmless) in older reports, written by every renderer."""

import json

import numpy as np
import pytest

from perfgate.judge.noise import noise_levels
from perfgate.report.html import render_html
from perfgate.report.json import dumps, loads
from perfgate.report.markdown import render_markdown
from perfgate.report.text import render_text
from perfgate.measurements import Series
from report_samples import passed_run


def series(machine: np.ndarray, *, jitter: float = 0.05, calls: int = 50, seed: int = 0) -> Series:
    """Block pairs of ``calls`` calls each; pair i runs while the machine is ``machine[i]``
    times slower (both models alike), with lognormal call-to-call jitter."""
    rng = np.random.default_rng(seed)

    def blocks():
        return tuple((1e5 * factor * rng.lognormal(0.0, jitter, calls)).astype(np.int64) for factor in machine)

    pairs = len(machine)
    return Series(batch_size=1, calls_per_block=calls, batches=100, reference=blocks(), candidate=blocks(),
                  starts=(0,) * pairs, first=("reference",) * pairs, warmup={})  # fmt: skip


def test_a_quiet_machine_has_little_noise_and_no_drift():
    (noise,) = noise_levels((series(np.ones(40)),))
    # a median of 50 calls with 5 % jitter moves by about 5 % * sqrt(pi/2 / 50) = 0.9 %
    for side in ("reference", "candidate"):
        assert noise.block_spread[side] == pytest.approx(0.009, abs=0.004)
        assert noise.drift[side] < 0.005
    assert noise.pair_spread == pytest.approx(0.009 * 2**0.5, abs=0.005)


def test_a_busy_machine_shows_in_the_blocks_and_pairing_removes_most_of_it():
    rng = np.random.default_rng(1)
    machine = np.where(rng.random(40) < 0.5, 2.0, 1.0)  # a neighbour on for about half the pairs: 2x slower then
    (noise,) = noise_levels((series(machine),))
    for side in ("reference", "candidate"):
        assert noise.block_spread[side] > 0.3  # log(2) / 2 ~ 0.35
        assert noise.drift[side] > 0.3
    assert noise.pair_spread < 0.03


def test_too_few_blocks_give_no_numbers():
    (noise,) = noise_levels((series(np.ones(2)),))
    assert noise.pair_spread is None and noise.block_spread == {"reference": None, "candidate": None}
    assert noise.drift == {"reference": None, "candidate": None}


def test_every_report_carries_and_writes_its_noise(tmp_path):
    report = passed_run(tmp_path)
    assert [noise.batch_size for noise in report.noise] == [1, 4]
    assert report.noise[0].block_spread["reference"] is not None
    assert loads(dumps(report)).noise == report.noise
    assert "noise: batch 1: block medians vary by" in render_text(report)
    assert "Noise: batch 1: block medians vary by" in render_markdown(report)
    assert "Noise: batch 1: block medians vary by" in render_html(report)


def test_a_report_written_before_noise_was_kept_still_reads(tmp_path):
    data = json.loads(dumps(passed_run(tmp_path)))
    del data["noise"]
    data["schema_version"] = 4
    old = loads(json.dumps(data))
    assert old.noise == ()
    assert "noise:" not in render_text(old) and "Noise:" not in render_markdown(old)
