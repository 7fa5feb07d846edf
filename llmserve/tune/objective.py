"""The objective: the most tokens/s among trials whose mean score reaches the floor.

tokens/s is engine-based by default: output tokens over the engine seconds the server reports
(X-Engine-Seconds), which leaves out HTTP, JSON and the judge's own scoring. On a shared
machine the judge's CPU use lands in wall time and would blur differences between settings;
`--tps wall` ranks by the wall figure instead (the table shows both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmserve.errors import LlmserveError

Record = dict[str, Any]
TPS_BASES = ("engine", "wall")
DEFAULT_FLOOR_RATIO = 0.95


@dataclass(frozen=True)
class Objective:
    scorer: str  # cjk | compat
    basis: str  # engine | wall
    floor: float | None  # None: no floor could be set (the default trial failed)
    floor_source: str  # how the floor was chosen, for the report

    def score(self, record: Record) -> float | None:
        value = (record.get("score") or {}).get(self.scorer)
        return None if value is None else float(value["mean"])

    def tps(self, record: Record) -> float | None:
        value = (record.get("tps") or {}).get(self.basis)
        return None if value is None else float(value["mean"])

    def measured(self, record: Record) -> bool:
        return record.get("status") == "ok" and None not in (self.score(record),
                                                              self.tps(record))

    def feasible(self, record: Record) -> bool:
        return (self.floor is not None and self.measured(record)
                and self.score(record) >= self.floor)  # type: ignore[operator]

    def best(self, records: list[Record]) -> Record | None:
        """The fastest feasible trial; a tie goes to the higher score."""
        ok = [r for r in records if self.feasible(r)]
        return max(ok, key=lambda r: (self.tps(r), self.score(r)), default=None)

    def pareto(self, records: list[Record]) -> list[Record]:
        """Measured trials no other trial beats on both tokens/s and score, by tokens/s."""
        points = [r for r in records if self.measured(r)]
        front = []
        for r in points:
            t, s = self.tps(r), self.score(r)
            dominated = any(
                self.tps(o) >= t and self.score(o) >= s  # type: ignore[operator]
                and (self.tps(o) > t or self.score(o) > s)  # type: ignore[operator]
                for o in points
            )
            if not dominated:
                front.append(r)
        return sorted(front, key=lambda r: self.tps(r))  # type: ignore[arg-type, return-value]


def make_objective(
    scorer: str, basis: str, floor: float | None, ratio: float, default: Record | None
) -> Objective:
    """--floor as given, else `ratio` times the default trial's score (when it was measured)."""
    if basis not in TPS_BASES:
        raise LlmserveError(f"--tps {basis!r}: expected one of {', '.join(TPS_BASES)}")
    if floor is not None:
        return Objective(scorer, basis, floor, "--floor")
    probe = Objective(scorer, basis, None, "")
    if default is None or not probe.measured(default):
        return Objective(scorer, basis, None, "none: the default trial has no score; "
                         "give --floor")
    base = probe.score(default)
    assert base is not None
    return Objective(scorer, basis, ratio * base,
                     f"{ratio:g} x the default trial's {scorer} score {base:.4f}")
