"""llmserve.lifeline: a process group that ends when its parent ends, even by SIGKILL (what
keeps a SIGKILLed tool from leaving its server, and a server its replica workers, behind)."""

from __future__ import annotations

import subprocess
import sys

import psutil

from llmserve.harness.launch import serve_command

CHILD = """
import sys, threading
from llmserve.lifeline import exit_with_parent
exit_with_parent(int(sys.argv[1]))
print("watching", flush=True)
threading.Event().wait()  # serves forever, until the lifeline ends it
"""


def test_a_child_group_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(parent.pid)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "watching\n"
        assert child.poll() is None  # the parent lives: the child keeps running
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs([psutil.Process(child.pid)], timeout=60)
        assert not alive, "the child outlived its parent"
    finally:
        for process in (parent, child):
            if process.poll() is None:
                process.kill()
        child.wait()


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
