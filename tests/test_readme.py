"""README.md tells the truth: its console examples are what the current script prints, its
settings table is the settings table of the script, its links point at its own headings."""

from __future__ import annotations

import json
import re

import readme

import bybit_ws_notify as bot

TEXT = readme.README.read_text(encoding='utf-8')


def test_console_examples_are_output_of_the_current_script() -> None:
    fresh = readme.render(TEXT)
    assert readme.masked(fresh) == readme.masked(TEXT), (
        'README.md has drifted from the script: run `python tests/readme.py` and commit')


def test_every_generated_block_is_in_the_readme() -> None:
    found = set(re.findall(r'<!-- generated: ([\w-]+) -->', TEXT))
    assert found == set(readme.GENERATORS)


def test_boolean_words_are_those_the_code_accepts() -> None:
    words = re.findall(r'`(\w+)`', TEXT.split('Booleans take', 1)[1].split('.', 1)[0])
    assert sorted(words) == sorted(bot._TRUE + bot._FALSE)
    for word in words:
        assert bot._as_bool('X', word) is (word in bot._TRUE)


def _slug(heading: str) -> str:
    # GitHub's anchor: lower case, punctuation dropped (letters of any script kept), spaces -> -.
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_contents_and_links_point_at_headings() -> None:
    anchors = {_slug(h) for h in re.findall(r'^#{2,3} (.+)$', TEXT, re.MULTILINE)}
    links = set(re.findall(r'\]\(#([^)]+)\)', TEXT))
    assert links - anchors == set()
    contents = TEXT.split('## Contents', 1)[1].split('\n## ', 1)[0]
    assert len(re.findall(r'\]\(#', contents)) == len(re.findall(r'^## ', TEXT, re.MULTILINE)) - 1


def test_performance_comes_after_usage() -> None:
    headings = re.findall(r'^## (.+)$', TEXT, re.MULTILINE)
    assert headings.index('Performance') > headings.index('Running it for months')
    assert headings.index('Performance') > headings.index('Using BybitWS in your own code')


def test_the_picture_is_committed_and_embedded() -> None:
    assert '](docs/alerts.png)' in TEXT
    assert (readme.ROOT / 'docs' / 'alerts.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_picture_shows_what_the_bot_posts_now() -> None:
    """docs/alerts.png is drawn from docs/alerts.json; when the embeds change, this fails until
    `python tests/render_alerts.py` redraws it (CI has no Chromium, so it checks the JSON)."""
    drawn = (readme.ROOT / 'docs' / 'alerts.json').read_text(encoding='utf-8')
    fresh = json.dumps(readme.discord_embeds(), indent=1, ensure_ascii=False) + '\n'
    assert readme.masked(fresh) == readme.masked(drawn), (
        'the embeds changed: run `python tests/render_alerts.py` and commit docs/')
