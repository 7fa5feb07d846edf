"""README.md is a short front door, and every relative link in it and in docs/ resolves to a
file: no anchors, which no test can keep in step with headings."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target), the target up to a space or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", flags=re.IGNORECASE)


def relative_links(page: Path) -> list[str]:
    """The targets of the page's Markdown links that point into the repository."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return [target for target in LINK.findall(text) if not EXTERNAL.match(target)]


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_docs_folder_has_pages() -> None:
    assert len(PAGES) > 1 and all(page.exists() for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        resolved = (page.parent / target).resolve()
        if "#" in target or not resolved.exists():
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)}: broken or anchored links {broken}"


def test_link_finder_sees_links_and_skips_code() -> None:
    page_text = (
        "[a](docs/x.md) ![b](img.png#y) [c](https://e.org) `[d](no.md)`\n"
        "```\n[e](no.md)\n```\n"
    )
    text = INLINE_CODE.sub("", FENCE.sub("", page_text))
    found = [t for t in LINK.findall(text) if not EXTERNAL.match(t)]
    assert found == ["docs/x.md", "img.png#y"]  # the second one fails: it has an anchor
