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
    # Where the model declares no dtype (TorchScript, a Python factory): the dtype to feed
    # float columns as, usually the model's parameter dtype; ints and bools stay as they are.
    float_dtype: str | None = None

    def same_signature(self, other: "TensorSpec") -> bool:
        """Whether the same columns could feed both: the same kind of dtype (float, int, …)
        and rank, and the same per-row dims, where both declare them."""
        if self.dtype is not None and other.dtype is not None and _family(self.dtype) != _family(other.dtype):
            return False
        if self.shape is None or other.shape is None:
            return True
        return len(self.shape) == len(other.shape) and all(
            a is None or b is None or a == b for a, b in zip(self.shape[1:], other.shape[1:])
        )

    def dtype_for(self, values_kind: str) -> str | None:
        """The dtype to cast values of numpy kind ``values_kind`` to, or None to keep theirs."""
        if self.dtype is not None:
            return self.dtype
        return self.float_dtype if values_kind == "f" else None


def _family(dtype: str) -> str:
    """'float' for float16/32/64, 'int', 'uint', 'bool', …: a dtype name without its width."""
    return dtype.rstrip("0123456789")
