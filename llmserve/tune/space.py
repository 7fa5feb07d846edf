"""Load a search space (YAML or JSON) and validate every value with the Settings class.

Everything is checked before any trial starts, and a bad entry is one line naming it:

  parameters:                # searched settings, in order
    MAX_NUM_SEQS: [16, 64, 256]
    NUM_SPECULATIVE_TOKENS: {values: [2, 4], when: {SPECULATIVE_METHOD: ngram}}
    MODEL_DIR: [null, "results/quant/variants/*"]
  fixed:                     # every trial gets these (--env adds to and overrides them)
    MAX_MODEL_LEN: 2048

Values are what the setting takes (docs/settings.md); null is "unset", i.e. the
setting's default. A value equal to the default is the same as null, so no setting is ever
measured twice under two spellings. `when` searches a parameter only while earlier
parameters (or fixed settings) have one of the given values; otherwise it stays at its
default. Relative paths are relative to the repository root; a path with * ? or [ is a
glob, expanded to the checkpoint directories (those with a config.json) it matches, which
may be none.
"""

from __future__ import annotations

import difflib
import glob
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from llmserve.envdoc import defaults
from llmserve.errors import LlmserveError
from llmserve.harness.launch import env_value
from llmserve.paths import REPO_ROOT
from llmserve.settings import Settings, describe_error

Value = str | None  # a setting as the environment carries it; None: unset (the default)

# The tuner picks these itself: a free port on the loopback address for every trial.
RESERVED = {"HOST": "the tuner serves each trial on 127.0.0.1",
            "PORT": "each trial gets a free port"}
CHECKPOINT_FIELDS = {"model_dir", "speculative_draft_model"}
GLOB_CHARS = set("*?[")


class IsolatedSettings(Settings):
    """Settings from the given values only: the tuner's own environment must not leak in."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any,
                                   *sources: Any, **named: Any) -> tuple[Any, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Param:
    name: str  # the environment variable, upper case
    values: tuple[Value, ...]
    when: Mapping[str, frozenset[Value]] = field(default_factory=dict)  # effective values


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    fixed: Mapping[str, str]  # unset (null) fixed settings are simply left out
    source: str
    notes: tuple[str, ...] = ()  # e.g. a glob that matched nothing


def default_of(name: str) -> Value:
    return defaults()[name]


def effective(name: str, value: Value) -> Value:
    """What the server runs with: the value, or the default when unset."""
    return value if value is not None else default_of(name)


def field_name(key: Any, where: str) -> str:
    """The Settings field of an environment variable name; unknown names are an error."""
    if not isinstance(key, str):
        raise LlmserveError(f"{where}: setting names are strings, got {key!r}")
    name = key.upper()
    if name in RESERVED:
        raise LlmserveError(f"{where}: not a tunable setting ({RESERVED[name]})")
    if name.lower() not in Settings.model_fields:
        known = [f.upper() for f in Settings.model_fields]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LlmserveError(f"{where}: unknown setting{hint}; see docs/settings.md")
    return name


def _is_path_field(info: FieldInfo) -> bool:
    return info.annotation is Path or Path in get_args(info.annotation)


def canonical(name: str, value: Any, where: str) -> Value:
    """One value checked as the server would check it, rendered as its environment string."""
    if value is None:
        return None
    fname = name.lower()
    info = Settings.model_fields[fname]
    shown = f"{where}={value!r}"
    # Lax validation would read `true` as 1 and [..] as a JSON list: neither is meant here.
    if isinstance(value, bool) and info.annotation not in (bool, bool | None):
        raise LlmserveError(f"{shown}: a boolean is not a valid value of {name}")
    if isinstance(value, list | dict) and fname != "stop_strings":
        raise LlmserveError(f"{shown}: expected a single value, got a {type(value).__name__}")
    if _is_path_field(info) and isinstance(value, str):
        value = str(REPO_ROOT / Path(value).expanduser())  # absolute: the same from any cwd
    try:
        typed = getattr(IsolatedSettings(**{fname: value}), fname)
    except ValidationError as error:
        own = [e for e in error.errors() if e["loc"][:1] == (fname,)]
        if own:
            message = own[0]["msg"].removeprefix("Value error, ")
            raise LlmserveError(f"{shown}: {message}") from None
        # Only a cross-setting rule failed (e.g. NGRAM_PROMPT_LOOKUP_MIN > MAX against the
        # defaults): the value is fine alone; each trial's whole combination is checked later.
        kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        typed = TypeAdapter(kind).validate_python(value)
    rendered = env_value(typed)
    return None if rendered == default_of(name) else rendered


def _expand(name: str, raw: Any, where: str) -> tuple[list[Any], str | None]:
    """A path glob becomes the directories it matches (checkpoints only for model fields)."""
    fname = name.lower()
    if not (isinstance(raw, str) and GLOB_CHARS & set(raw)
            and _is_path_field(Settings.model_fields[fname])):
        return [raw], None
    matches = sorted(glob.glob(str(REPO_ROOT / raw)))
    if fname in CHECKPOINT_FIELDS:
        # A variant being written is <name>.partial; only finished checkpoints compete.
        matches = [m for m in matches
                   if (Path(m) / "config.json").is_file() and not m.endswith(".partial")]
    note = None if matches else f"{where}: glob {raw!r} matched no checkpoint"
    return matches, note


def _values(name: str, raw: Any, where: str) -> tuple[tuple[Value, ...], list[str]]:
    if not isinstance(raw, list):
        raise LlmserveError(f"{where}: expected a list of values, got {raw!r}")
    if not raw:
        raise LlmserveError(f"{where}: empty list of values")
    found: list[Value] = []
    notes: list[str] = []
    for item in raw:
        expanded, note = _expand(name, item, where)
        notes += [note] if note else []
        for value in expanded:
            rendered = canonical(name, value, where)
            if rendered not in found:
                found.append(rendered)
    if not found:
        raise LlmserveError(f"{where}: no values left ({'; '.join(notes)})")
    return tuple(found), notes


def _when(
    raw: Any, known: Mapping[str, tuple[Value, ...]], where: str
) -> dict[str, frozenset[Value]]:
    if not isinstance(raw, dict) or not raw:
        raise LlmserveError(f"{where}: expected a mapping like {{SPECULATIVE_METHOD: ngram}}")
    result = {}
    for key, wanted in raw.items():
        name = field_name(key, f"{where}.{key}")
        if name not in known:
            raise LlmserveError(f"{where}.{key}: not an earlier parameter or a fixed setting")
        wanted_list = wanted if isinstance(wanted, list) else [wanted]
        result[name] = frozenset(effective(name, canonical(name, w, f"{where}.{key}"))
                                 for w in wanted_list)
    return result


def parse_space(data: Any, source: str, env: Mapping[str, str] | None = None) -> Space:
    """The space of a loaded file's data; `env` (from --env) pins settings for every trial."""
    if not isinstance(data, dict):
        raise LlmserveError(f"{source}: expected a mapping with 'parameters' (and 'fixed')")
    unknown = set(data) - {"parameters", "fixed"}
    if unknown:
        raise LlmserveError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected 'parameters' "
                        "and optionally 'fixed'")
    fixed: dict[str, Value] = {}
    raw_fixed = data.get("fixed") or {}
    if not isinstance(raw_fixed, dict):
        raise LlmserveError(f"{source}: fixed: expected a mapping of settings")
    for key, value in raw_fixed.items():
        name = field_name(key, f"{source}: fixed.{key}")
        fixed[name] = canonical(name, value, f"{source}: fixed.{key}")
    pinned = dict(env or {})
    for key, value in pinned.items():
        name = field_name(key, f"--env {key}")
        fixed[name] = canonical(name, value if value != "" else None, f"--env {key}")
    raw_params = data.get("parameters")
    if not isinstance(raw_params, dict):
        raise LlmserveError(f"{source}: parameters: expected a mapping of settings to value lists")
    known: dict[str, tuple[Value, ...]] = {name: (value,) for name, value in fixed.items()}
    params: list[Param] = []
    notes: list[str] = []
    for key, spec in raw_params.items():
        where = f"{source}: parameters.{key}"
        name = field_name(key, where)
        if name in {k.upper() for k in pinned}:
            continue  # --env pins it for this run
        if name in fixed:
            raise LlmserveError(f"{where}: both searched and fixed; keep one")
        when: dict[str, frozenset[Value]] = {}
        if isinstance(spec, dict):
            extra = set(spec) - {"values", "when"}
            if extra or "values" not in spec:
                raise LlmserveError(f"{where}: expected {{values: [...], when: {{...}}}}, got "
                                f"keys {sorted(spec)}")
            if "when" in spec:
                when = _when(spec["when"], known, f"{where}.when")
            spec = spec["values"]
        values, found_notes = _values(name, spec, where)
        notes += found_notes
        known[name] = values
        params.append(Param(name, values, when))
    return Space(tuple(params), {k: v for k, v in fixed.items() if v is not None}, source,
                 tuple(notes))


def load_space(path: Path, env: Mapping[str, str] | None = None) -> Space:
    """Read and validate a .yaml/.yml/.json space file."""
    if not path.is_file():
        raise LlmserveError(f"search space file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0]
        kind = path.suffix.lstrip(".").upper()
        raise LlmserveError(f"{path}: not valid {kind}: {first}") from None
    return parse_space(data, str(path), env)


def check_combination(settings: Mapping[str, str]) -> str | None:
    """Why these settings cannot run together (the server would refuse them), or None."""
    try:
        IsolatedSettings(**{k.lower(): v for k, v in settings.items()})
    except ValidationError as error:
        return describe_error(error).replace("\n", "; ")
    return None
