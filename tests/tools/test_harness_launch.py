"""Launching servers: healthy start, group stop, start failures explained, a taken port
answered by another, settings turned into the service's environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from llmserve.errors import ExitCode
from llmserve.harness import launch
from llmserve.harness.launch import settings_env, start_service, without_settings
from llmserve.process import ServerFailed, ServerProcess, free_port

# A parent that serves HTTP and keeps a child alive, as uvicorn keeps its engine workers.
SERVER = """
import http.server, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
                                http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_server_process_starts_healthy_and_stop_ends_its_whole_group(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, "-c", SERVER, str(port)],
                           health_url=f"http://127.0.0.1:{port}/", cwd=tmp_path,
                           log_path=tmp_path / "log")
    with server:
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        group = [p for p in psutil.process_iter() if _pgid(p.pid) == server.pid]
        assert len(group) == 2  # the server and its child
    # SIGKILL is delivered asynchronously: wait (bounded) for every member to end.
    _, alive = psutil.wait_procs(group, timeout=10)
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive)  # dead, not yet reaped


# A leader that stops its child itself on SIGTERM, as `llmserve serve` shuts its engine down;
# the child writes the pid that signalled it.
LEADER = """
import http.server, signal, subprocess, sys, threading
CHILD = ("import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); "
         "print('up', flush=True); "
         "open(sys.argv[1], 'w').write(str(signal.sigwaitinfo({signal.SIGTERM}).si_pid))")
child = subprocess.Popen([sys.executable, "-c", CHILD, sys.argv[2]], stdout=subprocess.PIPE)
child.stdout.readline()
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
                                         http.server.SimpleHTTPRequestHandler)
def stop(signum, frame):
    child.terminate()
    child.wait()
    threading.Thread(target=server.shutdown).start()
signal.signal(signal.SIGTERM, stop)
server.serve_forever()
"""


def test_stop_asks_the_leader_which_stops_its_children(tmp_path: Path) -> None:
    """The leader alone gets SIGTERM: its children are stopped by it, in order (vLLM's engine
    processes signalled beside the server died before it closed them: leaked shared memory)."""
    port, seen = free_port(), tmp_path / "signalled-by"
    server = ServerProcess([sys.executable, "-c", LEADER, str(port), str(seen)],
                           health_url=f"http://127.0.0.1:{port}/", cwd=tmp_path,
                           log_path=tmp_path / "log")  # fmt: skip
    with server:
        leader = server.pid
    assert server.process is not None and server.process.returncode == 0
    assert seen.read_text() == str(leader)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_server_that_exits_early_fails_with_its_log(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-c", "print('no model here'); raise SystemExit(2)"],
                           health_url=f"http://127.0.0.1:{free_port()}/",
                           log_path=tmp_path / "log")
    with pytest.raises(ServerFailed, match=r"exited with code 2(.|\n)*no model here") as caught:
        server.start()
    assert caught.value.exit_code is ExitCode.SERVER


def test_start_service_chooses_another_port_when_its_port_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start finds its port taken (as when another process binds it between our
    choice and the bind); the service comes up on a second port, with the settings given."""
    marker = tmp_path / "tried"
    script = f"""
import os, pathlib, sys
marker = pathlib.Path({str(marker)!r})
if not marker.exists():
    marker.write_text("x")
    print("ERROR: [Errno 98] Address already in use", flush=True)
    raise SystemExit(1)
assert os.environ["MAX_NEW_TOKENS"] == "7" and os.environ["ENFORCE_EAGER"] == "1"
assert os.environ["PORT"] == sys.argv[1]
{SERVER.replace("int(sys.argv[1])", "int(os.environ['PORT'])")}
"""
    monkeypatch.setattr(launch, "serve_command",
                        lambda host, port: [sys.executable, "-c", script, str(port)])
    started: list[ServerProcess] = []
    with start_service({"max_new_tokens": 7, "ENFORCE_EAGER": True, "seed": None},
                       log_path=tmp_path / "server.log",
                       on_start=started.append) as svc:
        assert httpx.get(svc.url + "/").status_code == 200
        assert svc.url.endswith(f":{svc.port}")
    assert len(started) == 2 and started[1].health_url == svc.url + "/"
    assert "Address already in use" in (tmp_path / "server.log").read_text()


def test_settings_env_spells_values_as_the_environment_does() -> None:
    assert settings_env({"enforce_eager": True, "STOP_STRINGS": ["\n\n"], "seed": None,
                         "dtype": "float32", "max_num_seqs": 8}) == {
        "ENFORCE_EAGER": "1", "STOP_STRINGS": '["\\n\\n"]', "DTYPE": "float32",
        "MAX_NUM_SEQS": "8"}


def test_without_settings_drops_every_setting_and_names_them() -> None:
    env, dropped = without_settings({"MAX_NUM_SEQS": "3", "model_dir": "/x", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}
    assert dropped == ["MAX_NUM_SEQS", "model_dir"]
