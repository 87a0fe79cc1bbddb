"""The engine: one comparison's sequence (pipeline), its measuring loop (runner, blocks,
pacing, cold starts, feed), one model on its own (single, baseline_compare, calibration),
the models' answers compared (answers), and what the run tells a person (progress)."""
