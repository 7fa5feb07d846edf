"""Model resolution, the embedded model's preparation, and the ModelScope download plan."""

from pathlib import Path

import pytest

from llmserve.download import download, download_plan
from llmserve.errors import ModelNotFound
from llmserve.model import DONE_MARKER, prepare_embedded, resolve_model_dir
from llmserve.settings import Settings


def test_embedded_model_is_prepared_once() -> None:
    cache = Settings().cache_dir
    path = prepare_embedded(cache)  # done by the set-up already: must return at once
    weights = path / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert prepare_embedded(cache) == path
    assert weights.stat().st_mtime_ns == before
    for name in ("config.json", "tokenizer.json", "chat_template.jinja", DONE_MARKER):
        assert (path / name).exists(), name
    assert resolve_model_dir(Settings()) == path.resolve()


def test_model_dir_wins(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, model_id="org/name")
    assert resolve_model_dir(settings) == tmp_path.resolve()
    assert download_plan(settings) is None


def test_model_id_served_from_models_root(tmp_path: Path) -> None:
    settings = Settings(model_id="org/name", models_root=tmp_path)
    with pytest.raises(ModelNotFound, match=r"download_model\.py"):
        resolve_model_dir(settings)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert resolve_model_dir(settings) == (tmp_path / "org" / "name").resolve()


def test_download_arguments_and_skip(tmp_path: Path) -> None:
    settings = Settings(
        model_id="qwen/Qwen2.5-0.5B-Instruct", model_revision="v1.0", models_root=tmp_path
    )
    calls: list[dict] = []

    def fetch(**kwargs: object) -> str:  # stands in for modelscope.snapshot_download
        calls.append(kwargs)
        target = Path(str(kwargs["local_dir"]))
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        return str(target)

    path = download(settings, fetch=fetch)
    assert path == tmp_path / "qwen" / "Qwen2.5-0.5B-Instruct"
    assert calls[0]["model_id"] == "qwen/Qwen2.5-0.5B-Instruct"
    assert calls[0]["revision"] == "v1.0"
    assert calls[0]["local_dir"] == str(path)
    assert download(settings, fetch=fetch) is None  # already there: nothing fetched again
    assert len(calls) == 1
    assert download_plan(Settings()) is None  # embedded model: nothing to download


def test_snapshot_download_accepts_the_plan(tmp_path: Path) -> None:
    """The plan's keywords are ones modelscope's real snapshot_download takes."""
    import inspect

    from modelscope import snapshot_download

    plan = download_plan(Settings(model_id="org/name", models_root=tmp_path))
    assert plan is not None
    inspect.signature(snapshot_download).bind(**plan)
