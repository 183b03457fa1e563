"""Faults on the Bybit side, one per test: dropped and half-open streams, fills made while the bot
was away, rejected keys and topics, REST rate limits, clock skew and malformed frames."""

from __future__ import annotations

import re
import time

from conftest import assert_no_secrets
from test_e2e import clean, count_titles, started, wait_title


def exec_ids_alerted(discord) -> list[str]:
    footers = [e.get('footer', {}).get('text', '') for e in discord.embeds()]
    return [m.group(1) for f in footers for m in [re.search(r'exec (\S+)', f)] if m]


def test_private_drop_with_fills_during_the_gap_recovers_them_once(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    live = bybit.make_execution(orderId='live')
    bybit.add_execution(live)
    wait_title(discord, '^Fill')

    bybit.reject_handshake_status = 503      # the stream stays down past DOWN_ALERT_S (2 s)
    bybit.drop('private')
    missed = [bybit.make_execution(orderId=f'gap-{i}', execQty='0.002') for i in range(3)]
    for fill in missed:
        bybit.add_execution(fill, push=False)  # only REST knows about these
    wait_title(discord, r'^Private stream down for')
    bybit.reject_handshake_status = None
    embed = wait_title(discord, r'^Private stream restored', timeout=20)
    assert '3 fill(s) recovered' in embed['description']

    recovered = [e for e in discord.embeds() if 'recovered after a disconnect' in
                 e.get('footer', {}).get('text', '')]
    assert sorted(exec_ids_alerted(discord)) == sorted([live['execId']] +
                                                       [f['execId'] for f in missed])
    assert len(recovered) == 3
    # A later drop without new fills recovers nothing and repeats nothing.
    bybit.drop('private')
    bot.wait_log('recovered 3 fill', timeout=5)
    time.sleep(3)
    assert len(exec_ids_alerted(discord)) == 4
    assert any(r['path'] == '/v5/execution/list' for r in bybit.rest_requests)
    clean(discord)


def test_half_open_stream_is_detected_by_the_watchdog(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    connects = bybit.private_connects
    bybit.silent.add('private')                # no pong, no data, TCP stays open
    line = bot.wait_log(r'private stream: nothing received for \d+ s', timeout=10)
    assert 'reconnecting' in line
    bybit.silent.discard('private')
    bybit.wait_connections('private', 1, timeout=10)
    deadline = time.monotonic() + 10
    while bybit.private_connects <= connects and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bybit.private_connects > connects
    bot.wait_log('private stream ready')
    fill = bybit.make_execution()
    bybit.wait_subscribed('execution')
    bybit.add_execution(fill)
    discord.wait_for(lambda es: fill['execId'] in str(es), 10)


def test_key_rejected_at_startup_is_a_clear_error_and_exit_2(bybit, discord, run_bot):
    bybit.rest_key_rejected = True
    bybit.auth_reject = True
    bot = run_bot()
    assert bot.wait_exit() == 2
    line = bot.wait_log('Bybit rejected BYBIT_API_KEY')
    assert '10003' in line and 'BYBIT_IS_TESTNET' in line
    assert 'Traceback' not in bot.output
    assert_no_secrets(bot.output, bybit.api_secret, discord.token)


def test_key_rejected_only_by_the_websocket_at_startup_exits_2(bybit, discord, run_bot):
    bybit.auth_reject = True
    bot = run_bot()
    assert bot.wait_exit() == 2
    bot.wait_log('Bybit rejected the API key on the private stream')
    assert 'Traceback' not in bot.output


def test_key_revoked_later_alerts_once_and_public_alerts_go_on(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.auth_reject = True
    bybit.drop('private')
    embed = wait_title(discord, '^Bybit rejected the API key')
    assert 'kline alerts go on' in embed['description']
    bybit.push_public('kline.1.BTCUSDT', [bybit.make_kline(confirm=True)])
    wait_title(discord, r'^BTCUSDT 1m closed')
    time.sleep(2)
    assert count_titles(discord, 'rejected the API key') == 1
    attempts = len(bybit.auth_attempts)
    time.sleep(3)
    assert len(bybit.auth_attempts) == attempts   # slow retries, no loop
    assert bot.proc.poll() is None
    clean(discord)


def test_rejected_topic_is_named_once_and_not_retried(bybit, discord, run_bot):
    bot = run_bot(BYBIT_SYMBOL='NOTASYMBOLUSDT')
    line = bot.wait_log('Bybit rejected the subscription to kline.1.NOTASYMBOLUSDT')
    assert 'handler not found' in line
    wait_title(discord, 'refused topic kline.1.NOTASYMBOLUSDT')
    time.sleep(2)
    subscribes = [m for m in bybit.received_ops('public') if m.get('op') == 'subscribe']
    assert len(subscribes) == 1
    assert bot.count_log('rejected the subscription') == 1
    assert bot.proc.poll() is None   # private alerts still run
    clean(discord)


def test_rest_rate_limit_10006_is_waited_out(bybit, discord, run_bot):
    bybit.rest_rate_limit = 2
    bot = run_bot()
    started(bybit, discord, bot)
    bot.wait_log(r'10006 Too many visits')
    embed = wait_title(discord, 'bybit-ws-notify started')
    assert 'read-only' in next(f['value'] for f in embed['fields'] if f['name'] == 'API key')


def test_clock_skew_is_measured_and_corrected(bybit, discord, run_bot):
    bybit.server_time_offset_ms = 30_000      # this machine is 30 s behind Bybit
    bot = run_bot()
    line = bot.wait_log(r'clock skew: this machine is \d+ ms behind Bybit')
    skew_ms = int(re.search(r'is (\d+) ms', line).group(1))
    assert 29_000 < skew_ms < 31_000
    started(bybit, discord, bot)
    fill = bybit.make_execution()
    bybit.add_execution(fill)
    discord.wait_for(lambda es: fill['execId'] in str(es), 10)


def test_malformed_frames_are_logged_and_the_stream_goes_on(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('kline.1.BTCUSDT')
    bybit.publish_raw('public', 'this is not json')
    bybit.publish_raw('public', '{"topic": "kline.1.BTCUSDT", "data": 42}')
    bybit.publish_raw('public', '{"topic": "mystery.BTCUSDT", "data": []}')
    bybit.publish_raw('private', '{"topic": "execution", "data": [{"execQty": ""}]}')
    bybit.publish_raw('public', '{"topic": "kline.1.BTCUSDT", "data": [{"confirm": true, '
                                '"interval": "1", "start": "soon", "open": ""}]}')
    bybit.publish_raw('public', '[' * 100 + ']' * 100)
    bot.wait_log(r'ignored a malformed frame \(JSONDecodeError')
    bot.wait_log(r'kline.1.BTCUSDT: data is not a list')
    bot.wait_log(r"unknown topic 'mystery.BTCUSDT'")
    bot.wait_log(r'execution: ignored 1 item\(s\) without execId')
    bot.wait_log(r"ignored a candle with start='soon'")
    bybit.push_public('kline.1.BTCUSDT', [bybit.make_kline(confirm=True)])
    wait_title(discord, r'^BTCUSDT 1m closed')
    fill = bybit.make_execution()
    bybit.add_execution(fill)
    discord.wait_for(lambda es: fill['execId'] in str(es), 10)
    assert 'Traceback' not in bot.output
    clean(discord)


def test_orders_changed_while_away_are_reconciled(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('order')
    resting = bybit.make_order(orderId='rest-1', price='90000')
    filled_later = bybit.make_order(orderId='rest-2', price='91000')
    bybit.open_orders.extend([resting, filled_later])
    bybit.push_private('order', [resting, filled_later])
    discord.wait_for(lambda es: sum('Order New' in e.get('title', '') for e in es) == 2, 10)

    bybit.reject_handshake_status = 503
    bybit.drop('private')
    bybit.open_orders.remove(filled_later)      # it filled while the bot was away
    bybit.order_history.append(dict(filled_later, orderStatus='Filled', cumExecQty='0.001',
                                    avgPrice='91000'))
    placed = bybit.make_order(orderId='rest-3', price='89000')
    bybit.open_orders.append(placed)            # and a new order was placed
    time.sleep(1)
    bybit.reject_handshake_status = None
    embed = wait_title(discord, '^Order Filled', timeout=15)
    assert 'recovered after a disconnect' in embed['footer']['text']
    wait_title(discord, r'^Order New: .* @ 89000')
    time.sleep(1)
    assert count_titles(discord, '^Order') == 4
    assert any(r['path'] == '/v5/order/history' and r['query'].get('orderId') == 'rest-2'
               for r in bybit.rest_requests)
    clean(discord)


def test_candles_closed_during_a_public_outage_are_recovered(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    topic = 'kline.1.BTCUSDT'
    bybit.wait_subscribed(topic)
    now = bybit.server_time_ms()
    minute = 60_000
    first = bybit.make_kline(start=now - now % minute - 3 * minute, close='100', confirm=True)
    first['end'] = first['start'] + minute - 1
    bybit.klines.append(first)
    bybit.push_public(topic, [first])
    wait_title(discord, r'^BTCUSDT 1m closed: 100 ')

    bybit.reject_handshake_status = 503
    bybit.drop('public')
    missed = []
    for n in (1, 2):   # two candles close while the bot cannot connect
        candle = bybit.make_kline(start=first['start'] + n * minute, close=str(100 + n),
                                  confirm=True)
        candle['end'] = candle['start'] + minute - 1
        bybit.klines.append(candle)
        missed.append(candle)
    time.sleep(1)
    bybit.reject_handshake_status = None
    bot.wait_log('recovered 2 candle', timeout=15)
    wait_title(discord, r'^BTCUSDT 1m closed: 102 ')
    closed = [e for e in discord.embeds() if ' closed: ' in e.get('title', '')]
    assert [e['title'].split(': ')[1].split(' ')[0] for e in closed] == ['100', '101', '102']
    assert all('recovered after a disconnect' in e['footer']['text'] for e in closed[1:])
    # The stream pushes the last one again as it resumes: still one alert per candle.
    bybit.push_public(topic, [missed[-1]])
    time.sleep(1)
    assert sum(' closed: ' in e.get('title', '') for e in discord.embeds()) == 3
    clean(discord)


def test_restored_alert_counts_no_fills_when_fills_are_not_watched(bybit, discord, run_bot):
    bot = run_bot(BYBIT_EXECUTION_NOTIFY='false')
    bot.wait_log('private stream ready')
    wait_title(discord, 'bybit-ws-notify started')
    bybit.reject_handshake_status = 503      # down past DOWN_ALERT_S (2 s)
    bybit.drop('private')
    wait_title(discord, r'^Private stream down for')
    bybit.reject_handshake_status = None
    embed = wait_title(discord, r'^Private stream restored', timeout=20)
    assert 'fill' not in embed['description'], embed   # not "0 fill(s) recovered": none watched


def test_outage_from_the_start_alerts_down_then_restored(bybit, discord, run_bot):
    bybit.reject_handshake_status = 503       # the private stream cannot connect at first
    bot = run_bot()
    wait_title(discord, r'^Private stream down for', timeout=15)
    bybit.reject_handshake_status = None
    embed = wait_title(discord, r'^Private stream restored', timeout=15)
    assert 'fill(s) recovered' in embed['description']
    bot.wait_log('private stream ready')
    clean(discord)
