"""The tuner's search space: validated with the Settings class before any trial; the plan."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmserve.argtypes import env_pair
from llmserve.errors import ExitCode, LlmserveError
from llmserve.tune.search import plan
from llmserve.tune.space import check_combination, load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]


def space(parameters: dict[str, Any], fixed: dict[str, Any] | None = None,
          env: dict[str, str] | None = None) -> Any:
    data: dict[str, Any] = {"parameters": parameters}
    if fixed is not None:
        data["fixed"] = fixed
    return parse_space(data, "space.yaml", env)


def error(parameters: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(LlmserveError) as caught:
        space(parameters, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"MAX_NUM_SEQ": [8]}, "parameters.MAX_NUM_SEQ: unknown setting (did you mean "
                               "MAX_NUM_SEQS?)"),
        ({"MAX_NUM_SEQS": []}, "parameters.MAX_NUM_SEQS: empty list of values"),
        ({"MAX_NUM_SEQS": 8}, "parameters.MAX_NUM_SEQS: expected a list of values"),
        ({"MAX_NUM_SEQS": ["eight"]}, "parameters.MAX_NUM_SEQS='eight': Input should be a "
                                      "valid integer"),
        ({"MAX_NUM_SEQS": [0]}, "parameters.MAX_NUM_SEQS=0: Input should be greater than 0"),
        ({"MAX_NUM_SEQS": [True]}, "a boolean is not a valid value of MAX_NUM_SEQS"),
        ({"MAX_NUM_SEQS": [[8, 16]]}, "parameters.MAX_NUM_SEQS=[8, 16]: expected a single"),
        ({"ENABLE_PREFIX_CACHING": ["maybe"]}, "ENABLE_PREFIX_CACHING='maybe'"),
        ({"REPETITION_PENALTY": [-1]}, "REPETITION_PENALTY=-1: Input should be greater than 0"),
        ({"SPECULATIVE_METHOD": ["eagle"]}, "SPECULATIVE_METHOD='eagle'"),
        ({"QUANTIZATION": ["awk"]}, "unknown quantization 'awk'"),
        ({"MODEL_DIR": ["/no/such/dir"]}, "MODEL_DIR='/no/such/dir': '/no/such/dir' does not "
                                          "exist"),
        ({"MODEL_DIR": ["results/none-here-*"]}, "parameters.MODEL_DIR: no values left"),
        ({"PORT": [8001]}, "parameters.PORT: not a tunable setting"),
        ({"MAX_NUM_SEQS": {"values": [8], "when": {"SPECULATIVE_METHOD": "ngram"}}},
         "when.SPECULATIVE_METHOD: not an earlier parameter or a fixed setting"),
        ({"MAX_NUM_SEQS": {"value": [8]}}, "expected {values: [...], when: {...}}"),
    ],
)
def test_bad_space_names_the_key(parameters: dict[str, Any], expected: str) -> None:
    assert expected in error(parameters)


def test_bad_fixed_and_set_values_are_named() -> None:
    assert "fixed.ENFORCE_EAGER='sometimes'" in error({}, fixed={"ENFORCE_EAGER": "sometimes"})
    assert "--env MAX_NUM_SEQS='x'" in error({}, env={"MAX_NUM_SEQS": "x"})
    assert "--env FOO: unknown setting" in error({}, env={"FOO": "1"})
    assert "both searched and fixed" in error({"MAX_NUM_SEQS": [8]},
                                              fixed={"MAX_NUM_SEQS": 16})
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        env_pair("ENFORCE_EAGER")


def test_values_are_canonical_and_defaults_are_unset() -> None:
    s = space({"MAX_NUM_SEQS": [16, "16", 256, None], "ENABLE_PREFIX_CACHING": [True, False],
               "REPETITION_PENALTY": [1, 1.1]})
    values = {p.name: p.values for p in s.params}
    # Unset is not 256: it means 256 on CPU but vLLM's own choice on a GPU.
    assert values["MAX_NUM_SEQS"] == ("16", "256", None)
    assert values["ENABLE_PREFIX_CACHING"] == (None, "0")
    assert values["REPETITION_PENALTY"] == (None, "1.1")


def test_glob_keeps_checkpoints_only(tmp_path: Path) -> None:
    for name in ("a", "b", "c.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "logs").mkdir()
    s = space({"MODEL_DIR": [None, f"{tmp_path}/*"]})
    assert s.params[0].values == (None, str(tmp_path / "a"), str(tmp_path / "b"))
    empty = space({"MODEL_DIR": [None, f"{tmp_path}/nothing-*"]})
    assert empty.params[0].values == (None,)
    assert "matched no checkpoint" in empty.notes[0]


def test_set_pins_a_searched_setting() -> None:
    s = space({"MAX_NUM_SEQS": [8, 16], "MAX_NEW_TOKENS": [64]},
              env={"MAX_NUM_SEQS": "32", "ENFORCE_EAGER": "1"})
    assert [p.name for p in s.params] == ["MAX_NEW_TOKENS"]
    assert s.fixed == {"MAX_NUM_SEQS": "32", "ENFORCE_EAGER": "1"}


def test_plan_default_first_and_when_conditions() -> None:
    s = space({"SPECULATIVE_METHOD": ["none", "ngram"],
               "NUM_SPECULATIVE_TOKENS": {"values": [2, 6], "when": {"SPECULATIVE_METHOD":
                                                                    "ngram"}},
               "MAX_NEW_TOKENS": [64, 128]}, fixed={"ENFORCE_EAGER": True})
    grid = plan(s, "grid", None, 0).candidates
    assert grid[0].params == {} and grid[0].settings == {"ENFORCE_EAGER": "1"}
    # without ngram the token count is not searched: 2 (none) + 2 x 2 (ngram), default included
    assert len(grid) == 6
    assert len({c.key for c in grid}) == 6
    assert all("NUM_SPECULATIVE_TOKENS" not in c.params for c in grid
               if c.params.get("SPECULATIVE_METHOD") != "ngram")
    again = plan(s, "random", 4, seed=7).candidates
    assert [c.key for c in again] == [c.key for c in plan(s, "random", 4, seed=7).candidates]
    assert again[0].key == grid[0].key and len(again) == 4
    # asking for more than the space holds gives the whole space, each point once
    assert {c.key for c in plan(s, "random", 50, seed=1).candidates} == {c.key for c in grid}


def test_plan_skips_combinations_the_server_would_refuse() -> None:
    s = space({"NGRAM_PROMPT_LOOKUP_MIN": [1, 3], "NGRAM_PROMPT_LOOKUP_MAX": [2]})
    result = plan(s, "grid", None, 0)
    assert [c.params for c in result.candidates] == [
        {}, {"NGRAM_PROMPT_LOOKUP_MIN": "1", "NGRAM_PROMPT_LOOKUP_MAX": "2"}]
    assert "NGRAM_PROMPT_LOOKUP_MIN=3 is above" in result.skipped[0][1]
    assert check_combination({"MAX_NEW_TOKENS": "4096"}) is not None


def test_files_yaml_json_and_the_default_space(tmp_path: Path) -> None:
    data = {"parameters": {"MAX_NUM_SEQS": [8, 16]}, "fixed": {"ENFORCE_EAGER": 1}}
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    from_json, from_yaml = load_space(tmp_path / "s.json"), load_space(tmp_path / "s.yaml")
    assert from_json.params == from_yaml.params and from_json.fixed == from_yaml.fixed
    (tmp_path / "bad.yaml").write_text("parameters: [unclosed\n")
    with pytest.raises(LlmserveError, match="not valid YAML"):
        load_space(tmp_path / "bad.yaml")
    default = load_space(ROOT / "tune_space.yaml")
    names = {p.name for p in default.params}
    assert {"MAX_NUM_SEQS", "MAX_NUM_BATCHED_TOKENS", "ENABLE_PREFIX_CACHING",
            "SPECULATIVE_METHOD", "NUM_SPECULATIVE_TOKENS", "NGRAM_PROMPT_LOOKUP_MAX",
            "MAX_NEW_TOKENS", "REPETITION_PENALTY", "MODEL_DIR"} <= names


def test_cli_fails_before_any_trial(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("parameters:\n  MAX_NUM_SEQS: [8, lots]\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "auto_tune.py", "--space", str(tmp_path / "space.yaml"), "--out",
         str(out)], cwd=ROOT, capture_output=True, text=True, env=os.environ)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.strip().splitlines() == [
        f"llmserve tune: error: {tmp_path / 'space.yaml'}: parameters.MAX_NUM_SEQS='lots': Input "
        "should be a valid integer, unable to parse string as an integer"]
    assert not out.exists()


def test_random_plan_survives_a_new_checkpoint() -> None:
    """A glob that gains a variant (one more MODEL_DIR value) keeps most planned trials, so a
    rerun still resumes them instead of starting a different search."""
    before = space({"MAX_NUM_SEQS": [8, 16, 32], "MAX_NEW_TOKENS": [64, 96, 192],
                    "REPETITION_PENALTY": [1.05, 1.1, 1.2]})
    after = space({"MAX_NUM_SEQS": [8, 16, 32, 64], "MAX_NEW_TOKENS": [64, 96, 192],
                   "REPETITION_PENALTY": [1.05, 1.1, 1.2]})
    old = [c.key for c in plan(before, "random", 10, seed=3).candidates]
    new = {c.key for c in plan(after, "random", 10, seed=3).candidates}
    assert len(new & set(old)) >= 6
