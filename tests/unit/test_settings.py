"""Settings: defaults, parsing, and start-up refusing bad values with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmserve.engines.base import Sampling
from llmserve.engines.vllm.args import engine_kwargs, sampling_kwargs
from llmserve.settings import GROUPS, Settings, describe_error, read_setting

ROOT = Path(__file__).resolve().parents[2]


def settings(**env: str) -> Settings:
    return Settings(**{k.lower(): v for k, v in env.items()})


def error_line(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**env)
    return describe_error(caught.value)


def test_defaults_and_parsing(tmp_path: Path) -> None:
    s = settings()
    assert s.max_model_len == 2048 and s.temperature == 0.0 and s.stop_strings == []
    assert settings(STOP_STRINGS='["\\n\\n", "Q:"]').stop_strings == ["\n\n", "Q:"]
    assert settings(STOP_STRINGS="###").stop_strings == ["###"]
    assert settings(ENABLE_PREFIX_CACHING="0").enable_prefix_caching is False
    assert settings(QUANTIZATION="").quantization is None
    assert settings(MODEL_DIR=str(tmp_path)).model_dir == tmp_path
    assert "~" not in str(settings().cache_dir)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GPU_MEMORY_UTILIZATION": "1.5"}, "GPU_MEMORY_UTILIZATION='1.5'"),
        ({"MAX_MODEL_LEN": "-3"}, "MAX_MODEL_LEN='-3'"),
        ({"QUANTIZATION": "awk"}, "unknown quantization 'awk'"),
        ({"MODEL_DIR": "/no/such/dir"}, "MODEL_DIR='/no/such/dir': '/no/such/dir' does not exist"),
        ({"KV_CACHE_DTYPE": "int3"}, "unknown KV cache dtype 'int3'"),
        ({"TEMPERATURE": "hot"}, "TEMPERATURE='hot'"),
        ({"SPECULATIVE_METHOD": "magic"}, "SPECULATIVE_METHOD='magic'"),
        ({"ENGINE": "llama"}, "ENGINE='llama'"),
        ({"PRESENCE_PENALTY": "3"}, "PRESENCE_PENALTY='3'"),
        ({"STOP_STRINGS": "[broken"}, "STOP_STRINGS"),
        (
            {"NGRAM_PROMPT_LOOKUP_MIN": "5", "NGRAM_PROMPT_LOOKUP_MAX": "2"},
            "NGRAM_PROMPT_LOOKUP_MIN=5 is above NGRAM_PROMPT_LOOKUP_MAX=2",
        ),
        ({"SPECULATIVE_METHOD": "draft"}, "needs SPECULATIVE_DRAFT_MODEL"),
        ({"MAX_NEW_TOKENS": "4096"}, "MAX_NEW_TOKENS=4096 leaves no room"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], expected: str) -> None:
    assert expected in error_line(**env)


def test_groups_hold_every_setting_once() -> None:
    """Settings is exactly its groups' fields, flat and in the groups' order."""
    names = [name for group in GROUPS for name in group.model_fields]
    assert names == list(Settings.model_fields)
    assert settings().engine == "vllm" and settings().dtype == "auto"  # flat access


def test_read_setting_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """One setting without the whole class's checks (the judge's MODEL_DIR lookup)."""
    monkeypatch.delenv("MODEL_DIR", raising=False)
    assert read_setting("model_dir") is None
    monkeypatch.setenv("MODEL_DIR", "/no/such/dir")  # Settings() would refuse it
    assert read_setting("model_dir") == Path("/no/such/dir")
    monkeypatch.setenv("MAX_MODEL_LEN", "many")
    assert read_setting("max_model_len") == 2048
    monkeypatch.setenv("MAX_MODEL_LEN", "512")
    assert read_setting("max_model_len") == 512


def test_known_names_come_from_vllm() -> None:
    assert settings(QUANTIZATION="awq").quantization == "awq"
    assert settings(KV_CACHE_DTYPE="fp8").kv_cache_dtype == "fp8"


def test_engine_and_sampling_arguments(tmp_path: Path) -> None:
    s = settings(
        SPECULATIVE_METHOD="ngram",
        NUM_SPECULATIVE_TOKENS="3",
        MAX_NUM_BATCHED_TOKENS="512",
        GPU_MEMORY_UTILIZATION="0.5",
        STOP_STRINGS="END",
        SEED="7",
    )
    kwargs = engine_kwargs(s, tmp_path)
    assert kwargs["model"] == str(tmp_path) and kwargs["gpu_memory_utilization"] == 0.5
    assert kwargs["max_num_batched_tokens"] == 512 and kwargs["seed"] == 7
    assert kwargs["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 3,
        "prompt_lookup_min": 2,
        "prompt_lookup_max": 4,
    }
    assert engine_kwargs(settings(), tmp_path)["speculative_config"] is None
    assert sampling_kwargs(Sampling.from_settings(s))["stop"] == ["END"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GPU_MEMORY_UTILIZATION": "2"}, "invalid setting GPU_MEMORY_UTILIZATION='2'"),
        ({"MODEL_DIR": "/no/such/dir"}, "invalid setting MODEL_DIR='/no/such/dir'"),
        ({"MODEL_ID": "org/absent", "MODELS_ROOT": "/tmp/none"}, "run `python download_model.py`"),
    ],
)
@pytest.mark.parametrize("entry", [["-c", "import serve"], ["-m", "llmserve", "serve"]])
def test_start_up_stops_with_one_line(env: dict[str, str], expected: str, entry: list[str]) -> None:
    """The real entry points, serve.py as uvicorn imports it and `llmserve serve`: the
    library raises, the entry point prints a clear line (no traceback) and exits 2."""
    result = subprocess.run(
        [sys.executable, *entry],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
