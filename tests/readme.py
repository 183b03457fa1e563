"""Regenerates every console example of README.md from the current script, so the README cannot
drift from what the bot prints (tests/test_readme.py fails when it does).

    python tests/readme.py            # rewrite README.md in place
    python tests/readme.py --check    # exit 1 and show the difference when README.md is stale

Each example sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->` and is produced by
one function below, running bybit_ws_notify.py as a subprocess against the test fakes, as a user
would run it. Times, ports and ids differ from run to run; `masked()` hides only those when
comparing.
"""

from __future__ import annotations

import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = ROOT / 'README.md'
SCRIPT = ROOT / 'bybit_ws_notify.py'
sys.path[:0] = [str(HERE), str(ROOT)]

from fake_bybit import FakeBybit
from fake_discord import FakeDiscord

import bybit_ws_notify as bot

ORDER_ID = '5cf98598-39a7-459e-97bf-76ca765ee020'


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any setting, in UTC, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in bot._SETTING_NAMES}
    env.update(TZ='UTC', PYTHONUNBUFFERED='1', **extra)
    return env


def fake_env(bybit: FakeBybit, discord: FakeDiscord, state: Path, **extra: str) -> dict[str, str]:
    return clean_env(**{**bybit.env('linear'), 'BYBIT_SYMBOL': 'BTCUSDT', 'DISCORD_NOTIFY': 'true',
                        'DISCORD_WEBHOOK_URL': discord.url, 'STATE_FILE': str(state), **extra})


def run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=str(ROOT),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            encoding='utf-8', timeout=120, check=False)
    return (result.stdout + result.stderr).rstrip('\n')


def fakes() -> tuple[FakeBybit, FakeDiscord]:
    bybit, discord = FakeBybit().start(), FakeDiscord().start()
    bybit.wallet = bybit.make_wallet('USDT', '1000')
    return bybit, discord


# The examples ####################################################################################

def settings_table() -> str:
    lines = ['| Setting | Default | What it does |', '|---|---|---|']
    for row in bot._SPEC:
        lines.append(f'| `{row.name}` | `{getattr(bot, row.name)!r}` | {row.help} |')
    return '\n'.join(lines)


def bool_words() -> str:
    return f'Booleans take {", ".join(f"`{t}`/`{f}`" for t, f in zip(bot._TRUE, bot._FALSE))}.'


def check_ok() -> str:
    bybit, discord = fakes()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return '$ python3 bybit_ws_notify.py --check\n' + run(
                fake_env(bybit, discord, Path(tmp) / 's.json'), '--check')
    finally:
        bybit.stop()
        discord.stop()


def check_failed() -> str:
    bybit, discord = fakes()
    try:
        discord.delete_webhook()
        bybit.server_time_offset_ms = 2500
        with tempfile.TemporaryDirectory() as tmp:
            env = fake_env(bybit, discord, Path(tmp) / 's.json',
                           BYBIT_WS_PUBLIC_URL='wss://stream.bybit.invalid/v5/public/linear')
            return '$ python3 bybit_ws_notify.py --check\n' + run(env, '--check')
    finally:
        bybit.stop()
        discord.stop()


def play_scenario(bybit: FakeBybit) -> None:
    """A funding payment on the open long, a market sell of 0.5 BTC that fills in 3 pieces and
    closes it, a closed candle, and the balance change they bring: every figure here is what the
    fake Bybit sends."""
    base_ms = bybit.server_time_ms() - 30_500  # so the fills are half a second old
    candle_ms = bybit.server_time_ms() // 60_000 * 60_000 - 60_000  # the candle that just closed
    # Funding: Bybit puts the position size in execQty, the mark price in execPrice and the rate
    # in feeRate (docs/v5/websocket/private/execution.mdx).
    bybit.add_execution(bybit.make_execution(
        orderId='', execId='f1', side='Buy', execType='Funding', execQty='0.5',
        execPrice='95000.5', execValue='47500.25', feeRate='0.0001', execFee='4.750025',
        orderType='UNKNOWN',
        orderQty='0', leavesQty='0', execTime=str(base_ms + 29_000)))
    time.sleep(0.3)
    fills = [('0.2', '95901.5', '15'), ('0.2', '95900.1', '15'), ('0.1', '95899', '7.5')]
    order = bybit.make_order(orderId=ORDER_ID, side='Sell', orderType='Market', price='0',
                             qty='0.5', orderStatus='New', cumExecQty='0', cumExecValue='0',
                             avgPrice='', leavesQty='0.5', createdTime=str(base_ms + 30_000),
                             updatedTime=str(base_ms + 30_000), timeInForce='IOC')
    bybit.push_private('order', [order])
    time.sleep(0.3)
    for n, (qty, price, pnl) in enumerate(fills):
        left = f'{0.5 - sum(float(q) for q, _, _ in fills[:n + 1]):.1f}'
        bybit.add_execution(bybit.make_execution(
            orderId=ORDER_ID, execId=f'0ab1bdf7-{n}', side='Sell', execQty=qty, execPrice=price,
            orderQty='0.5', leavesQty=left, orderType='Market', closedSize=qty,
            execFee=f'{float(qty) * float(price) * 0.00055:.4f}',
            execPnl=pnl,
            execTime=str(base_ms + 30_100 + n)))
    time.sleep(0.3)
    bybit.push_private('order', [dict(order, orderStatus='Filled', cumExecQty='0.5',
                                      cumExecValue='47950.22', avgPrice='95900.44',
                                      leavesQty='0', updatedTime=str(base_ms + 30_103))])
    bybit.push_private('position', [bybit.make_position(
        ws=True, symbol='BTCUSDT', side='', size='0', entryPrice='94000', markPrice='95900',
        liqPrice='', unrealisedPnl='0', curRealisedPnl='37.5', updatedTime=str(base_ms + 30_103))])
    time.sleep(0.3)
    bybit.push_public('kline.1.BTCUSDT', [bybit.make_kline(
        start=candle_ms, end=candle_ms + 59_999, open='95800', high='95950', low='95750',
        close='95900.1', volume='152.335', timestamp=candle_ms + 60_000)])
    bybit.push_private('wallet', [bybit.make_wallet('USDT', '1037.5')])


def run_scenario(notify: bool) -> tuple:
    """(console output, embeds Discord received) of the scenario, with DISCORD_NOTIFY=notify."""
    bybit, discord = fakes()
    bybit.positions = [bybit.make_position(symbol='BTCUSDT', side='Buy', size='0.5',
                                           avgPrice='94000', markPrice='95800')]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out_path = Path(tmp) / 'out.txt'
            env = fake_env(bybit, discord, Path(tmp) / 's.json', DISCORD_NOTIFY=str(notify))
            if not notify:
                env['DISCORD_WEBHOOK_URL'] = ''

            def wait(word: str) -> None:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    seen = [e.get('title', '') for e in discord.embeds()] if notify else \
                        out_path.read_text(encoding='utf-8').splitlines()
                    if any(word in line for line in seen):
                        return
                    time.sleep(0.1)
                raise RuntimeError(f'no {word!r} in {seen}')

            with out_path.open('w', encoding='utf-8') as out:
                proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, cwd=str(ROOT),
                                        stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.DEVNULL)
                try:
                    wait('bybit-ws-notify started')
                    bybit.wait_subscribed('wallet')
                    bybit.wait_subscribed('kline.1.BTCUSDT')
                    play_scenario(bybit)
                    wait('Balance USDT')
                    time.sleep(0.5)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
            return out_path.read_text(encoding='utf-8'), discord.embeds()
    finally:
        bybit.stop()
        discord.stop()


def console_alerts() -> str:
    """What DISCORD_NOTIFY=false prints, from the start to the balance change."""
    text, _ = run_scenario(notify=False)
    return re.split(r'^\S+ bybit-ws-notify stopped', text, flags=re.MULTILINE)[0].rstrip('\n')


def discord_embeds() -> list:
    """The same scenario posted to the fake Discord: the real embed JSON, for the picture."""
    _, embeds = run_scenario(notify=True)
    return [e for e in embeds if e.get('title') != 'bybit-ws-notify stopped']


GENERATORS: dict[str, Callable[[], str]] = {
    'settings-table': settings_table,
    'bool-words': bool_words,
    'check-ok': check_ok,
    'check-failed': check_failed,
    'console-alerts': console_alerts,
}
_BLOCK = re.compile(r'<!-- generated: (?P<name>[\w-]+) -->\n?(?P<body>.*?)\n?<!-- end: (?P=name) -->',
                    re.DOTALL)


def render(text: str) -> str:
    """text with every generated block replaced by fresh output of the script."""
    def fill(match: re.Match) -> str:
        body = GENERATORS[match['name']]()
        if match['body'].startswith('```'):
            body = f'```\n{body}\n```'
        return f'<!-- generated: {match["name"]} -->\n{body}\n<!-- end: {match["name"]} -->'
    return _BLOCK.sub(fill, text)


def masked(text: str) -> str:
    """What may differ between two honest runs: clock times, ports, durations, day counts, ids."""
    text = re.sub(r'\d\d:\d\d:\d\d(\.\d+)?', 'hh:mm:ss', text)
    text = re.sub(r'127\.0\.0\.1:\d+', '127.0.0.1:port', text)
    text = re.sub(r'\d+ ms (behind|ahead of)', 'N ms off', text)
    text = re.sub(r'\d{4}-\d\d-\d\d', 'yyyy-mm-dd', text)
    text = re.sub(r'expires in \d+ day', 'expires in N day', text)
    text = re.sub(r'channel \d+', 'channel N', text)
    return re.sub(r'Uptime: .*', 'Uptime: N', text)


def main() -> int:
    current = README.read_text(encoding='utf-8')
    fresh = render(current)
    if '--check' in sys.argv[1:]:
        if masked(fresh) == masked(current):
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(True), fresh.splitlines(True), 'README.md', 'regenerated'))
        return 1
    README.write_text(fresh, encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
