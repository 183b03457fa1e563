"""Reliability, round two: the harder faults, end to end against the fakes.

Each test names the fault it injects: a failed backfill with a live fill before the retry (HTTP
403, 502, a timeout, retCode 10006), failed order and position resyncs, a gap older than Bybit's
history, a skewed clock on a first start, a batch Discord refuses with a 429 on the way, a stop
during slow startup reads, SIGHUP, a closed stdout, a state folder that vanishes or turns
read-only, unreachable hosts, and what LOG_LEVEL=DEBUG shows. The soak test forces 50
private reconnects with a fill in each gap; the last test checks the gap bookkeeping alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPT, assert_no_secrets, base_env, state_ids, titles
from test_discord_faults import (
    STARTED,
    STOPPED,
    assert_once_in_order,
    delivered,
    gaps_after,
    push_fill,
    read_state,
    start_ready,
    wait_delivered,
    wait_title,
)

import bybit_ws_notify as notify

EXEC_LIST = '/v5/execution/list'


def recovered_footers(discord) -> list[str]:
    return [e['footer']['text'] for e in discord.embeds()
            if 'recovered after a disconnect' in (e.get('footer') or {}).get('text', '')]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.05)


def write_state(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps({'version': 1, **fields}), encoding='utf-8')


def inject(bybit, fault: str, path: str = EXEC_LIST) -> None:
    if fault == '403':
        bybit.fail_rest(path, status=403)
    elif fault == '502':
        bybit.fail_rest(path, status=502)
    elif fault == '10006':
        bybit.fail_rest(path, times=5, ret_code=10006)  # more than the client's own 5 tries
    elif fault == 'timeout':
        bybit.fail_rest(path, hang_s=6)                 # past the read timeout (REST_TIMEOUT_S=2)
    else:
        raise ValueError(fault)


def _gap_with_a_failed_backfill(bybit, discord, run_bot, tmp_path: Path, fault: str):
    """A bot that saw a fill 60 s ago; the private stream drops, two fills happen in the gap,
    the first backfill fails with `fault`, and a live fill comes before any retry."""
    now = bybit.server_time_ms()
    write_state(tmp_path / 'state.json', exec_watermark_ms=now - 120_000)  # a previous run
    bot = start_ready(run_bot, bybit, discord, REST_TIMEOUT_S='2')
    seen = push_fill(bybit, 0, execTime=str(now - 60_000))
    wait_delivered(discord, [seen])

    bybit.reject_handshake_status = 503
    bybit.drop('private')
    missed = []
    for n in (1, 2):  # more than BACKFILL_MARGIN_MS before the live fill below
        fill = bybit.make_execution(orderId=f'gap-{n}', execTime=str(now - 30_000 + n))
        bybit.add_execution(fill, push=False)
        missed.append(fill['execId'])
    inject(bybit, fault)
    bybit.reject_handshake_status = None
    bot.wait_log(r'(recovery|backfill) after the private reconnect failed', timeout=30)
    bybit.wait_subscribed('execution')
    live = push_fill(bybit, 3)
    wait_delivered(discord, [live])
    return bot, seen, missed, live


@pytest.mark.parametrize('fault', ['502', '10006', 'timeout'])
def test_failed_backfill_is_retried_from_where_the_gap_began(bybit, discord, run_bot, tmp_path,
                                                             fault):
    bot, seen, missed, live = _gap_with_a_failed_backfill(bybit, discord, run_bot, tmp_path, fault)
    time.sleep(0.5)  # the state file written after the live fill
    gap_start_ms = min(int(e['execTime']) for e in bybit.executions if e['execId'] in missed)
    assert read_state(tmp_path / 'state.json')['fills']['watermark_ms'] < gap_start_ms

    wait_delivered(discord, missed, timeout=30)
    bot.wait_log(r'recovered 2 fill\(s\) missed while disconnected', timeout=5)
    time.sleep(1)
    got = delivered(discord)
    assert sorted(got) == sorted([seen, live, *missed]), discord.dump()   # each exactly once
    assert len(recovered_footers(discord)) == 2
    assert bot.stop() == 0
    assert 'Traceback' not in bot.output


def test_403_pauses_rest_and_a_restart_still_recovers_the_gap(bybit, discord, run_bot, tmp_path):
    bot, seen, missed, live = _gap_with_a_failed_backfill(bybit, discord, run_bot, tmp_path, '403')
    line = bot.wait_log(r'(recovery|backfill) after the private reconnect failed')
    assert 'pausing REST for 10 min' in line, line
    assert re.search(r'retrying in (10 min|9 min 59 s)', line), line
    requests_after_403 = len(bybit.rest_requests)
    time.sleep(2)
    assert len(bybit.rest_requests) == requests_after_403  # nothing sent during the pause
    assert bot.stop() == 0
    assert read_state(tmp_path / 'state.json')['fills']['watermark_ms'] < int(
        next(e['execTime'] for e in bybit.executions if e['execId'] == missed[0]))

    bot2 = start_ready(run_bot, bybit, discord)
    wait_delivered(discord, missed, timeout=20)
    time.sleep(1)
    assert sorted(delivered(discord)) == sorted([seen, live, *missed]), discord.dump()
    assert bot2.stop() == 0


def test_failed_order_and_position_resyncs_are_retried(bybit, discord, run_bot):
    bot = start_ready(run_bot, bybit, discord)
    bybit.wait_subscribed('order')
    resting = bybit.make_order(orderId='rest-1', price='91000')
    bybit.open_orders.append(resting)
    bybit.push_private('order', [resting])
    wait_title(discord, 'Order New: Buy Limit 0.001 BTC BTCUSDT @ 91000')

    bybit.reject_handshake_status = 503
    bybit.drop('private')
    bybit.open_orders.remove(resting)  # it filled while the bot was away ...
    bybit.order_history.append(dict(resting, orderStatus='Filled', cumExecQty='0.001',
                                    avgPrice='91000'))
    bybit.positions.append(bybit.make_position(size='0.001', avgPrice='91000'))  # ... opening this
    bybit.fail_rest('/v5/order/realtime', times=5, ret_code=10006)
    bybit.fail_rest('/v5/position/list', status=502)
    time.sleep(0.5)
    bybit.reject_handshake_status = None
    bot.wait_log(r'(recovery|backfill) after the private reconnect failed', timeout=20)
    discord.wait_for(lambda es: any(e.get('title', '').startswith('Order Filled') for e in es),
                     timeout=15)
    discord.wait_for(lambda es: any(e.get('title', '').startswith('Position opened') for e in es),
                     timeout=15)
    assert len(recovered_footers(discord)) == 2, discord.dump()
    assert bot.stop() == 0


def test_a_gap_older_than_bybits_history_is_given_up_in_one_line(bybit, discord, run_bot,
                                                                 tmp_path):
    now = bybit.server_time_ms()
    write_state(tmp_path / 'state.json', exec_watermark_ms=now - 3 * 365 * 86_400_000)
    recent = bybit.make_execution(orderId='ten-days-ago', execTime=str(now - 10 * 86_400_000))
    bybit.add_execution(recent, push=False)
    bot = start_ready(run_bot, bybit, discord)
    line = bot.wait_log('cannot be recovered', timeout=20)
    years = re.findall(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC', line)
    assert len(years) == 2 and years[0] < years[1], line  # the time range given up on
    wait_delivered(discord, [recent['execId']], timeout=20)  # within 2 years: recovered
    windows = [r for r in bybit.rest_requests if r['path'] == EXEC_LIST]
    assert all(int(r['query']['endTime']) - int(r['query']['startTime']) <= 7 * 86_400_000
               for r in windows)
    bybit.drop('private')                       # a reconnect does not say it again
    wait_until(lambda: bot.count_log('private stream ready') >= 2, 15, 'the reconnect')
    time.sleep(1)
    assert bot.count_log('cannot be recovered') == 1
    assert bot.stop() == 0


# The clock #####################################################################################

@pytest.mark.parametrize('skew_s', [30, -30], ids=['machine-behind', 'machine-ahead'])
def test_first_start_watermark_uses_bybits_clock(bybit, discord, run_bot, skew_s):
    bybit.server_time_offset_ms = skew_s * 1000
    before = bybit.make_execution(orderId='before-start',
                                  execTime=str(bybit.server_time_ms() - 15_000))
    bybit.add_execution(before, push=False)   # before the first start: never alerted
    bybit.reject_handshake_status = 503       # the streams cannot connect yet
    bot = run_bot()
    bot.wait_log('watching BTCUSDT', timeout=15)
    early = bybit.make_execution(orderId='early')  # in the first seconds, by Bybit's clock
    bybit.add_execution(early, push=False)
    bybit.reject_handshake_status = None
    wait_delivered(discord, [early['execId']], timeout=20)
    line = bot.wait_log(r'clock skew: this machine is \d+ ms')
    assert ('behind' if skew_s > 0 else 'ahead of') in line
    time.sleep(1)
    assert before['execId'] not in delivered(discord)
    assert bot.stop() == 0


# Discord ########################################################################################

def test_refused_batch_goes_one_by_one_in_order_and_every_429_is_honoured(
        bybit, discord, run_bot):
    bot = start_ready(run_bot, bybit, discord)
    discord.poison = 'POISONLINK'                  # Discord refuses any embed holding this
    discord.fail_next(1, 503)                      # the first post fails: the rest queue up
    discord.pass_next(1)                           # the batch of four: 400 (the poison)
    discord.fail_next(1, 429, retry_after=0.57)    # the first alert alone: rate limited
    first = push_fill(bybit, 0)
    wait_until(lambda: discord.count_status(503) == 1, 10, 'the 503')
    poison = bybit.make_order(orderLinkId='POISONLINK')
    bybit.push_private('order', [poison])
    later = [push_fill(bybit, 1), push_fill(bybit, 2)]
    wait_delivered(discord, [first, *later])
    time.sleep(0.5)

    assert discord.count_status(400) == 2, discord.dump()   # the batch, the poison alone
    messages = [m['payload'] for m in discord.messages][1:]  # after the startup alert
    order = []
    for payload in messages:
        if payload.get('content'):
            assert poison['orderId'] in payload['content']
            order.append('plain')
        else:
            order += delivered_ids(payload)
    assert order == [first, 'plain', *later], discord.dump()
    gaps = gaps_after(discord, 429)
    assert gaps and min(gaps) >= 0.57, gaps
    logged = bot.wait_log('Discord refused an alert; sending it as plain text')
    assert 'POISONLINK' in logged and poison['orderId'] in logged   # the alert in full
    assert bot.stop() == 0
    assert_once_in_order(discord, [first, *later])


def delivered_ids(payload: dict) -> list[str]:
    return [m.group(1) for e in payload.get('embeds') or []
            for m in [re.search(r'\bexec (\S+)', (e.get('footer') or {}).get('text', ''))] if m]


# Stopping #######################################################################################

def test_sigterm_during_slow_startup_reads_stops_at_once_and_saves(bybit, discord, run_bot,
                                                                   tmp_path):
    bybit.rest_delay_s = 6.0                       # every REST call answers after 6 s
    bot = run_bot()
    wait_until(lambda: len(bybit.rest_requests) >= 1, 10, 'the first startup read')
    time.sleep(1)
    asked, asked_wall = time.monotonic(), time.time()
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait_exit(timeout=30) == 0
    took_s = time.monotonic() - asked
    print(f'stop during slow startup reads took {took_s:.2f} s')
    assert took_s < 12, bot.output                 # the drain time (10 s) + 2 s
    started_after = [r['path'] for r in bybit.rest_requests if r['time'] > asked_wall]
    assert started_after == [], started_after      # the remaining reads were skipped
    assert titles(discord)[-1] == STOPPED
    assert read_state(tmp_path / 'state.json')['outbox'] == []
    assert 'Traceback' not in bot.output


def test_worst_case_stop_rest_hanging_and_discord_hanging(bybit, discord, run_bot, tmp_path):
    bot = start_ready(run_bot, bybit, discord, STOP_DRAIN_S='3')
    bybit.fail_rest(EXEC_LIST, hang_s=30)          # the recovery's first read never answers
    bybit.drop('private')
    wait_until(lambda: not bybit.rest_fault_pending(), 10, 'the recovery read to hang')
    time.sleep(0.5)
    discord.hang_next(5, 30)                       # and no Discord post answers either
    asked = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait_exit(timeout=30) == 0
    took_s = time.monotonic() - asked
    print(f'worst-case stop took {took_s:.2f} s')
    assert took_s < 3 + 2, bot.output              # STOP_DRAIN_S + 2 s
    state = read_state(tmp_path / 'state.json')
    assert [i['embed']['title'] for i in state['outbox']] == [STOPPED]  # kept for next start


@pytest.mark.skipif(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN,
                    reason='the tests run under nohup: the bot inherits SIGHUP ignored and keeps '
                           'it so, on purpose (test_under_nohup_sighup_stays_ignored)')
def test_sighup_is_a_clean_stop(bybit, discord, run_bot, tmp_path):
    bot = start_ready(run_bot, bybit, discord)
    exec_id = push_fill(bybit, 0)
    wait_delivered(discord, [exec_id])
    assert bot.stop(signal.SIGHUP) == 0
    assert titles(discord)[-1] == STOPPED
    assert discord.embeds()[-1]['fields'][0]['value'] == 'SIGHUP'
    state = read_state(tmp_path / 'state.json')
    assert exec_id in state_ids(state) and state['outbox'] == []
    assert bot.count_log('INFO stopped$') == 1


def test_under_nohup_sighup_stays_ignored(bybit, discord, tmp_path):
    # The README's nohup recipe: nohup sets SIGHUP to "ignore", and a logout must not stop it.
    env = base_env(bybit, discord, tmp_path / 'state.json')
    log_path = tmp_path / 'bot.log'
    with open(log_path, 'w', encoding='utf-8') as out:
        proc = subprocess.Popen(['nohup', sys.executable, str(SCRIPT)], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_title(discord, STARTED)
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert proc.poll() is None, log_path.read_text()   # still running
            push_fill(bybit, 0)
            wait_until(lambda: any(t.startswith('Fill:') for t in titles(discord)), 10,
                       'a fill alert after the SIGHUP')
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert STOPPED in titles(discord) and 'SIGHUP' not in log_path.read_text()


def test_console_mode_survives_a_closed_stdout(bybit, discord, tmp_path):
    env = base_env(bybit, discord, tmp_path / 'state.json')
    env['DISCORD_NOTIFY'] = 'false'
    stderr_path = tmp_path / 'stderr.log'
    with open(stderr_path, 'w', encoding='utf-8') as stderr:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            lines = []
            for line in proc.stdout:   # the startup alert printed: the bot is up
                lines.append(line)
                if STARTED in line:
                    break
            proc.stdout.close()        # the `| tee` dies
            bybit.wait_subscribed('execution')
            push_fill(bybit, 0)
            wait_until(lambda: 'stdout is closed' in stderr_path.read_text(), 10, 'the log line')
            push_fill(bybit, 1)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = stderr_path.read_text()
    assert code == 0, log
    assert 'Traceback' not in log and 'Exception ignored' not in log, log
    assert log.count('stdout is closed') == 1
    assert re.search(r'WARNING alert: .*Fill: Buy', log), log   # alerts go to the log instead
    assert 'INFO stopped' in log


# The state folder ###############################################################################

@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """The folder refuses new files: chmod for a normal user; root ignores permissions, so the
    immutable attribute (chattr +i) instead, or the test is skipped."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(['chattr', '+i', str(folder)], check=False, capture_output=True).returncode != 0:
        pytest.skip('running as root and chattr +i is not available here')
    try:
        yield
    finally:
        subprocess.run(['chattr', '-i', str(folder)], check=True)


@pytest.mark.parametrize('fault', ['vanished', 'read-only'])
def test_state_folder_failing_is_one_line_and_alerts_still_flow(bybit, discord, run_bot, tmp_path,
                                                                fault):
    folder = tmp_path / 'state'
    folder.mkdir()
    state_file = folder / 'state.json'
    bot = start_ready(run_bot, bybit, discord, STATE_FILE=str(state_file))
    ids = [push_fill(bybit, 0)]
    wait_delivered(discord, ids)
    with contextlib.ExitStack() as broken:
        if fault == 'vanished':
            folder.rename(tmp_path / 'moved')
            broken.callback(lambda: (tmp_path / 'moved').rename(folder))
        else:
            broken.enter_context(read_only(folder))
        for n in range(1, 4):
            ids.append(push_fill(bybit, n))
        wait_delivered(discord, ids)              # alerts go on
        if fault == 'vanished':
            line = bot.wait_log('cannot write the state file')
            assert str(state_file) in line
            assert re.search(r'\((ENOENT|EACCES|EPERM|EROFS) \d+', line), line
            time.sleep(0.5)
            assert bot.count_log('cannot write the state file') == 1
        else:
            # The journal beside the file (STATE_FILE.log) is open and still takes each save
            # durably; only a whole rewrite of the file needs the folder. Nothing is lost.
            time.sleep(0.5)
            assert bot.count_log('cannot write the state file') == 0
            assert set(ids) <= set(state_ids(read_state(state_file)))
        assert 'Traceback' not in bot.output
    ids.append(push_fill(bybit, 4))
    wait_delivered(discord, ids)
    if fault == 'vanished':
        bot.wait_log(r'state file .* written again, after \d+ failed write', timeout=5)
        assert bot.count_log('written again') == 1
    assert bot.stop() == 0
    assert set(ids) <= set(state_ids(read_state(state_file)))
    assert_once_in_order(discord, ids)


# Operations #####################################################################################

def test_unreachable_hosts_are_named(bybit, discord, run_bot):
    bot = run_bot(BYBIT_REST_URL='https://no-such-host.invalid',
                  BYBIT_WS_PRIVATE_URL='wss://no-such-host.invalid/v5/private',
                  BYBIT_WS_PUBLIC_URL='ws://127.0.0.1:9/v5/public/linear')
    line = bot.wait_log('could not read Bybit server time', timeout=30)
    assert 'cannot resolve no-such-host.invalid' in line, line
    line = bot.wait_log('private stream down', timeout=30)
    assert 'cannot resolve no-such-host.invalid' in line, line
    line = bot.wait_log(r'public \w+ stream down', timeout=30)
    assert 'cannot connect to 127.0.0.1:9' in line, line
    assert bot.stop() == 0


def test_a_rest_error_line_keeps_what_bybit_said(bybit, discord, run_bot):
    bybit.fail_rest('/v5/user/query-api', status=502)
    bot = run_bot()
    line = bot.wait_log('could not read the account at startup', timeout=15)
    assert '502 Bad Gateway' in line and '<' not in line, line
    assert bot.stop() == 0


def test_debug_log_shows_each_step_and_no_secret(bybit, discord, run_bot):
    bot = start_ready(run_bot, bybit, discord, LOG_LEVEL='DEBUG')
    bybit.drop('private')
    bot.wait_log(r'DEBUG backfill window: /v5/execution/list linear \d{4}-', timeout=15)
    for pattern in (r'DEBUG private stream: connecting to ws://127\.0\.0\.1',
                    r'DEBUG private stream: subscribing to .*execution',
                    r'DEBUG private stream: subscribed to .*execution',
                    r'DEBUG public linear stream: subscribed to kline\.1\.BTCUSDT',
                    r'DEBUG REST GET /v5/execution/list\?category=linear.*HTTP 200',
                    r'DEBUG Discord POST 1 embed\(s\) to /webhooks/\d+/\*\*\* answered HTTP 200'):
        bot.wait_log(pattern, timeout=5)
    assert bot.stop() == 0
    assert_no_secrets(bot.output, bybit.api_secret, discord.token)


# Soak ###########################################################################################

def proc_figures(pid: int) -> dict[str, int]:
    status = Path(f'/proc/{pid}/status').read_text()
    figures = {key: int(re.search(rf'^{key}:\s+(\d+)', status, re.MULTILINE).group(1))
               for key in ('Threads', 'VmRSS')}
    figures['fds'] = len(os.listdir(f'/proc/{pid}/fd'))
    return figures


@pytest.mark.skipif(not Path('/proc/self/status').exists(), reason='needs /proc')
def test_soak_50_private_reconnects_with_a_fill_in_each_gap(bybit, discord, run_bot):
    discord.limit = 50                              # the soak is about Bybit, not Discord's bucket
    bot = start_ready(run_bot, bybit, discord, RECONNECT_MAX_S='0.2', DOWN_ALERT_S='1')
    pid = bot.proc.pid
    ids, samples = [], {}
    started = time.monotonic()
    for n in range(50):
        fill = bybit.make_execution(orderId=f'soak-{n}')
        bybit.add_execution(fill, push=False)       # made while the stream is down
        ids.append(fill['execId'])
        long_gap = n in (10, 20, 30, 40)            # down past DOWN_ALERT_S: a down alert is due
        if long_gap:
            bybit.reject_handshake_status = 503
        bybit.drop('private')
        if long_gap:
            time.sleep(1.5)
            bybit.reject_handshake_status = None
        wait_until(lambda n=n: bot.count_log('recovered 1 fill') >= n + 1, 20, f'recovery {n}')
        if n == 9:
            wait_delivered(discord, ids)
            time.sleep(0.3)
            samples['after 10'] = proc_figures(pid)
    wait_delivered(discord, ids, timeout=30)
    time.sleep(0.5)
    samples['after 50'] = proc_figures(pid)
    took_s = time.monotonic() - started
    print(f'soak: 50 reconnects in {took_s:.1f} s; {samples}')

    assert bybit.private_connects >= 51
    got = delivered(discord)
    assert sorted(got) == sorted(ids), discord.dump()   # every fill alerted exactly once
    first, last = samples['after 10'], samples['after 50']
    assert last['Threads'] <= first['Threads'] + 1, samples
    assert last['fds'] <= first['fds'] + 2, samples
    assert last['VmRSS'] - first['VmRSS'] < 3 * 1024, samples  # kB
    down = [t for t in titles(discord) if t.startswith('Private stream down')]
    restored = [t for t in titles(discord) if t.startswith('Private stream restored')]
    assert len(down) == 1 and len(restored) == 1, titles(discord)  # at most one per 10 min
    assert bot.stop() == 0
    assert 'Traceback' not in bot.output


# The gap bookkeeping, piece by piece (no sockets) ##############################################

def test_a_gap_is_fixed_when_detected_and_live_fills_do_not_move_it():
    ws = notify.BybitWS('key', 'secret', symbol='BTCUSDT', channel=['execution'], autostart=False)
    private = ws._streams[0]
    ws.seed(exec_watermark_ms=1_000_000)             # the last fill a previous run saw
    assert ws.unrecovered_since_ms() == 1_000_000 - notify.BACKFILL_MARGIN_MS
    gaps = ws.journal.gaps                           # per category: the same window in each
    assert sorted(gaps) == sorted(notify.CATEGORIES)
    for cat in gaps:
        gaps[cat][0][1] = 2_000_000                  # closed: the stream was back then
    ws._account('execution', [{'execId': 'live-1', 'execTime': '5000000'}])  # a live fill
    assert ws.unrecovered_since_ms() == 990_000      # the failed gap still bounds the watermark
    ws._on_down(private, 'test', 1.0)                # a second outage, after the live fill
    assert gaps['linear'] == [[990_000, 2_000_000], [5_000_000 - notify.BACKFILL_MARGIN_MS, None]]
    ws._on_down(private, 'test', 1.0)                # still down: the open gap goes on
    assert all(len(cat_gaps) == 2 for cat_gaps in gaps.values())
    assert ws.unrecovered_since_ms() == 990_000
