"""Every relative link in the README, ARCHITECTURE.md and docs/ leads somewhere: to a file that
exists and, where it names one, to a heading of that page. Moving a section between pages
must not leave a link to where it used to be."""

import re
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The page without its code: a `[x](y)` inside a code block or span is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text lower-cased, punctuation dropped
    (hyphens and underscores kept), each space a hyphen."""
    text = heading.replace("`", "").lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading anchors on its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z]+:", target)]


def test_slugs_follow_githubs_rule():
    assert slug("Stored baselines: `perfgate run --save` and `compare --baseline`") == (
        "stored-baselines-perfgate-run---save-and-compare---baseline")  # fmt: skip
    assert slug("Data drift: the same model, two datasets") == "data-drift-the-same-model-two-datasets"
    assert slug("Did upgrading onnxruntime slow our model?") == "did-upgrading-onnxruntime-slow-our-model"


def test_links_in_code_are_not_links_and_urls_are_not_checked(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](a.md), `[b](b.md)`, [web](https://example.com)\n```text\n[c](c.md)\n```\n")
    assert relative_links(page) == ["a.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading '{anchor}' in {destination.relative_to(ROOT)}")
    assert not broken, broken
