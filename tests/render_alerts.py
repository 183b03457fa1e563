"""Draws the README's picture of Discord alerts (docs/alerts.png) from the real embed JSON.

It plays the README's scenario (tests/readme.py) against the fake Bybit and the fake Discord,
takes the embeds the bot posted, exactly as posted, writes them into an HTML page styled like
Discord's dark theme (docs/alerts.html, kept for review), and screenshots it with headless
Chromium:

    apt-get install chromium      # once
    python tests/render_alerts.py

CI does not run this (it needs Chromium); the PNG is committed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile

import readme

DOCS = readme.ROOT / 'docs'
WIDTH = 560

CSS = """
body { margin: 0; background: #313338; font-family: 'gg sans', 'Noto Sans', 'DejaVu Sans', sans-serif;
       color: #dbdee1; font-size: 15px; }
.msg { display: flex; padding: 8px 16px 4px 16px; }
.avatar { width: 40px; height: 40px; border-radius: 50%; background: #5865f2; color: #fff;
          display: flex; align-items: center; justify-content: center; font-weight: 700;
          margin-right: 16px; flex: none; font-size: 14px; }
.name { color: #f2f3f5; font-weight: 600; }
.tag { background: #5865f2; color: #fff; font-size: 10px; border-radius: 3px; padding: 1px 4px;
       margin-left: 4px; vertical-align: 2px; }
.time { color: #949ba4; font-size: 12px; margin-left: 6px; }
.embed { background: #2b2d31; border-left: 4px solid; border-radius: 4px; margin-top: 6px;
         padding: 8px 16px 12px 12px; max-width: WIDTHpx; }
.title { color: #f2f3f5; font-weight: 600; margin: 4px 0 2px 0; }
.desc { font-size: 14px; white-space: pre-wrap; margin-top: 4px; }
.fields { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px 12px; margin-top: 8px; }
.field { font-size: 14px; }
.field.wide { grid-column: 1 / -1; }
.fname { color: #f2f3f5; font-weight: 600; margin-bottom: 1px; }
.fvalue { white-space: pre-wrap; }
.footer { color: #b5bac1; font-size: 12px; margin-top: 8px; }
""".replace("WIDTH", str(WIDTH))


def markdown(text: str) -> str:
    """The little markdown the bot uses: its backslash escapes, shown as Discord shows them."""
    return html.escape(re.sub(r'\\([\\*_`~|>#\[\]()-])', r'\1', text))


def embed_html(embed: dict) -> str:
    colour = f"#{embed.get('color', 0x4f545c):06x}"
    parts = [f'<div class="embed" style="border-color:{colour}">']
    if embed.get('title'):
        parts.append(f'<div class="title">{markdown(embed["title"])}</div>')
    if embed.get('description'):
        parts.append(f'<div class="desc">{markdown(embed["description"])}</div>')
    if embed.get('fields'):
        parts.append('<div class="fields">')
        for field in embed['fields']:
            wide = '' if field.get('inline') else ' wide'
            parts.append(f'<div class="field{wide}"><div class="fname">{markdown(field["name"])}'
                         f'</div><div class="fvalue">{markdown(field["value"])}</div></div>')
        parts.append('</div>')
    footer = (embed.get('footer') or {}).get('text')
    stamp = embed.get('timestamp')
    if footer or stamp:
        when = ''
        if stamp:
            moment = dt.datetime.fromisoformat(stamp.replace('Z', '+00:00'))
            when = f'{moment:%H:%M}'
        parts.append(f'<div class="footer">{markdown(footer or "")}'
                     f'{" • " if footer and when else ""}{when}</div>')
    parts.append('</div>')
    return ''.join(parts)


def page(embeds: list) -> str:
    body = ''.join(embed_html(e) for e in embeds)
    return (f'<!doctype html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body>'
            '<div class="msg"><div class="avatar">B</div><div><span class="name">Bybit</span>'
            '<span class="tag">APP</span><span class="time">Today</span>'
            f'{body}</div></div>'
            '<script>document.body.dataset.height = document.body.scrollHeight + 12</script>'
            '</body></html>')


def main() -> int:
    chromium = shutil.which('chromium') or shutil.which('chromium-browser') or \
        shutil.which('google-chrome')
    if chromium is None:
        print('render_alerts: needs Chromium (apt-get install chromium)', file=sys.stderr)
        return 1
    embeds = readme.discord_embeds()
    DOCS.mkdir(exist_ok=True)
    (DOCS / 'alerts.json').write_text(json.dumps(embeds, indent=1, ensure_ascii=False) + '\n',
                                      encoding='utf-8')
    html_path = DOCS / 'alerts.html'
    html_path.write_text(page(embeds), encoding='utf-8')
    with tempfile.TemporaryDirectory() as profile:
        def chrome(*args: str) -> str:
            return subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu',
                                   '--hide-scrollbars', f'--user-data-dir={profile}',
                                   '--force-device-scale-factor=1', *args, html_path.as_uri()],
                                  check=True, capture_output=True, text=True, timeout=120).stdout
        # The page's height, measured by the page itself, so the picture ends with the last embed.
        height = int(re.search(r'data-height="(\d+)"', chrome('--dump-dom'))[1])
        chrome(f'--window-size={WIDTH + 120},{height}', f'--screenshot={DOCS / "alerts.png"}')
    print(f'wrote {DOCS / "alerts.png"} from {len(embeds)} embeds')
    return 0


if __name__ == '__main__':
    sys.exit(main())
