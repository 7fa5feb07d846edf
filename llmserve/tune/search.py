"""Which trials to run: the defaults first, then grid or random points of the space.

A trial is identified by a stable key, a hash of the settings it runs with (fixed ones
included, defaults left out), so the same setting reached by another strategy, order or
spelling is recognised as already measured, and a rerun skips it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from llmserve.errors import LlmserveError
from llmserve.tune.space import Space, Value, check_combination, effective

STRATEGIES = ("grid", "random")
DEFAULT_RANDOM_TRIALS = 12
RANDOM_DRAWS_PER_TRIAL = 200  # give up drawing new points when the space is nearly exhausted


@dataclass(frozen=True)
class Candidate:
    params: dict[str, str]  # the searched settings that differ from their defaults
    settings: dict[str, str]  # what the trial's server gets: fixed settings and params
    key: str

    @property
    def is_default(self) -> bool:
        return not self.params


@dataclass
class Plan:
    candidates: list[Candidate]
    skipped: list[tuple[dict[str, str], str]] = field(default_factory=list)  # invalid combos


def trial_key(settings: dict[str, str]) -> str:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_candidate(space: Space, choice: dict[str, Value]) -> Candidate:
    """The trial for one value per parameter; parameters whose `when` fails stay default."""
    active: dict[str, Value] = {}
    for param in space.params:
        value = choice.get(param.name)
        for other, wanted in param.when.items():
            current = active.get(other, space.fixed.get(other))
            if effective(other, current) not in wanted:
                value = None
        active[param.name] = value
    params = {name: value for name, value in active.items() if value is not None}
    settings = dict(sorted({**space.fixed, **params}.items()))
    return Candidate(params=params, settings=settings, key=trial_key(settings))


def _grid(space: Space) -> Iterator[dict[str, Value]]:
    names = [p.name for p in space.params]
    for values in itertools.product(*(p.values for p in space.params)):
        yield dict(zip(names, values, strict=True))


def _pick(seed: int, draw: int, name: str, values: tuple[Value, ...]) -> Value:
    """A seeded random choice that survives a changed value list: each value gets a hash
    weight and the smallest wins (rendezvous hashing). When a glob such as
    results/quant/variants/* gains a checkpoint, only the draws the newcomer wins change, so
    a rerun still finds most of its planned trials in the journal."""
    def weight(value: Value) -> bytes:
        return hashlib.sha256(f"{seed}|{draw}|{name}|{value}".encode()).digest()

    return min(values, key=weight)


def _random(space: Space, seed: int, draws: int) -> Iterator[dict[str, Value]]:
    for draw in range(draws):
        yield {p.name: _pick(seed, draw, p.name, p.values) for p in space.params}


def plan(space: Space, strategy: str, trials: int | None, seed: int) -> Plan:
    """The trials in order, the defaults (with the fixed settings) first; at most `trials`."""
    if strategy not in STRATEGIES:
        raise LlmserveError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if trials is not None and trials < 1:
        raise LlmserveError(f"--trials {trials}: must be at least 1")
    baseline = make_candidate(space, {})
    reason = check_combination(baseline.settings)
    if reason:
        raise LlmserveError(f"the fixed settings cannot run: {reason}")
    if strategy == "random":
        trials = trials or DEFAULT_RANDOM_TRIALS
        choices: Iterable[dict[str, Value]] = _random(space, seed, trials * RANDOM_DRAWS_PER_TRIAL)
    else:
        choices = _grid(space)
    result = Plan([baseline])
    seen = {baseline.key}
    for choice in choices:
        if trials is not None and len(result.candidates) >= trials:
            break
        candidate = make_candidate(space, choice)
        if candidate.key in seen:
            continue
        seen.add(candidate.key)
        reason = check_combination(candidate.settings)
        if reason:
            result.skipped.append((candidate.params, reason))
            continue
        result.candidates.append(candidate)
    return result
