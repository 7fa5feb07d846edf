"""Pass/fail thresholds on a summary: --min-score and --min-tps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

TpsBasis = Literal["auto", "engine", "wall"]


@dataclass(frozen=True)
class Gate:
    name: str  # e.g. "score[cjk]" or "tokens/s[engine]"
    threshold: float
    value: float | None  # None: the run could not measure it, which fails the gate
    passed: bool

    def describe(self) -> str:
        shown = "unmeasured" if self.value is None else f"{self.value:.4g}"
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict}: {self.name} = {shown} (min {self.threshold:g})"


def tps_value(summary: dict[str, Any], basis: TpsBasis) -> tuple[str, float | None]:
    """The tokens/s a gate compares: engine time when the server reports it (auto)."""
    if basis == "auto":
        basis = "engine" if summary.get("tokens_per_s_engine") is not None else "wall"
    return basis, summary.get(f"tokens_per_s_{basis}")


def check_gates(
    summary: dict[str, Any],
    scorer: str,
    min_score: float | None,
    min_tps: float | None,
    tps_basis: TpsBasis = "auto",
) -> list[Gate]:
    gates = []
    if min_score is not None:
        value = summary["scores"].get(scorer)
        gates.append(Gate(f"score[{scorer}]", min_score, value, _at_least(value, min_score)))
    if min_tps is not None:
        basis, value = tps_value(summary, tps_basis)
        gates.append(Gate(f"tokens/s[{basis}]", min_tps, value, _at_least(value, min_tps)))
    return gates


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def gates_json(gates: list[Gate]) -> list[dict[str, Any]]:
    return [asdict(gate) for gate in gates]
