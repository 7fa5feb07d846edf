"""judge, tune and quantize compare killed with SIGKILL mid-run, then resumed: nothing lost,
nothing duplicated.

SIGKILL allows no cleanup, so only the tool's own process is killed (as the OOM killer or a
`kill -9 <pid>` would), never its servers' groups. A server a tool started then ends by
itself (its lifeline, llmserve.lifeline, watches the tool): the tune test checks that. The
tuner's rerun would still reap orphans carrying its folder's marker; the compare test stops
whatever is left by process group, found among the tool's descendants before the kill.

Cost: the judge runs on the session's shared server (its resume is the same with --start);
tune starts three engines (one cut short), compare two (one cut short).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from llmserve.errors import ExitCode
from tests.conftest import Server, write_chat_jsonl
from tests.tools.test_tool_signals import (
    QA,
    Tool,
    compare_args,
    engine_spawned,
    lines,
    served_model_dir,
    tools,  # noqa: F401  (the fixture)
    tune_args,
    tune_space,
)

KILLED = -signal.SIGKILL


def kill_tool(tool: Tool) -> None:
    """SIGKILL the tool process alone, and see it die."""
    os.kill(tool.pid, signal.SIGKILL)
    assert tool.exit_code() == KILLED


def stop_groups(procs: list[psutil.Process]) -> None:
    """Stop orphaned servers by their process groups: SIGTERM, then SIGKILL what lingers."""
    groups = set()
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
        except ProcessLookupError:
            continue
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            continue
    _, alive = psutil.wait_procs(procs, timeout=30)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue
    _, alive = psutil.wait_procs(alive, timeout=10)
    assert not alive


@pytest.mark.engine
def test_judge_killed_and_resumed_has_every_item_once(server: Server, tmp_path: Path,
                                                      tools: list[Tool]) -> None:  # noqa: F811
    qa = [("test", f"Count from {n} to {n + 3}.", " ".join(map(str, range(n, n + 4))))
          for n in range(40)]
    data = write_chat_jsonl(tmp_path / "data.jsonl", qa)
    out = tmp_path / "judge"
    args = ["judge", "--url", server.url, "--data", str(data), "--split", "all",
            "--concurrency", "4", "--out", str(out), "--no-progress"]
    first = Tool(args, tmp_path / "judge-1.out")
    tools.append(first.start())
    first.wait_for("3 judged items", lambda: len(lines(out / "details.jsonl")) >= 3)
    kill_tool(first)
    kept = lines(out / "details.jsonl")  # whole lines only: a torn last one is not read
    assert len(kept) < len(qa), "killed too late to test a resume"

    second = Tool([*args, "--resume"], tmp_path / "judge-2.out")
    tools.append(second.start())
    assert second.exit_code() == ExitCode.OK, second.output()
    ids = [record["id"] for record in lines(out / "details.jsonl")]
    assert sorted(ids) == sorted(f"q{n}" for n in range(len(qa)))  # every item, exactly once
    for record in kept:  # what was scored before the kill is kept as it was
        assert record in lines(out / "details.jsonl")
    assert "resuming" in second.output()


@pytest.mark.engine
def test_tune_killed_leaves_no_server_and_rerun_skips_finished_trials(
        tmp_path: Path, tools: list[Tool]) -> None:  # noqa: F811
    data = write_chat_jsonl(tmp_path / "data.jsonl", QA)
    out = tmp_path / "tune"
    args = tune_args(out, data, tune_space(tmp_path / "space.yaml"))
    results = out / "tune_results.jsonl"
    first = Tool(args, tmp_path / "tune-1.out")
    tools.append(first.start())
    first.wait_for("trial 1 recorded and trial 2's server started",
                   lambda: len(lines(results)) == 1 and bool(first.servers()))
    orphans = first.descendants()
    assert orphans, "no server was running at the kill"
    kill_tool(first)
    trial_1 = lines(results)[0]
    # The server ends by itself: its lifeline (llmserve.lifeline) watches the killed tuner.
    _, alive = psutil.wait_procs(orphans, timeout=120)
    assert not alive, "the killed tuner's server outlived it"

    second = Tool(args, tmp_path / "tune-2.out")
    tools.append(second.start())
    code = second.exit_code(bound_s=900)
    assert code in (ExitCode.OK, ExitCode.NO_RESULT), second.output()
    assert "a killed run left behind" not in second.output()  # there was nothing to reap
    records = lines(results)
    assert [r["number"] for r in records] == [1, 2]  # trial 1 not redone, trial 2 done once
    assert records[0] == trial_1
    assert records[1]["status"] == "ok", records[1].get("reason")


@pytest.mark.engine
def test_compare_killed_and_resumed_keeps_rows_and_redoes_the_interrupted_one(
        tmp_path: Path, tools: list[Tool]) -> None:  # noqa: F811
    data = write_chat_jsonl(tmp_path / "data.jsonl", QA)
    broken = tmp_path / "variants" / "broken"  # no config.json: a failed row, no engine
    broken.mkdir(parents=True)
    model = served_model_dir()
    out = tmp_path / "compare"
    args = compare_args(out, data, [broken, model])
    rows = out / "rows.jsonl"
    first = Tool(args, tmp_path / "compare-1.out")
    tools.append(first.start())
    first.wait_for("row 1 written and candidate 2's engine started",
                   lambda: len(lines(rows)) == 1 and engine_spawned(first))
    orphans = first.descendants()
    kill_tool(first)
    row_1 = lines(rows)[0]
    assert row_1["name"] == "broken" and row_1["status"] == "failed"
    stop_groups([p for p in orphans if p.is_running()])

    second = Tool([*args, "--resume"], tmp_path / "compare-2.out")
    tools.append(second.start())
    assert second.exit_code(bound_s=900) == ExitCode.FAILED, second.output()  # "broken" failed
    assert "kept from" in second.output()
    names = [row["name"] for row in lines(rows)]
    assert names == ["broken", model.name]  # the interrupted candidate redone, once
    assert lines(rows)[0] == row_1
    assert lines(rows)[1]["status"] == "ok", lines(rows)[1].get("reason")
