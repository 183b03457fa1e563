"""The command line a newcomer meets first: --check (every ✓ and each kind of ✗), --send-test,
--help, --version, an unknown flag, empty settings values, LOG_FILE, a missing dependency."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SCRIPT, assert_no_secrets, base_env
from fake_bybit import FakeBybit
from fake_discord import FakeDiscord

import bybit_ws_notify as bot


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          encoding='utf-8', timeout=timeout, check=False)


def check(env: dict[str, str], *extra: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    """(exit status, {row name: (mark, text with its fix)}, whole output) of --check."""
    result = run(env, '--check', *extra)
    rows: dict[str, tuple[str, str]] = {}
    last = ''
    for line in result.stdout.splitlines():
        if line[:4] in ('  ✓ ', '  ✗ ', '  ! ', '  - '):
            name, _, text = line[4:].partition('  ')
            last = name.strip()
            rows[last] = (line[2], text.strip())
        elif line.strip().startswith('fix: ') and last:
            rows[last] = (rows[last][0], rows[last][1] + ' | ' + line.strip())
    return result.returncode, rows, result.stdout + result.stderr


@pytest.fixture
def env(tmp_path: Path, bybit: FakeBybit, discord: FakeDiscord) -> dict[str, str]:
    return base_env(bybit, discord, tmp_path / 'state.json')


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# --check #########################################################################################

def test_check_all_pass(env: dict[str, str], bybit: FakeBybit, discord: FakeDiscord) -> None:
    code, rows, output = check(env)
    assert code == 0, output
    assert {name: mark for name, (mark, _) in rows.items()} == {
        'Settings': '✓', 'Public stream': '✓', 'REST API': '✓', 'Clock': '✓', 'API key': '✓',
        'Account type': '✓', 'Private stream': '✓', 'Positions': '✓', 'Balances': '✓',
        'Discord webhook': '✓'}, output
    assert 'All checks passed.' in output
    assert rows['Account type'][1] == 'Unified Trading Account'
    assert rows['API key'][1].startswith('read-only, expires in ')
    assert rows['Balances'][1] == '1000.00 USDT; total equity 1000.00 USD'
    assert rows['Discord webhook'][1].startswith('"Fake Hook" posts to channel ')
    assert discord.messages == []  # a GET, nothing posted
    assert not Path(env['STATE_FILE']).exists()  # a check leaves nothing behind
    assert [r['path'] for r in bybit.rest_requests if r['method'] != 'GET'] == []
    assert_no_secrets(output, bybit.api_secret, discord.token)


def test_check_dns_failure_names_the_host_and_step(env: dict[str, str]) -> None:
    env['BYBIT_WS_PUBLIC_URL'] = 'wss://stream.bybit.invalid/v5/public/linear'
    code, rows, output = check(env)
    assert code == 1
    mark, text = rows['Public stream']
    assert mark == '✗'
    assert text.startswith('stream.bybit.invalid: DNS failed: cannot resolve stream.bybit.invalid')
    assert 'fix: check the host name in BYBIT_WS_PUBLIC_URL' in text
    assert rows['REST API'][0] == '✓'
    assert '1 check(s) failed' in output


def test_check_tcp_failure(env: dict[str, str]) -> None:
    env['BYBIT_REST_URL'] = f'http://127.0.0.1:{closed_port()}'
    code, rows, _ = check(env)
    assert code == 1
    assert rows['REST API'][0] == '✗'
    assert '127.0.0.1: TCP failed: cannot connect to 127.0.0.1 port' in rows['REST API'][1]


def test_check_tls_failure(env: dict[str, str], bybit: FakeBybit) -> None:
    # The fake's plain-HTTP port spoken to as https: the TLS handshake fails, which is what a
    # proxy or a wrong port does.
    env['BYBIT_REST_URL'] = bybit.rest_url.replace('http://', 'https://')
    code, rows, _ = check(env)
    assert code == 1
    mark, text = rows['REST API']
    assert mark == '✗'
    assert ': TLS failed: TLS handshake with 127.0.0.1 failed' in text
    assert 'fix: something between you and the host intercepts TLS' in text


def test_check_http_failure_on_a_websocket_path(env: dict[str, str], bybit: FakeBybit) -> None:
    env['BYBIT_WS_PUBLIC_URL'] = bybit.ws_base + '/v5/public/nothing'
    code, rows, _ = check(env)
    assert code == 1
    assert rows['Public stream'][0] == '✗'
    assert 'HTTP failed' in rows['Public stream'][1]


def test_check_wrong_key(env: dict[str, str], bybit: FakeBybit) -> None:
    env['BYBIT_API_KEY'] = 'not-the-key'
    code, rows, output = check(env)
    assert code == 1
    mark, text = rows['API key']
    assert mark == '✗'
    assert text.startswith('Bybit rejected it (10003 API key is invalid.)')
    assert 'fix: the key does not exist on this environment' in text
    assert_no_secrets(output, bybit.api_secret)


def test_check_webhook_404(env: dict[str, str], discord: FakeDiscord) -> None:
    discord.delete_webhook()
    code, rows, output = check(env)
    assert code == 1
    mark, text = rows['Discord webhook']
    assert mark == '✗'
    assert text.startswith('Discord answered 404: the webhook does not exist')
    assert 'fix: create a webhook' in text
    assert_no_secrets(output, discord.token)


def test_check_clock_skew(env: dict[str, str], bybit: FakeBybit) -> None:
    bybit.server_time_offset_ms = 5000
    code, rows, _ = check(env)
    assert code == 1
    mark, text = rows['Clock']
    assert mark == '✗'
    assert text.startswith('this machine is 50') and 'ms behind Bybit' in text
    assert 'fix: turn on time sync: sudo timedatectl set-ntp true' in text
    assert rows['API key'][0] == '✓'  # signed with the measured offset, so the rest works


def test_check_classic_account(env: dict[str, str], bybit: FakeBybit) -> None:
    bybit.api_key_info['uta'] = 0
    code, rows, _ = check(env)
    assert code == 1
    assert rows['Account type'][0] == '✗'
    assert 'classic account' in rows['Account type'][1]


def test_check_bad_setting_is_one_row(env: dict[str, str]) -> None:
    env['BYBIT_PERIOD'] = '7'
    code, rows, _ = check(env)
    assert code == 1
    assert list(rows) == ['Settings']
    assert rows['Settings'][1].startswith("BYBIT_PERIOD='7': accepts")


def test_check_public_only_and_console(env: dict[str, str]) -> None:
    for name in ('BYBIT_API_KEY', 'BYBIT_API_SECRET', 'DISCORD_WEBHOOK_URL'):
        env[name] = ''
    env['DISCORD_NOTIFY'] = 'false'
    code, rows, output = check(env)
    assert code == 0, output
    assert rows['API key'] == ('-', 'none: public-only (candle alerts)')
    assert rows['Discord webhook'] == ('-', 'none: alerts print to the console')


def test_check_send_test_posts_one_of_each_kind_marked(env: dict[str, str],
                                                       discord: FakeDiscord) -> None:
    code, rows, output = check(env, '--send-test')
    assert code == 0, output
    assert rows['Test alerts'][0] == '✓'
    embeds = discord.embeds()
    assert len(embeds) == len(bot.sample_alerts()) >= 7
    assert all(e['title'].startswith('[TEST] ') for e in embeds)
    assert all(e['footer']['text'].startswith('test alert from --send-test') for e in embeds)
    kinds = ' '.join(e['title'] for e in embeds)
    for word in ('Order', 'Fill', 'Position', 'Balance', 'closed', 'down', 'restored'):
        assert word in kinds
    assert discord.violations == []


def test_check_send_test_in_console_mode_prints_the_samples(env: dict[str, str]) -> None:
    env.update(DISCORD_NOTIFY='false', DISCORD_WEBHOOK_URL='')
    code, rows, output = check(env, '--send-test')
    assert code == 0, output
    assert rows['Test alerts'] == ('✓', f'{len(bot.sample_alerts())} printed above (console mode)')
    assert re.search(r'^\d\d:\d\d:\d\d \[TEST\] Fill: Sell 0\.5 BTC BTCUSDT', output, re.MULTILINE)


def test_send_test_needs_check(env: dict[str, str]) -> None:
    result = run(env, '--send-test')
    assert result.returncode == 2
    assert '--send-test goes with --check' in result.stderr


# --help, --version, unknown flags ################################################################

def test_help_lists_every_setting_with_its_value_and_masks_secrets(env: dict[str, str],
                                                                   discord: FakeDiscord,
                                                                   bybit: FakeBybit) -> None:
    env['BYBIT_PERIOD'] = '15'
    result = run(env, '--help')
    assert result.returncode == 0
    for name in bot._SETTING_NAMES:
        assert f'\n  {name} ' in result.stdout
    assert '  BYBIT_PERIOD            15  (env)' in result.stdout
    assert '  BYBIT_CATEGORY          \'\'  (default)' in result.stdout
    for flag in ('--check', '--send-test', '--help', '--version'):
        assert flag in result.stdout
    assert_no_secrets(result.stdout, bybit.api_secret, discord.token)
    assert bybit.api_secret[:8] not in result.stdout  # not even the secret's first characters
    assert '  BYBIT_API_SECRET        *** (set)  (env)' in result.stdout
    assert '/webhooks/' in result.stdout  # the URL is shown, its token masked


def test_version() -> None:
    result = run(dict(os.environ), '--version')
    assert (result.returncode, result.stdout) == (0, f'bybit_ws_notify {bot.__version__}\n')


@pytest.mark.parametrize('flag', ['--chek', '-x', 'run'])
def test_unknown_flag_exits_2_without_starting(env: dict[str, str], bybit: FakeBybit,
                                               flag: str) -> None:
    result = run(env, flag)
    assert result.returncode == 2
    assert result.stderr.startswith(f'bybit_ws_notify: unknown option {flag}')
    assert bybit.public_connects == bybit.private_connects == 0
    assert bybit.rest_requests == []


# Empty values, warnings, LOG_FILE ################################################################

def test_every_empty_setting_means_the_default(tmp_path: Path) -> None:
    defaults = bot.load_settings({'STATE_FILE': str(tmp_path / 's.json')})
    empty = bot.load_settings({**{name: '' for name in bot._SETTING_NAMES},
                               'STATE_FILE': str(tmp_path / 's.json')})
    assert empty._replace(state_file=defaults.state_file) == defaults
    spaces = bot.load_settings({**{name: '  ' for name in bot._SETTING_NAMES},
                                'STATE_FILE': str(tmp_path / 's.json')})
    assert spaces == defaults


def test_settings_fields_follow_the_spec() -> None:
    # the fields of _SPEC, in its order, then the derived ones
    assert bot.Settings._fields == tuple(row.field for row in bot._SPEC) + ('public_urls',)
    for row in bot._SPEC:
        assert hasattr(bot, row.name), row.name  # every row has its constant in the block


def test_webhook_without_notify_warns_once(tmp_path: Path, run_bot, discord: FakeDiscord) -> None:
    bot_ = run_bot(DISCORD_NOTIFY='false')
    bot_.wait_log('private stream ready')
    line = bot_.wait_log('DISCORD_WEBHOOK_URL is set but DISCORD_NOTIFY is false')
    assert 'alerts go to the console' in line
    assert bot_.count_log('DISCORD_WEBHOOK_URL is set') == 1
    bot_.wait_log('bybit-ws-notify started')  # printed, not posted
    assert bot_.stop() == 0
    assert discord.messages == []


@pytest.mark.parametrize(('url', 'problem'), [
    ('"https://discord.com/api/webhooks/123456789/Tok3n-Secret_value"', 'wrapped in quotes'),
    ('https://discord.com/channels/123456789/987654321', 'a link to a channel'),
    ('discord.com/api/webhooks/123456789/Tok3n-Secret_value', 'no scheme'),
])
def test_malformed_webhook_says_what_is_wrong_and_masks_the_token(tmp_path: Path, url: str,
                                                                  problem: str) -> None:
    with pytest.raises(bot.SettingError) as info:
        bot.load_settings({'STATE_FILE': str(tmp_path / 's.json'), 'DISCORD_NOTIFY': 'true',
                           'DISCORD_WEBHOOK_URL': url})
    message = str(info.value)
    assert problem in message
    assert 'Tok3n-Secret_value' not in message
    assert message.startswith('DISCORD_WEBHOOK_URL=')


def test_public_only_startup_line_reads_well(run_bot) -> None:
    bot_ = run_bot(BYBIT_API_KEY='', BYBIT_API_SECRET='', BYBIT_PERIOD='15')
    assert 'no API keys: public-only: candles of BTCUSDT × 15m' in bot_.wait_log('public-only')
    assert bot_.stop() == 0


def test_log_file_gets_the_log_redacted(run_bot, tmp_path: Path, bybit: FakeBybit,
                                        discord: FakeDiscord) -> None:
    log_file = tmp_path / 'bot.log'
    bot_ = run_bot(LOG_FILE=str(log_file))
    bot_.wait_log('private stream ready')
    assert bot_.stop() == 0
    text = log_file.read_text(encoding='utf-8')
    assert 'private stream ready' in text and 'stopped' in text
    assert_no_secrets(text, bybit.api_secret, discord.token)


def test_log_file_that_cannot_be_opened_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    env['LOG_FILE'] = str(tmp_path)  # a folder: it cannot be opened as a file (root or not)
    result = run(env)
    assert result.returncode == 2
    expected = f"bybit_ws_notify: bad setting: LOG_FILE={env['LOG_FILE']!r}: Is a directory (EISDIR)"
    assert result.stderr.strip().splitlines() == [expected], result.stderr


def test_log_file_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / 'bot.log'
    code = ('import bybit_ws_notify as b, logging\n'
            'b.LOG_FILE_MAX_BYTES = 2000\n'
            f'b.setup_logging("INFO", {str(log_file)!r})\n'
            'for n in range(1000): logging.getLogger("x").info("line %d", n)\n')
    subprocess.run([sys.executable, '-c', code], cwd=str(ROOT), check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'bot.log', 'bot.log.1', 'bot.log.2', 'bot.log.3', 'bot.log.4', 'bot.log.5']
    assert 'line 999' in log_file.read_text()


@pytest.mark.parametrize(('module', 'package'), [('requests', 'requests'),
                                                 ('websocket', 'websocket-client')])
def test_missing_dependency_is_one_line(tmp_path: Path, module: str, package: str) -> None:
    (tmp_path / f'{module}.py').write_text(f'raise ImportError("no", name={module!r})\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [(
        f'bybit_ws_notify: the Python package {package} is missing: run "python3 -m pip install '
        '-r requirements.txt" (in the venv of the README\'s quick start)')]




# Console mode and shutdown #######################################################################

def _ready(bot_, bybit: FakeBybit) -> None:
    bot_.wait_log('private stream ready', timeout=20)
    bybit.wait_subscribed('execution')


def test_console_prints_each_alert_with_its_event_time(run_bot, bybit: FakeBybit) -> None:
    bot_ = run_bot(DISCORD_NOTIFY='false', DISCORD_WEBHOOK_URL='', TZ='UTC')
    _ready(bot_, bybit)
    bot_.wait_log('bybit-ws-notify started')
    yesterday_ms = bybit.server_time_ms() - 26 * 3600 * 1000
    fill = bybit.make_execution(orderId='o-old', leavesQty='0', execQty='0.3', orderQty='0.3',
                                execTime=str(yesterday_ms))
    bybit.add_execution(fill)
    stamp = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(yesterday_ms / 1000))
    line = bot_.wait_log(r'Fill: ')
    assert line.startswith(f'{stamp} Fill: '), line
    assert bot_.stop() == 0


def test_console_marks_alerts_left_over_from_the_last_run(run_bot, bybit: FakeBybit,
                                                          discord: FakeDiscord) -> None:
    discord.delete_webhook()  # the first run cannot deliver: its alerts stay in the state file
    first = run_bot()
    _ready(first, bybit)
    first.wait_log('answered 404')
    assert first.stop() == 0
    second = run_bot(DISCORD_NOTIFY='false', DISCORD_WEBHOOK_URL='')
    line = second.wait_log(r'\[from the last run\] bybit-ws-notify started')
    assert re.match(r'^\d\d:\d\d:\d\d \[from the last run\] ', line), line
    _ready(second, bybit)
    fresh = second.wait_log(r'^\d\d:\d\d:\d\d bybit-ws-notify started')
    assert '[from the last run]' not in fresh
    assert second.stop() == 0


def test_shutdown_with_discord_down_says_what_it_waits_for_and_a_second_ctrl_c_drops_it(
        run_bot, bybit: FakeBybit, discord: FakeDiscord, tmp_path: Path) -> None:
    bot_ = run_bot()
    _ready(bot_, bybit)
    discord.wait_for(lambda es: any(e.get('title') == 'bybit-ws-notify started' for e in es))
    discord.fail_for(120, 502)
    bybit.add_execution(bybit.make_execution(orderId='o-1', leavesQty='0', execQty='0.3',
                                             orderQty='0.3'))
    bot_.wait_log('Discord unreachable')
    bot_.proc.send_signal(signal.SIGINT)
    line = bot_.wait_log('delivering .* queued alert')
    assert re.search(r'delivering 2 queued alert\(s\) to Discord \(unreachable, retrying\): '
                     r'waiting up to 10 s \(Ctrl-C again to stop now', line), line
    started = time.monotonic()
    bot_.proc.send_signal(signal.SIGINT)
    line = bot_.wait_log('second Ctrl-C')
    assert re.search(r"second Ctrl-C: not waiting for Discord; 2 undelivered alert\(s\) go to the "
                     r"state file .*state\.json for the next start", line), line
    assert bot_.wait_exit(10) == 130
    assert time.monotonic() - started < 5  # not the 10 s wait
    state = json.loads((tmp_path / 'state.json').read_text())
    assert [item['embed']['title'].split(':')[0] for item in state['outbox']] == [
        'Fill', 'bybit-ws-notify stopped']


def test_help_into_a_pipe_closed_early_is_quiet(env: dict[str, str]) -> None:
    # `python3 bybit_ws_notify.py --help | head`: head leaves after a few lines.
    proc = subprocess.Popen([sys.executable, str(SCRIPT), '--help'], env=env, cwd=str(ROOT),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b'Traceback' not in err, err.decode()


def test_check_probes_the_public_stream_of_each_candle_category(env: dict[str, str]) -> None:
    code, rows, output = check({**env, 'BYBIT_SYMBOL': 'BTCUSDT,spot:ETHUSDT'})
    assert code == 0, output
    assert rows['Public linear stream'][0] == rows['Public spot stream'][0] == '✓', output
    assert 'Public stream' not in rows
