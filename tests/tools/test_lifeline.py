"""llmserve.lifeline: a process group that ends when its parent ends, even by SIGKILL (what
keeps a SIGKILLed tool from leaving its server, and a server its replica workers, behind)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psutil

from llmserve.harness.launch import serve_command
from llmserve.lifeline import lifeline_command

CHILD = """
import sys, threading
from llmserve.lifeline import exit_with_parent
exit_with_parent(int(sys.argv[1]))
print("watching", flush=True)
threading.Event().wait()  # serves forever, until the lifeline ends it
"""


def kill_and_survivors(parent: subprocess.Popen[bytes], watched: list[psutil.Process]) -> list:
    """SIGKILL `parent`; which of `watched` are still alive 60 s later (none expected)."""
    parent.kill()
    parent.wait()
    return psutil.wait_procs(watched, timeout=60)[1]


def end(*processes: subprocess.Popen[Any]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_child_group_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(parent.pid)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "watching\n"
        assert child.poll() is None  # the parent lives: the child keeps running
        assert not kill_and_survivors(parent, [psutil.Process(child.pid)]), "child outlived"
    finally:
        end(parent, child)


def test_a_child_of_a_parent_already_gone_ends_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(gone.pid)], start_new_session=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert child.wait(timeout=60) == -15  # SIGTERM from its own lifeline


def test_servers_started_by_tools_carry_the_lifeline() -> None:
    command = serve_command("127.0.0.1", 8123)
    flag = command.index("--exit-with-parent")
    assert command[flag + 1] == str(psutil.Process().pid)


def test_a_command_under_the_lifeline_wrapper_ends_with_the_parent() -> None:
    """What `llmserve bench` runs `vllm serve` under (it has no --exit-with-parent)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    sleeper = [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(3600)"]
    wrapper = subprocess.Popen([*lifeline_command(parent.pid), *sleeper],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert wrapper.stdout is not None and wrapper.stdout.readline() == "up\n"
        tree = [psutil.Process(wrapper.pid), *psutil.Process(wrapper.pid).children()]
        assert len(tree) == 2 and wrapper.poll() is None
        assert not kill_and_survivors(parent, tree), "the command outlived the parent"
    finally:
        end(parent, wrapper)
