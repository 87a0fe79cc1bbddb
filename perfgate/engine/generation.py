"""Generate mode: both models answer the same prompts, request pair by request pair.

After loading (the pipeline's), each worker gets the prompts (``SetPrompts``: text is
tokenized by the model's own tokenizer in its worker; a prompt too long for its context
is refused there) and warms up on two requests. Then block pairs run until the checks
decide or the time budget is spent, as for one-shot models:

* a block is ``requests_per_block`` requests of the same prompts on each model, one at a
  time, the order of the two models following balanced, seeded ABBA / BAAB quads;
* the prompts go round in a seeded order, so that every prompt is asked as often as any
  other and long and short prompts land on both models alike;
* with several worker instances per model, block pair i runs on instance pair i mod K;
* looks come after ``first_look_pairs`` pairs and then each time the count grows by
  ``look_growth``, each judged at its share of the error rate (perfgate.judge.checks).

Intervals are on blocks of requests, never on pooled tokens: a request's inter-token
gaps move together (perfgate/metrics/requests.py). Each pair's two greedy answers (the
worker hands them beside the timings) are compared outside the clock
(``outputs.token_agreement``) and then dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from perfgate.data.prompts import Prompt
from perfgate.engine.blocks import until_stopped
from perfgate.engine.progress import Status, show_status
from perfgate.engine.runner import Measurement, Orders, look_after, with_block_memory
from perfgate.formatting import format_duration
from perfgate.measurements import GenerationSeries, GenerationsCompared, LoadScenario, RequestTiming
from perfgate.results import SIDES
from perfgate.worker.process import Worker
from perfgate.worker.protocol import (
    DEFAULT_CALL_TIMEOUT_S, SETUP_TIMEOUT_S, LoadPlan, RunRequestLoad, RunRequests, SetPrompts,
    requests_timeout,
)  # fmt: skip

Progress = Callable[[str], None]
# A load episode of a served model: enough requests that the clients overlap for most of
# it (4 rounds of a closed loop), never fewer than 8, and an open loop's arrivals over about
# 2 s of requests at the typical pace, capped so that a high rate stays a short episode.
EPISODE_ROUNDS = 4
MIN_EPISODE_REQUESTS = 8
MAX_EPISODE_REQUESTS = 200
OPEN_EPISODE_S = 2.0


def episode_requests(scenario: LoadScenario, typical_s: float) -> int:
    if scenario.kind == "closed":
        wanted = EPISODE_ROUNDS * scenario.clients
    else:
        wanted = scenario.rate * max(OPEN_EPISODE_S, typical_s)
    return int(min(MAX_EPISODE_REQUESTS, max(MIN_EPISODE_REQUESTS, round(wanted))))
# The greedy answers compared come from the measured request pairs themselves (what a
# model chooses does not depend on its clock being read): the first prompts asked, up to
# this many. Asked apart, untimed, 8 prompts' 64-token answers cost 3-4 s of a 21-24 s run.
ANSWERS_COMPARED = 256
WARMUP_REQUESTS = 2  # per worker: the first carries lazy set-up (kernels chosen, caches grown)


@dataclass(frozen=True)
class GenerationPlan:
    max_new_tokens: int
    time_budget_s: float = 60.0
    seed: int = 0
    chat: bool = False
    # one request per block: a block pair is then one prompt on both models, and the
    # bootstrap resamples requests; 8 pairs before the first look as for one-shot blocks
    requests_per_block: int = 1
    first_look_pairs: int = 8
    look_growth: float = 1.5
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    answers_compared: int = ANSWERS_COMPARED
    warmup_requests: int = WARMUP_REQUESTS
    loads: tuple[LoadScenario, ...] = ()  # served models: latency under load, per scenario


@dataclass(frozen=True)
class Prepared:
    """What the workers were handed: the prompts, and each one's length per model."""

    count: int
    lengths: Mapping[str, tuple[int | None, ...]] = field(default_factory=dict)


def set_prompts(
    instances: Sequence[Mapping[str, Worker]], prompts: Mapping[str, Sequence[Prompt]], plan: GenerationPlan
) -> Prepared:
    """Hand every worker its side's prompts; a prompt a model cannot take is said here."""
    lengths = {}
    for index, workers in enumerate(instances):
        for side in SIDES:
            call = SetPrompts(tuple(prompts[side]), chat=plan.chat, max_new_tokens=plan.max_new_tokens)
            found = workers[side].call(call, timeout=SETUP_TIMEOUT_S)
            if index == 0:
                lengths[side] = tuple(found)
    return Prepared(len(prompts["reference"]), lengths)


def hardware_warnings(details: Mapping[str, Mapping[str, object]]) -> tuple[str, ...]:
    """A warning where both served models' servers say what they run on, and differ: the
    comparison is then of two machines as much as of two models."""
    said = {side: details[side].get("server_hardware") for side in SIDES}
    if any(value is None for value in said.values()) or said["reference"] == said["candidate"]:
        return ()
    return (
        f"the two endpoints answer from different hardware, as their servers say (reference: {said['reference']}; "
        f"candidate: {said['candidate']}): the change measured is of the machines as much as of the models",
    )


def compared_answers(answers: Mapping[int, Mapping[str, object]], max_new_tokens: int) -> GenerationsCompared:
    """Both models' greedy answers to the same prompts (prompt index -> side -> answer: new
    token ids, or a served model's text), compared token for token (text: character for
    character). Their requests' clock readings do not change what greedy decoding chooses."""
    chosen = tuple(answers)
    exact, first, lengths = [], [], {side: [] for side in SIDES}
    text = any(isinstance(answers[prompt][side], str) for prompt in chosen for side in SIDES)
    for prompt in chosen:
        reference, candidate = answers[prompt]["reference"], answers[prompt]["candidate"]
        if text:
            reference, candidate = _as_text(reference), _as_text(candidate)
        exact.append(tuple(reference) == tuple(candidate))
        first.append(None if exact[-1] else _first_difference(reference, candidate))
        lengths["reference"].append(len(reference))
        lengths["candidate"].append(len(candidate))
    return GenerationsCompared(
        chosen, max_new_tokens, tuple(exact), tuple(first), {side: tuple(values) for side, values in lengths.items()},
        unit="characters" if text else "tokens",
    )  # fmt: skip


def _as_text(answer: str | Sequence[int]) -> str:
    return answer if isinstance(answer, str) else " ".join(str(token) for token in answer)


def _first_difference(reference: Sequence, candidate: Sequence) -> int:
    for position, (one, other) in enumerate(zip(reference, candidate)):
        if one != other:
            return position
    return min(len(reference), len(candidate))


def measure_generations(
    instances: Sequence[Mapping[str, Worker]],
    prepared: Prepared,
    plan: GenerationPlan,
    on_look: Callable[[Measurement], bool],
    *,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
) -> tuple[Measurement, str]:
    """Measure request pairs until ``on_look`` returns True or the time budget is spent;
    returns the last look and why it stopped ("decided" or "time budget")."""
    say = progress or (lambda message: None)
    rng = np.random.default_rng(plan.seed)
    show_status(say, Status("warm-up", 0.0))
    typical = _warm_up(instances, plan, rng)
    say(
        f"warm-up: reference {format_duration(typical['reference'] * 1e9)}/request, candidate "
        f"{format_duration(typical['candidate'] * 1e9)}/request ({plan.max_new_tokens} new tokens)"
    )
    builder = _GenerationBuilder(plan, prepared.count, typical, rng)
    loads = [_GenerationBuilder(plan, prepared.count, typical, rng, scenario, seed=plan.seed * 7919 + index)
             for index, scenario in enumerate(plan.loads)]  # fmt: skip
    for load in loads:
        say(f"load {load.scenario.label}: {load.requests} requests per episode")
    next_look = plan.first_look_pairs
    looks: list[Measurement] = []

    def one_round(pairs: int) -> None:
        instance = pairs % len(instances)
        builder.run_pair(instances[instance], instance)
        for load in loads:
            load.run_pair(instances[instance], instance)

    def look(pairs: int, out_of_time: bool, elapsed: float) -> str | None:
        nonlocal next_look
        if pairs < next_look and not out_of_time:
            return None
        frozen = (builder.freeze(), *(load.freeze() for load in loads))
        looks.append(Measurement((), len(looks) + 1, elapsed, out_of_time, generations=frozen, answers=builder.answers()))
        if on_look(looks[-1]):
            return "decided"
        next_look = look_after(next_look, pairs, plan.look_growth)
        return None

    show_status(say, Status("measuring", 0.0, plan.time_budget_s))
    stopped, _ = until_stopped(one_round, look, time_budget_s=plan.time_budget_s, clock=clock)
    return with_block_memory(instances[0], looks[-1]), stopped


def _warm_up(instances: Sequence[Mapping[str, Worker]], plan: GenerationPlan, rng: np.random.Generator) -> dict[str, float]:
    """Each worker answers ``warmup_requests`` requests; a side's typical request is the
    slowest of its instances' last warm-up requests, in seconds."""
    typical = {side: 0.0 for side in SIDES}
    first_limit = requests_timeout(plan.call_timeout_s, plan.warmup_requests)
    for workers in instances:
        order = SIDES if rng.random() < 0.5 else SIDES[::-1]
        for side in order:
            timings = workers[side].call(RunRequests((0,) * plan.warmup_requests, plan.max_new_tokens), timeout=first_limit)
            typical[side] = max(typical[side], timings[-1].e2e_ns / 1e9)
    return typical


class _GenerationBuilder:
    """The block pairs of one request at a time, or (``scenario``) of load episodes."""

    def __init__(
        self,
        plan: GenerationPlan,
        prompt_count: int,
        typical: Mapping[str, float],
        rng: np.random.Generator,
        scenario: LoadScenario | None = None,
        seed: int = 0,
    ):
        self.plan = plan
        self.scenario = scenario
        self.seed = seed
        self.requests = plan.requests_per_block if scenario is None else episode_requests(scenario, max(typical.values()))
        self.prompt_count = prompt_count
        self.typical = dict(typical)
        self.rng = rng
        self.blocks: dict[str, list[tuple[RequestTiming, ...]]] = {side: [] for side in SIDES}
        self.prompts: list[tuple[int, ...]] = []
        self.first: list[str] = []
        self.instances: list[int] = []
        self._orders = Orders()
        self._cycle: list[int] = []
        self._answers: dict[int, dict[str, object]] = {}  # prompt -> side -> its greedy answer

    def _next_prompts(self) -> tuple[int, ...]:
        chosen = []
        for _ in range(self.requests):
            if not self._cycle:  # every prompt once per cycle, in a fresh seeded order
                self._cycle = [int(index) for index in self.rng.permutation(self.prompt_count)]
            chosen.append(self._cycle.pop())
        return tuple(chosen)

    def run_pair(self, workers: Mapping[str, Worker], instance: int) -> None:
        prompts = self._next_prompts()
        order = self._orders.next(self.rng)
        call = RunRequests(prompts, self.plan.max_new_tokens)
        if self.scenario is not None:  # the same arrivals for both models (one seed per pair)
            call = RunRequestLoad(prompts, self.plan.max_new_tokens, self._load_plan(self.seed * 1_000_003 + len(self.first)))
        for side in order:
            # under load as many requests take at most as long as one after another
            timeout = requests_timeout(self.plan.call_timeout_s, len(prompts), self.typical[side])
            timings = workers[side].call(call, timeout=timeout)
            self._keep_answers(side, timings)
            self.blocks[side].append(tuple(replace(timing, answer=None) for timing in timings))
        self.prompts.append(prompts)
        self.first.append(order[0])
        self.instances.append(instance)

    def _keep_answers(self, side: str, timings: Sequence[RequestTiming]) -> None:
        """The answers of the first ``answers_compared`` prompts asked one at a time: what
        the two models chose, compared once both have answered (``answers``)."""
        if self.scenario is not None:
            return
        for timing in timings:
            if timing.prompt in self._answers or len(self._answers) < self.plan.answers_compared:
                self._answers.setdefault(timing.prompt, {}).setdefault(side, timing.answer)

    def answers(self) -> GenerationsCompared | None:
        both = {prompt: answers for prompt, answers in self._answers.items() if len(answers) == len(SIDES)}
        return compared_answers(both, self.plan.max_new_tokens) if both else None

    def _load_plan(self, seed: int) -> LoadPlan:
        scenario = self.scenario
        if scenario.kind == "closed":
            return LoadPlan("closed", self.requests, clients=scenario.clients)
        gaps = np.random.default_rng(seed).exponential(1e9 / scenario.rate, self.requests)
        return LoadPlan("open", self.requests, arrivals_ns=tuple(int(t) for t in np.cumsum(gaps)))

    def freeze(self) -> GenerationSeries:
        return GenerationSeries(
            max_new_tokens=self.plan.max_new_tokens,
            prompt_count=self.prompt_count,
            reference=tuple(self.blocks["reference"]),
            candidate=tuple(self.blocks["candidate"]),
            prompts=tuple(self.prompts),
            first=tuple(self.first),
            instances=tuple(self.instances) if any(self.instances) else (),
            warmup_s=dict(self.typical),
            scenario=self.scenario,
        )
