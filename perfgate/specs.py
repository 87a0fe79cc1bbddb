"""What a comparison is made of, one record per part: each model (``ModelSpec``: the
reference and the candidate alike), the rows that feed them (``DataSpec``), how they are
measured (``MeasuringSpec``) and how the measurements are judged (``JudgingSpec``).

``perfgate.config.CompareConfig`` holds one of each (two ``ModelSpec``) and checks them
together, in the order its errors have always come in; these records check nothing
themselves.
The modules below the pipeline take the part they read, never the whole config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from perfgate.backends.base import BackendOptions
from perfgate.judge.budgets import Budget, build_budgets
from perfgate.metrics.base import DEFAULT_MEMORY_FLOOR
from perfgate.measurements import LoadScenario
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S

DEFAULT_OUTPUT_ROWS = 256  # rows whose outputs both models compute, untimed, to compare their answers
# A load episode (--concurrency, --rate) is at least this many requests per model: a shorter one
# says little about queueing. The runner sizes episodes by it; the config holds a rate to it.
MIN_EPISODE_REQUESTS = 20
DEFAULT_MAX_NEW_TOKENS = 64
TASKS = ("infer", "generate")


@dataclass(frozen=True)
class ModelSpec:
    """One side of a comparison as the user gave it: the options that each model has its
    own of (``--reference-backend`` / ``--candidate-backend`` and the like)."""

    role: str  # "reference" or "candidate": how messages, reports and workers name the side
    path: str  # the model as given: a file, a folder holding one, or module:attribute
    backend: str | None = None  # None: picked from the file
    python: str | None = None  # another environment's interpreter runs this side's worker
    data: str | None = None  # this side's own rows instead of the shared file's: data drift
    inputs: Mapping[str, str] = field(default_factory=dict)  # this model's only: --reference-input
    # an endpoint's HTTP headers as written ('Authorization: Bearer ${TOKEN}'): expanded only
    # when handed to its worker, and never shown
    headers: tuple[str, ...] = field(default=(), repr=False)

    def option(self, name: str) -> str:
        """The API keyword of this side's own option ``name`` ('python' -> 'candidate_python')."""
        return f"{self.role}_{name}"


@dataclass(frozen=True)
class DataSpec:
    """The rows both models read and how they become inputs. ``seed`` draws the rows, and
    also the outputs' sample, the block order and the bootstrap: one seed repeats a run."""

    file: str | None = None  # the rows for both models, unless a side has its own (data drift)
    inputs: Mapping[str, str] = field(default_factory=dict)
    rows: int | None = None
    seed: int = 0
    pad_value: float = 0.0
    allow_nonfinite: bool = False  # feed NaN and infinite values instead of refusing them
    size_column: str | None = None
    output_rows: int = DEFAULT_OUTPUT_ROWS
    prompt_column: str = "prompt"  # generate mode: the prompts, strings or lists of token ids

    def file_for(self, model: ModelSpec) -> str | None:
        """The Parquet file (a path or a URI) whose rows feed ``model``."""
        return model.data or self.file


@dataclass(frozen=True)
class MeasuringSpec:
    """How both models run and are timed: the same for both (``BackendOptions``)."""

    batch_sizes: tuple[int, ...] = (1,)
    time_budget_s: float = 60.0
    threads: int = 1
    device: str = "cpu"
    include_transfers: bool = False
    signature: str | None = None
    cold_starts: int | None = None  # fresh starts beyond each measuring worker's own; None: as the budgets need
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # a model call running longer is taken to hang
    instances: int | None = None  # worker processes per model; None: config.TIGHT_BUDGET_INSTANCES for a tight budget, else 1
    task: str = "infer"  # "generate": generative models, timed per request (perfgate.engine.generation)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # generate mode: new tokens per request, greedily
    chat: bool = False  # generate mode: text prompts wrapped in each model's chat template

    @property
    def generates(self) -> bool:
        return self.task == "generate"

    def backend_options(self) -> BackendOptions:
        return BackendOptions(self.device, self.threads, self.include_transfers, self.signature)

    @property
    def on_gpu(self) -> bool:
        return self.backend_options().on_gpu

    @property
    def loads(self) -> tuple[LoadScenario, ...]:
        return tuple(LoadScenario("closed", clients=n) for n in self.concurrency) + tuple(
            LoadScenario("open", rate=float(r)) for r in self.rates
        )


@dataclass(frozen=True)
class JudgingSpec:
    """What the measurements are held to."""

    budgets: tuple[Budget, ...] = field(default_factory=build_budgets)
    confidence: float = 0.95
    memory_floor: float = DEFAULT_MEMORY_FLOOR  # bytes
