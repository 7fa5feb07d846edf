"""The chat page at GET /ui: its files over HTTP, and the page itself in a real headless Chromium.

Fast part: the app over the fake engine (tests/fake_engine.py), served by uvicorn in a thread.
- plain HTTP: the page and its assets are served, ship as package data, load nothing from
  another host, stay out of the OpenAPI schema, and a wrong asset name is the app's 404;
- Chromium (Debian's /usr/bin/chromium, driven by Playwright; never `playwright install`):
  a chat round trip, the request the page sends (system prompt, temperature, max tokens, the
  conversation so far, stream_options), and the API key path with its error shown in the page.
Real-engine part (`engine`): the session's vLLM server; Chromium sends a prompt and sees the
answer grow chunk by chunk (a MutationObserver in the page records every text the answer
element had), then the tokens/s. The screenshot goes to the test's tmp_path, and also to
$UI_SCREENSHOT when set (for a person to look at).

The browser tests skip only where /usr/bin/chromium is absent (run_tests.sh installs it with
apt when it runs as root, as CI does).
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from setuptools.config.pyprojecttoml import read_configuration

from llmserve.server import ui
from llmserve.server.app import create_app
from llmserve.settings import Settings
from tests.asgi import serve_in_thread
from tests.conftest import Server
from tests.fake_engine import FakeEngineFactory
from tests.waiting import wait_app_ready

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing the browser would fetch by itself (this machine has no network).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 30_000  # fake engine: everything answers in milliseconds
ENGINE_TIMEOUT_MS = 180_000  # real engine on a shared 2-core CPU: an answer takes seconds
# Records every text the last answer element shows, in order, as the page changes it: the
# proof that the answer came in pieces, whatever the timing of the test's own polling.
RECORD_ANSWER = """() => {
  window.__answers = [];
  const log = () => {
    const texts = document.querySelectorAll('#messages .msg.assistant .text');
    const text = texts.length ? texts[texts.length - 1].textContent : '';
    const seen = window.__answers;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  };
  new MutationObserver(log).observe(document.getElementById('messages'),
    {childList: true, subtree: true, characterData: true});
}"""
LAST_ANSWER = "#messages .msg.assistant:last-child"


# ---- the app over the fake engine ----------------------------------------------------------


def page_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(model_dir=tmp_path, max_model_len=1024, max_new_tokens=32, **overrides)


@contextmanager
def serve_fake(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn in a thread, its fake engine ready; yields the base URL."""
    with serve_in_thread(app, lifespan="on") as url:
        wait_app_ready(app)
        yield url


@pytest.fixture(scope="module")
def fake_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = page_settings(tmp_path_factory.mktemp("ui"), system_prompt="Be brief.")
    with serve_fake(create_app(settings, FakeEngineFactory())) as url:
        yield url


@pytest.fixture(scope="module")
def http(fake_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_url, timeout=30) as client:
        yield client


def referenced_assets(html: str) -> list[str]:
    """The URLs the page loads (the empty data: icon aside, which only stops a favicon request)."""
    return [url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if url != "data:,"]


def test_page_is_html_with_its_assets(http: httpx.Client) -> None:
    page = http.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = referenced_assets(page.text)
    assert sorted(assets) == ["/ui/static/app.js", "/ui/static/style.css"]
    types = {"/ui/static/app.js": "text/javascript", "/ui/static/style.css": "text/css"}
    for path in assets:
        response = http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(types[path]), path
        assert response.text == (ui.STATIC / Path(path).name).read_text(encoding="utf-8")
    script = http.get("/ui/static/app.js").text
    for needle in ("/v1/chat/completions", "include_usage", "[DONE]", "/info", "Authorization"):
        assert needle in script, needle


def test_page_loads_nothing_from_another_host() -> None:
    """No CDN, no web font, no absolute URL: the page must work on a machine with no network."""
    for file in sorted(ui.STATIC.iterdir()):
        text = file.read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), file
        assert "@import" not in text and "url(" not in text, file


def test_unknown_asset_is_the_apps_404(http: httpx.Client) -> None:
    for path in ("/ui/static/nope.js", "/ui/static/index.html", "/ui/static/..%2F__init__.py",
                 "/ui/static/", "/ui/nope"):
        response = http.get(path)
        assert response.status_code == 404, path
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"], str), (path, body)
    assert http.post("/ui").status_code == 405
    assert set(http.post("/ui").json()) == {"error"}


def test_page_is_not_in_the_openapi_schema(http: httpx.Client) -> None:
    """The fuzzer (tests/http/test_fuzz.py) drives every documented operation; files are not API."""
    paths = http.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def test_static_files_ship_as_package_data() -> None:
    """Every file the page needs matches pyproject's package-data, so a wheel carries it."""
    config = read_configuration(ROOT / "pyproject.toml")  # as setuptools reads it to build
    patterns = config["tool"]["setuptools"]["package-data"]["llmserve.server.ui"]
    files = sorted(ui.STATIC.iterdir())
    assert {f.name for f in files} == {"index.html", *ui.ASSETS}
    for file in files:
        relative = file.relative_to(ui.STATIC.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# ---- Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian's chromium package; run_tests.sh installs it "
                    "with apt when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def chat_bodies(page: Any) -> list[dict[str, Any]]:
    """The bodies the page posts to /v1/chat/completions, as they are sent."""
    bodies: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/v1/chat/completions"):
            bodies.append(request.post_data_json)

    page.on("request", on_request)
    return bodies


def send(page: Any, prompt: str, timeout: int = TIMEOUT_MS) -> str:
    """Type `prompt`, press Enter, wait for the answer to end; the answer's text."""
    answers = page.locator("#messages .msg.assistant").count()
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    page.wait_for_function(
        """n => {
          const all = document.querySelectorAll('#messages .msg.assistant');
          return document.body.dataset.state === 'idle' &&
                 (all.length > n && all[all.length - 1].dataset.done === 'true' ||
                  !document.getElementById('error').hidden);
        }""",
        arg=answers, timeout=timeout,
    )
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    return page.locator(f"{LAST_ANSWER} .text").inner_text()


def open_page(page: Any, url: str, timeout: int = TIMEOUT_MS) -> None:
    page.goto(f"{url}/ui")
    page.wait_for_selector("#facts[data-ready='true']", timeout=timeout)
    page.wait_for_function("document.getElementById('model').textContent !== '?'",
                           timeout=timeout)


def test_chat_in_chromium_over_the_fake_engine(page: Any, fake_url: str) -> None:
    bodies = chat_bodies(page)
    open_page(page, fake_url)
    facts = page.locator("#facts").inner_text()
    assert "fake" in facts and "1024" in facts  # engine name and max_model_len from /info
    assert page.input_value("#system") == "Be brief."  # SYSTEM_PROMPT as the box's default
    assert page.input_value("#max-tokens") == "32"  # MAX_NEW_TOKENS likewise
    model = page.locator("#model").inner_text()

    page.fill("#system", "You are terse.")
    page.fill("#max-tokens", "20")
    page.locator("#temperature").fill("0.5")
    first = send(page, "hello there")
    assert first.startswith("echo:") and "hello there" in first
    second = send(page, "and again")
    assert second.startswith("echo:")

    assert len(bodies) == 2
    assert bodies[0]["model"] == model
    assert bodies[0]["stream"] is True
    assert bodies[0]["stream_options"] == {"include_usage": True}
    assert bodies[0]["temperature"] == 0.5 and bodies[0]["max_tokens"] == 20
    assert bodies[0]["messages"] == [{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": "hello there"}]
    assert bodies[1]["messages"] == [  # the follow-up carries the conversation
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "and again"},
    ]
    # The usage chunk's count: the fake engine counts a word as a token.
    assert page.locator("#stat-tokens").inner_text() == str(len(second.split()))
    assert page.locator("#stat-ttft").inner_text().endswith("ms")
    assert page.locator("#stat-finish").inner_text() in {"stop", "length"}


def test_api_key_in_chromium(browser: Any, tmp_path: Path) -> None:
    """With API_KEY set the page shows the 401's message; with the key typed in, it chats, and
    the key stays in the browser (localStorage) for the next visit."""
    settings = page_settings(tmp_path, api_key="sesame-123")
    with serve_fake(create_app(settings, FakeEngineFactory())) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/ui")
        page.wait_for_selector("#error:not([hidden])")
        assert "401" in page.locator("#error").inner_text()

        page.fill("#api-key", "sesame-123")
        page.dispatch_event("#api-key", "change")
        page.wait_for_function("document.getElementById('model').textContent !== '?'")
        assert page.locator("#error").is_hidden()
        assert send(page, "open up").startswith("echo:")
        page.reload()
        assert page.input_value("#api-key") == "sesame-123"

        page.fill("#api-key", "wrong")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#error:not([hidden])")
        assert "401" in page.locator("#error").inner_text()
        context.close()


# ---- the real engine -------------------------------------------------------------------------


@pytest.mark.engine
def test_streamed_chat_in_chromium(page: Any, server: Server, tmp_path: Path) -> None:
    page.set_default_timeout(ENGINE_TIMEOUT_MS)
    open_page(page, server.url, timeout=ENGINE_TIMEOUT_MS)
    facts = page.locator("#facts").inner_text()
    assert "float32" in facts  # the test server's DTYPE, read back from the engine's config
    page.evaluate(RECORD_ANSWER)

    answer = send(page, "Describe the sea in three sentences.", timeout=ENGINE_TIMEOUT_MS)
    seen: list[str] = page.evaluate("window.__answers")
    assert answer.strip()
    assert len(seen) >= 2, f"the answer appeared all at once: {seen}"
    for before, after in itertools.pairwise(seen):
        assert after.startswith(before) and len(after) > len(before), (before, after)
    assert seen[-1] == answer

    tokens_per_second = page.locator("#stat-tps").inner_text()
    assert float(tokens_per_second) > 0, tokens_per_second
    assert page.locator("#stat-ttft").inner_text() != "–"
    assert int(page.locator("#stat-tokens").inner_text()) >= len(seen)

    shot = tmp_path / "ui-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UI_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["UI_SCREENSHOT"])
