"""The one error type of the tools, and the one table of exit codes they share.

A `LlmserveError` is a problem the user can act on: a bad flag, missing data, a server that is
down. The tools print it as one line (`llmserve <command>: error: <message>`) and exit with
its code; a traceback means a bug. docs/exit-codes.md's table is this enum.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every llmserve command (and of the top-level scripts over them)."""

    OK = 0
    FAILED = 1  # the command ran, but part of its work failed (a variant, a system, the engine)
    USAGE = 2  # bad arguments, settings or data: nothing ran (argparse uses 2 as well)
    GATE_FAILED = 3  # the judge finished, but --min-score or --min-tps failed
    SERVER = 4  # the server was down, failed to start, or kept failing requests
    NO_RESULT = 5  # the tuner finished, but no trial reached the score floor
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; what was recorded is kept: rerun to resume


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "the command ran, but part of its work failed (see its output)",
    ExitCode.USAGE: "bad arguments, settings or data: nothing ran",
    ExitCode.GATE_FAILED: "judge: a gate (--min-score, --min-tps) failed",
    ExitCode.SERVER: "the server was down, failed to start, or kept failing requests",
    ExitCode.NO_RESULT: "tune: no trial reached the score floor",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM): rerun the same command to resume",
}


class LlmserveError(Exception):
    """A problem the user can fix, printed as one line; `exit_code` says how the tool ends."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ServerError(LlmserveError):
    """The server is unreachable, failed to start, or kept failing requests."""

    exit_code = ExitCode.SERVER


class SettingsError(LlmserveError):
    """A variable of the environment has a bad value: one line per bad variable, naming it
    and its value."""


class ModelNotFound(LlmserveError):
    """No checkpoint (or bundled GGUF) where the settings point."""


def exit_code_table() -> str:
    """docs/exit-codes.md's table (markdown), from the enum above."""
    rows = ["| Code | Meaning |", "| --- | --- |"]
    rows += [f"| {int(code)} | {EXIT_MEANINGS[code]} |" for code in ExitCode]
    return "\n".join(rows)
