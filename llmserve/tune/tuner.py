"""The search loop: plan, skip what the journal has, run the rest, confirm the best on test.

Every trial's server gets the defaults plus the trial's settings and nothing else: settings
exported in the tuner's own shell are left out (and named), so the default trial really is
the defaults and best.env reproduces exactly what was measured.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llmserve.harness.launch import without_settings
from llmserve.harness.metadata import now_iso
from llmserve.harness.signals import shielded
from llmserve.tune.journal import Journal
from llmserve.tune.objective import DEFAULT_FLOOR_RATIO, Objective, make_objective
from llmserve.tune.report import describe, write_outputs
from llmserve.tune.search import Candidate, Plan, plan
from llmserve.tune.space import Space
from llmserve.tune.trial import Limits, Measure, OnEvent, Trial, reap_orphans

Record = dict[str, Any]


@dataclass(frozen=True)
class TuneConfig:
    out: Path
    measure: Measure
    limits: Limits = field(default_factory=Limits)
    strategy: str = "random"
    trials: int | None = None
    seed: int = 0
    scorer: str = "cjk"
    tps_basis: str = "engine"
    floor: float | None = None
    floor_ratio: float = DEFAULT_FLOOR_RATIO
    confirm: bool = True
    confirm_split: str = "test"
    confirm_limit: int | None = None
    retry_failed: bool = False
    progress: bool = True


@dataclass
class Outcome:
    records: list[Record]  # the plan's finished trials, in plan order
    objective: Objective
    best: Record | None
    default: Record | None
    plan: Plan


def say(message: str) -> None:
    tqdm.write(f"auto_tune: {message}", file=sys.stderr)


class Tuner:
    def __init__(self, config: TuneConfig, space: Space, on_event: OnEvent | None = None) -> None:
        self.config = config
        self.space = space
        self.on_event = on_event
        self.journal = Journal(config.out)
        self.status: Record = {}
        self.bar: tqdm[Any] | None = None

    def plan(self) -> Plan:
        c = self.config
        return plan(self.space, c.strategy, c.trials, c.seed)

    def run(self) -> Outcome:
        the_plan = self.plan()
        c = self.config
        self.journal.lock()
        try:
            self.journal.check_meta(c.measure.meta())
            marker = str(c.out.resolve())
            killed = reap_orphans(marker)
            if killed:
                say(f"stopped {len(killed)} server processes a killed run left behind "
                    f"(pids {', '.join(map(str, killed))})")
            base_env, dropped = without_settings(os.environ)
            if dropped:
                say(f"not passing {', '.join(dropped)} from this shell to the trials: they run "
                    "the defaults plus the space and --env (use --env KEY=VALUE)")
            for note in self.space.notes:
                say(note)
            for params, reason in the_plan.skipped:
                say(f"skipping {describe(params)}: {reason}")
            return self._run(the_plan, base_env, marker)
        except KeyboardInterrupt:
            self._set_status(state="interrupted")
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            self.journal.unlock()

    def _run(self, the_plan: Plan, base_env: dict[str, str], marker: str) -> Outcome:
        c = self.config
        done = self.journal.records()
        todo = [(n, cand) for n, cand in enumerate(the_plan.candidates, 1)
                if cand.key not in done
                or (c.retry_failed and done[cand.key]["status"] != "ok")]
        finished = len(the_plan.candidates) - len(todo)
        if finished:
            say(f"resuming {c.out}: {finished} of {len(the_plan.candidates)} trials already "
                "recorded")
        self.status = {"state": "running", "pid": os.getpid(), "out": str(c.out),
                       "started": now_iso(), "planned": len(the_plan.candidates)}
        self.bar = tqdm(total=len(the_plan.candidates), initial=finished, unit="trial",
                        desc="auto_tune", disable=not c.progress, file=sys.stderr,
                        dynamic_ncols=True)
        durations: list[float] = []
        for number, cand in todo:
            self._refresh(the_plan, current={"number": number, "key": cand.key,
                                             "params": cand.params, "phase": "starting",
                                             "since": now_iso()},
                          eta=self._eta(durations, len(todo) - len(durations)))
            record = self._trial(number, cand, c.measure, c.out / "trials" / cand.key, base_env,
                                 marker)
            durations.append(record["seconds"])
            with shielded():
                self.journal.append(record)
            self.bar.update(1)
            say(self._line(record))
            self._report(the_plan)
        outcome = self._report(the_plan)
        if c.confirm and outcome.best is not None:
            self._confirm(the_plan, outcome, base_env, marker)
            outcome = self._report(the_plan)
        self._refresh(the_plan, current=None, state="done")
        return outcome

    def _trial(self, number: int, cand: Candidate, measure: Measure, trial_dir: Path,
               base_env: dict[str, str], marker: str) -> Record:
        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "phase":
                current = {**(self.status.get("current") or {}), **data, "since": now_iso()}
                self._set_status(current=current)
                if self.bar is not None:
                    self.bar.set_description(f"trial {number} {data['phase']}")
            if self.on_event is not None:
                self.on_event(name, {**data, "number": number, "key": cand.key})

        started = now_iso()
        result = Trial(cand.settings, measure, self.config.limits, trial_dir, base_env, marker,
                       on_event).run()
        return {"key": cand.key, "number": number, "default": cand.is_default,
                "params": cand.params, "settings": cand.settings, "started": started,
                "dir": str(trial_dir), **result}

    def _confirm(self, the_plan: Plan, outcome: Outcome, base_env: dict[str, str],
                 marker: str) -> None:
        """The best and the default settings again, on the held-out split."""
        c = self.config
        measure = replace(c.measure, split=c.confirm_split, limit=c.confirm_limit)
        done = self.journal.records(confirm=True)
        by_key = {cand.key: (n, cand) for n, cand in enumerate(the_plan.candidates, 1)}
        keys = [r["key"] for r in (outcome.best, outcome.default) if r is not None]
        for key in dict.fromkeys(keys):
            if key in done and done[key].get("measure") == measure.meta():
                continue
            number, cand = by_key[key]
            say(f"confirming trial #{number} on the {c.confirm_split} split")
            self._set_status(current={"number": number, "key": key, "params": cand.params,
                                      "phase": f"confirm on {c.confirm_split}", "since": now_iso()})
            record = self._trial(number, cand, measure, c.out / "confirm" / key, base_env,
                                 marker)
            record["measure"] = measure.meta()
            with shielded():
                self.journal.append(record, confirm=True)

    def _records(self, the_plan: Plan) -> list[Record]:
        done = self.journal.records()
        confirms = self.journal.records(confirm=True)
        records = []
        for number, cand in enumerate(the_plan.candidates, 1):
            if cand.key not in done:
                continue
            record = {**done[cand.key], "number": number, "default": cand.is_default,
                      "params": cand.params}
            test = confirms.get(cand.key)
            if test is not None:
                record["test"] = {k: test.get(k) for k in
                                  ("status", "reason", "score", "tps", "measure")}
            records.append(record)
        return records

    def _report(self, the_plan: Plan) -> Outcome:
        c = self.config
        records = self._records(the_plan)
        default = next((r for r in records if r["default"]), None)
        objective = make_objective(c.scorer, c.tps_basis, c.floor, c.floor_ratio, default)
        best = write_outputs(c.out, records, objective, c.measure.meta())
        if best is not None:
            self.status["best"] = {"number": best["number"], "key": best["key"],
                                   "params": best["params"], "score": objective.score(best),
                                   "tokens_per_s": objective.tps(best)}
            if self.bar is not None:
                self.bar.set_postfix_str(f"best #{best['number']} {objective.tps(best):.1f} tok/s")
        return Outcome(records, objective, best, default, the_plan)

    def _refresh(self, the_plan: Plan, current: Record | None, state: str = "running",
                 eta: float | None = None) -> None:
        records = self.journal.records()
        keys = {cand.key for cand in the_plan.candidates}
        mine = [r for k, r in records.items() if k in keys]
        self._set_status(state=state, current=current, eta_s=eta,
                         done=len(mine),
                         ok=sum(1 for r in mine if r["status"] == "ok"),
                         failed=sum(1 for r in mine if r["status"] != "ok"))

    def _set_status(self, **changes: Any) -> None:
        self.status.update(changes, updated=now_iso())
        with shielded():
            self.journal.write_status(self.status)

    @staticmethod
    def _eta(durations: list[float], left: int) -> float | None:
        return round(sum(durations) / len(durations) * left) if durations else None

    def _line(self, record: Record) -> str:
        head = f"trial #{record['number']} {describe(record['params'])}: {record['status']}"
        if record["status"] != "ok":
            return f"{head} ({record['reason']})"
        c = self.config
        score = record["score"][c.scorer]["mean"]
        tps = record["tps"][c.tps_basis]
        shown = f"{tps['mean']:.1f}" if tps else "-"
        return f"{head}, {c.scorer} {score:.4f}, {shown} tok/s {c.tps_basis} " \
               f"({record['seconds']:.0f} s)"
