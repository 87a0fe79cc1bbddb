"""What a model declares about an input tensor (shared by workers and the parent, so it
stays free of heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorSpec:
    """A model input as the model declares it."""

    name: str
    dtype: str | None  # numpy dtype name; None when the model does not say
    shape: Shape | None  # None dims are dynamic; None shape: rank unknown
