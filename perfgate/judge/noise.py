"""How noisy a run was, from its own blocks: stored in every report, so that a reader can
tell a quiet machine from a busy one, and see how much of the noise the pairing removed.

Per batch size and model, the spread of the blocks' log-medians (what an unpaired gate
would have to see through) and the drift between blocks beyond the call-to-call spread
(``stats.drift_between_blocks``, the noisy-machine warning's number); per batch size,
the spread of the pairs' log-ratios of medians (what perfgate's paired blocks leave).
"""

from __future__ import annotations

import numpy as np

from perfgate.measurements import Noise, Series
from perfgate.results import SIDES
from perfgate.stats import drift_between_blocks


def noise_levels(series: tuple[Series, ...]) -> tuple[Noise, ...]:
    return tuple(_noise(one) for one in series)


def _noise(series: Series) -> Noise:
    medians = {side: _log_medians(series.blocks(side)) for side in SIDES}
    spread = {side: _spread(values) for side, values in medians.items()}
    paired = medians["candidate"] - medians["reference"] if medians["reference"].size == medians["candidate"].size else None
    return Noise(
        batch_size=series.batch_size,
        block_spread=spread,
        pair_spread=None if paired is None else _spread(paired),
        drift={side: drift_between_blocks(series.blocks(side)) for side in SIDES},
    )


def _log_medians(blocks) -> np.ndarray:
    return np.array([np.log(np.median(block)) for block in blocks if len(block) and np.all(np.asarray(block) > 0)])


def _spread(values: np.ndarray) -> float | None:
    return float(np.std(values, ddof=1)) if values.size >= 3 else None
