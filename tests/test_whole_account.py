"""The whole account in one process (issue 8), end to end against the fakes: candles of several
symbols and periods across categories, account events of all four categories on one private
stream in their own units, a many-coin wallet burst, an outage with fills missed in three
categories, a restart, BYBIT_CATEGORIES filtering, and a state file written by 2.0.0."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from conftest import state_ids, titles
from fake_bybit import OPTION_SYMBOL
from test_e2e import clean, count_titles, field, wait_title

import bybit_ws_notify as bot_module

PAYLOADS = Path(__file__).resolve().parent / 'payloads'
HOUR_MS = 3_600_000


def ready(bybit, discord, bot, topic: str = 'execution') -> None:
    bot.wait_log('private stream ready')
    bybit.wait_subscribed(topic)
    wait_title(discord, 'bybit-ws-notify started')


def footer(embed: dict) -> str:
    return embed.get('footer', {}).get('text', '')


def alerted_exec_ids(discord) -> list[str]:
    return [m.group(1) for e in discord.embeds() for m in [re.search(r'exec (\S+)', footer(e))] if m]


def fills_of_every_category(bybit, tag: str) -> list[dict]:
    """One fill each of linear, inverse, spot and option, each closing its order."""
    return [
        bybit.make_execution(category='linear', execId=f'{tag}-linear', orderId=f'{tag}-ol',
                             side='Buy', execQty='0.01', orderQty='0.01', leavesQty='0',
                             execPrice='95000', execFee='0.52', feeCurrency='USDT'),
        bybit.make_execution(category='inverse', execId=f'{tag}-inverse', orderId=f'{tag}-oi',
                             side='Sell', execQty='100', orderQty='100', leavesQty='0',
                             execPrice='95000', execFee='0.00000057', feeCurrency=''),
        bybit.make_execution(category='spot', execId=f'{tag}-spot', orderId=f'{tag}-os',
                             side='Buy', execQty='0.002', orderQty='0.002', leavesQty='0',
                             execPrice='95000', execFee='0.000002', feeCurrency=''),
        bybit.make_execution(category='option', execId=f'{tag}-option', orderId=f'{tag}-oo',
                             side='Buy', execQty='0.1', orderQty='0.1', leavesQty='0',
                             execPrice='2500', execFee='1.5', feeCurrency=''),
    ]


# Candles #########################################################################################

def test_candles_of_two_symbols_and_two_periods_across_two_categories(bybit, discord, run_bot):
    bot = run_bot(BYBIT_SYMBOL='BTCUSDT, spot:ETHUSDT', BYBIT_PERIOD='1,60')
    ready(bybit, discord, bot)
    for topic in ('kline.1.BTCUSDT', 'kline.60.BTCUSDT', 'kline.1.ETHUSDT', 'kline.60.ETHUSDT'):
        bybit.wait_subscribed(topic)
    # One public connection per category with candle symbols, none for the others.
    assert bybit.connections('public', 'linear') == 1
    assert bybit.connections('public', 'spot') == 1
    assert bybit.connections('public', 'inverse') == bybit.connections('public', 'option') == 0
    assert bybit.connections('private') == 1
    hour = (bybit.server_time_ms() // HOUR_MS - 1) * HOUR_MS
    for category, symbol, close in (('linear', 'BTCUSDT', '95850'), ('spot', 'ETHUSDT', '3500')):
        bybit.push_public(f'kline.1.{symbol}', [bybit.make_kline(close=close)], category=category)
        bybit.push_public(f'kline.60.{symbol}', [bybit.make_kline(
            interval='60', start=hour, end=hour + HOUR_MS - 1, close=close)], category=category)
    for title in (r'^BTCUSDT 1m closed: 95850', r'^BTCUSDT 1h closed: 95850',
                  r'^ETHUSDT spot 1m closed: 3500', r'^ETHUSDT spot 1h closed: 3500'):
        wait_title(discord, title)
    volume = field(wait_title(discord, r'^ETHUSDT spot 1h'), 'Volume')
    assert volume.endswith(' ETH')   # each amount with its unit
    time.sleep(0.5)
    assert count_titles(discord, ' closed: ') == 4
    assert bot.stop() == 0
    clean(discord)


def test_more_than_ten_spot_symbols_are_subscribed_in_requests_of_ten(bybit, discord, run_bot):
    symbols = [f'spot:C{i:02d}USDT' for i in range(12)]
    bot = run_bot(BYBIT_SYMBOL=','.join(symbols), BYBIT_API_KEY=None, BYBIT_API_SECRET=None)
    for i in range(12):
        bybit.wait_subscribed(f'kline.1.C{i:02d}USDT')
    bot.wait_log('public spot stream ready')
    requests = [op for op in bybit.received_ops('public') if op.get('op') == 'subscribe']
    assert sorted(len(op['args']) for op in requests) == [2, 10]  # Bybit's spot limit: 10 args
    assert 'rejected' not in bot.output
    assert bot.stop() == 0


# Account events of every category ################################################################

def test_fills_orders_and_positions_of_all_four_categories_in_their_units(bybit, discord, run_bot):
    bot = run_bot()
    ready(bybit, discord, bot)
    bybit.push_private('execution', fills_of_every_category(bybit, 'e2e'))  # one frame, four
    linear = wait_title(discord, r'^Fill: Buy 0\.01 BTC BTCUSDT @ 95000')
    inverse = wait_title(discord, r'^Fill: Sell 100 USD BTCUSD @ 95000')
    spot = wait_title(discord, r'^Fill: Buy 0\.002 BTC BTCUSDT spot @ 95000')
    option = wait_title(discord, rf'^Fill: Buy 0\.1 BTC {OPTION_SYMBOL} @ 2500')
    assert field(linear, 'Fee') == '0.52 USDT'
    assert field(inverse, 'Fee') == '0.00000057 BTC'      # inverse: fee in the coin
    assert field(spot, 'Fee') == '0.000002 BTC'            # a spot buy pays in the base coin
    assert field(option, 'Fee') == '1.5 USDC'              # option: in its settle coin
    assert field(option, 'Contract') == 'BTC Call 100000, expires 31 Dec 2027, settles in USDC'

    bybit.push_private('order', [
        bybit.make_order(category='linear', orderId='ol-1', side='Buy', price='90000', qty='0.01'),
        bybit.make_order(category='inverse', orderId='oi-1', side='Sell', price='99000', qty='200'),
        bybit.make_order(category='spot', orderId='os-1', side='Buy', price='90000', qty='0.003'),
        bybit.make_order(category='option', orderId='oo-1', side='Sell', price='3000', qty='0.2')])
    wait_title(discord, r'^Order New: Buy Limit 0\.01 BTC BTCUSDT @ 90000')
    wait_title(discord, r'^Order New: Sell Limit 200 USD BTCUSD @ 99000')
    wait_title(discord, r'^Order New: Buy Limit 0\.003 BTC BTCUSDT spot @ 90000')
    wait_title(discord, rf'^Order New: Sell Limit 0\.2 BTC {OPTION_SYMBOL} @ 3000')

    bybit.push_private('position', [
        bybit.make_position(ws=True, category='linear', side='Buy', size='0.01'),
        bybit.make_position(ws=True, category='inverse', side='Sell', size='100'),
        bybit.make_position(ws=True, category='option', side='Buy', size='0.1')])
    wait_title(discord, r'^Position opened: BTCUSDT Long 0\.01 BTC')
    wait_title(discord, r'^Position opened: BTCUSD Short 100 USD')
    opened = wait_title(discord, rf'^Position opened: {OPTION_SYMBOL} Long 0\.1 BTC')
    assert 'Contract' in {f['name'] for f in opened['fields']}
    assert bybit.connections('private') == 1
    assert bot.stop() == 0
    clean(discord)


def test_a_wallet_push_that_changes_three_coins_is_one_alert(bybit, discord, run_bot):
    bybit.wallet = bybit.make_wallet_coins({'USDT': '1000', 'BTC': '0.5', 'USDC': '200',
                                            'ETH': '2'})
    bot = run_bot()
    ready(bybit, discord, bot, 'wallet')
    time.sleep(0.5)  # the first resync's wallet read is in
    changed = bybit.make_wallet_coins({'USDT': '1012.5', 'BTC': '0.499', 'USDC': '150',
                                       'ETH': '2'})
    bybit.push_private('wallet', [changed])
    embed = wait_title(discord, r'^Balances changed: ')
    assert embed['title'] == 'Balances changed: USDT +12.50, BTC -0.001, USDC -50.00'
    assert field(embed, 'USDT') == '1000.00 → 1012.50 USDT (+12.50)'
    assert field(embed, 'BTC') == '0.5 → 0.499 BTC (-0.001)'
    assert field(embed, 'USDC') == '200.00 → 150.00 USDC (-50.00)'
    assert 'ETH' not in {f['name'] for f in embed['fields']}   # unchanged: not listed
    time.sleep(1.5)
    assert count_titles(discord, '^Balance') == 1
    startup = discord.embeds()[0]
    assert startup['title'] == 'bybit-ws-notify started'
    assert field(startup, 'Balances').split('\n')[0] == '0.5 BTC'  # the largest USD value first
    assert field(startup, 'Total equity').endswith(' USD')
    assert bot.stop() == 0
    clean(discord)


def test_startup_alert_lists_positions_of_every_category_largest_first(bybit, discord, run_bot):
    bybit.positions += [
        bybit.make_position(category='linear', symbol='ETHUSDT', side='Buy', size='1',
                            avgPrice='3500', positionValue='3500'),
        bybit.make_position(category='linear', symbol='BTCUSDT', side='Sell', size='0.5',
                            avgPrice='95000', positionValue='47500'),
        bybit.make_position(category='inverse', symbol='BTCUSD', side='Buy', size='10000'),
        bybit.make_position(category='option', side='Buy', size='0.1', positionValue='250')]
    bybit.positions += [bybit.make_position(category='linear', symbol=f'X{i}USDT', side='Buy',
                                            size='1', avgPrice='1', positionValue='1')
                        for i in range(9)]
    bot = run_bot(BYBIT_SYMBOL='BTCUSDT,ETHUSDT', BYBIT_PERIOD='1,D')
    ready(bybit, discord, bot)
    startup = discord.embeds()[0]
    assert field(startup, 'Watching') == 'linear, inverse, spot, option (mainnet)'
    assert field(startup, 'Candles') == 'BTCUSDT, ETHUSDT × 1m, 1D'
    lines = field(startup, 'Positions').split('\n')
    assert [line.split()[0] for line in lines[:4]] == ['BTCUSDT', 'BTCUSD', 'ETHUSDT', OPTION_SYMBOL]
    assert len(lines) == 11 and lines[-1] == '… and 3 more positions'
    time.sleep(1)
    assert titles(discord) == ['bybit-ws-notify started']   # a first start: the baseline only
    assert bot.stop() == 0


def test_the_startup_reads_of_the_account_are_sent_at_once(bybit, discord, run_bot):
    """The key, the wallet and each category's positions are read in parallel: the first of
    each of those requests reaches Bybit before any is answered (each is held 1 s here)."""
    reads = {'/v5/user/query-api', '/v5/account/wallet-balance', '/v5/position/list'}
    bybit.rest_delay_s, bybit.rest_delay_paths = 1.0, reads
    bot = run_bot()
    ready(bybit, discord, bot)
    first: dict = {}  # (path, category) -> when its first request arrived (later: recoveries)
    for call in sorted(bybit.rest_calls(), key=lambda r: r['time']):
        if call['path'] in reads:
            first.setdefault((call['path'], call['query'].get('category', '')), call['time'])
    assert set(first) == {('/v5/user/query-api', ''), ('/v5/account/wallet-balance', ''),
                          *(('/v5/position/list', c) for c in ('linear', 'inverse', 'option'))}
    assert max(first.values()) < min(first.values()) + bybit.rest_delay_s
    assert bot.stop() == 0


# Recovery and restarts ###########################################################################

def test_an_outage_with_fills_missed_in_three_categories_recovers_each_once(
        bybit, discord, run_bot):
    bot = run_bot()
    ready(bybit, discord, bot)
    bybit.reject_handshake_status = 503      # the private stream stays down
    bybit.drop('private')
    wait_title(discord, r'^Private stream down for')
    missed = [f for f in fills_of_every_category(bybit, 'gap') if f['category'] != 'inverse']
    for fill in missed:
        bybit.add_execution(fill, push=False)   # only REST knows them (rows carry no category)
    bybit.reject_handshake_status = None
    embed = wait_title(discord, r'^Private stream restored', timeout=20)
    assert '3 fill(s) recovered' in embed['description']
    spot = wait_title(discord, r'^Fill: Buy 0\.002 BTC BTCUSDT spot')
    option = wait_title(discord, rf'^Fill: Buy 0\.1 BTC {OPTION_SYMBOL}')
    assert field(spot, 'Fee') == '0.000002 BTC' and field(option, 'Fee') == '1.5 USDC'
    assert all('recovered after a disconnect' in footer(e) for e in (spot, option))
    bybit.drop('private')                    # a second reconnect finds nothing new
    time.sleep(3)
    assert sorted(alerted_exec_ids(discord)) == sorted(f['execId'] for f in missed)
    for category in ('linear', 'spot', 'option', 'inverse'):
        assert bybit.rest_calls('/v5/execution/list', category=category)
    assert bot.stop() == 0
    clean(discord)


def test_a_restart_repeats_nothing_of_any_category(bybit, discord, run_bot):
    bot = run_bot()
    ready(bybit, discord, bot)
    for fill in fills_of_every_category(bybit, 'r1'):
        bybit.add_execution(fill)           # live, and in REST for the next run's recovery
    discord.wait_for(lambda embeds: len(alerted_exec_ids(discord)) == 4)
    bybit.open_orders.append(bybit.make_order(category='spot', orderId='os-open', qty='0.003'))
    bybit.push_private('order', [bybit.open_orders[-1]])
    wait_title(discord, r'^Order New: .* BTCUSDT')
    assert bot.stop() == 0
    before = len(discord.embeds())

    again = run_bot()
    again.wait_log('private stream ready')
    wait_title(discord, 'bybit-ws-notify started', timeout=10)
    again.wait_log(r'private stream ready', timeout=10)
    time.sleep(2)   # the recovery read every category's fills and open orders again
    new = [e.get('title') for e in discord.embeds()[before:]]
    assert [t for t in new if not t.startswith('bybit-ws-notify')] == [], new
    assert again.stop() == 0
    clean(discord)


def test_bybit_categories_linear_filters_the_rest(bybit, discord, run_bot):
    bot = run_bot(BYBIT_CATEGORIES='linear')
    ready(bybit, discord, bot, 'execution.linear')
    assert bybit.subscriptions('private') == [{'order.linear', 'execution.linear',
                                               'position.linear', 'wallet'}]
    bybit.push_private('execution', fills_of_every_category(bybit, 'only'))
    wait_title(discord, r'^Fill: Buy 0\.01 BTC BTCUSDT @ 95000')
    bybit.push_private('wallet', [bybit.make_wallet('USDT', '990')])
    wait_title(discord, r'^Balance USDT: 1000\.00 → 990\.00')   # the wallet is not filtered
    time.sleep(1)
    assert count_titles(discord, '^Fill') == 1
    for category in ('inverse', 'spot', 'option'):
        assert bybit.rest_calls(category=category) == [], category  # nor read over REST
    assert bot.stop() == 0
    clean(discord)


def test_a_state_file_of_2_0_0_is_upgraded_without_loss(bybit, discord, run_bot, tmp_path):
    # Written by release 2.0.0 (tests/payloads/state_2.0.0.json): two fills alerted, one open
    # order, a long position. Its times are moved to a minute ago, nothing else.
    state = json.loads((PAYLOADS / 'state_2.0.0.json').read_text(encoding='utf-8'))
    shift = bybit.server_time_ms() - 60_000 - state['exec_watermark_ms']
    state['exec_watermark_ms'] += shift
    state['open_orders']['v200-open-1']['updatedTime'] = str(state['exec_watermark_ms'])
    (tmp_path / 'state.json').write_text(json.dumps(state), encoding='utf-8')
    for exec_id in state['exec_ids']:      # Bybit still lists the fills 2.0.0 alerted
        bybit.add_execution(bybit.make_execution(execId=exec_id, orderId=exec_id, leavesQty='0',
                                                 execTime=str(state['exec_watermark_ms'])),
                            push=False)
    bybit.open_orders.append(bybit.make_order(**state['open_orders']['v200-open-1']))
    bybit.positions.append(bybit.make_position(symbol='BTCUSDT', side='Buy', size='0.6',
                                               avgPrice='95100'))
    missed = bybit.make_execution(execId='after-upgrade', leavesQty='0')
    bybit.add_execution(missed, push=False)  # made while no bot ran: recovered once
    # 2.0.0 watched linear only: what the other categories did before the upgrade is not news.
    bybit.add_execution(bybit.make_execution(category='spot', execId='spot-before', leavesQty='0',
                                             execTime=str(state['exec_watermark_ms'] + 1000)),
                        push=False)
    bybit.open_orders.append(bybit.make_order(category='spot', orderId='spot-open-before'))
    bybit.positions.append(bybit.make_position(category='inverse', side='Sell', size='500'))
    bot = run_bot()
    ready(bybit, discord, bot)
    wait_title(discord, r'^Fill: ')
    time.sleep(1.5)
    assert alerted_exec_ids(discord) == ['after-upgrade']
    assert titles(discord)[0] == 'bybit-ws-notify started'
    assert count_titles(discord, '^Order') == count_titles(discord, '^Position') == 0
    assert bot.stop() == 0
    saved = json.loads((tmp_path / 'state.json').read_text(encoding='utf-8'))
    assert saved['version'] == 2
    assert 'after-upgrade' in state_ids(saved)
    assert saved['fills']['watermark_ms'] >= int(missed['execTime'])
    assert 'v200-open-1' in saved['orders']['open'] and 'spot-open-before' in saved['orders']['open']
    assert saved['categories'] == list(bot_module.CATEGORIES)
    assert saved['positions']['views']['linear:BTCUSDT:0']['size'] == '0.6'
    before = len(discord.embeds())
    again = run_bot()                        # and the next start repeats none of it
    ready(bybit, discord, again)
    time.sleep(1.5)
    assert [e['title'] for e in discord.embeds()[before:]] == ['bybit-ws-notify started']
    assert again.stop() == 0
    clean(discord)


def test_a_category_bybit_refuses_for_good_is_one_alert_and_no_retry_storm(
        bybit, discord, run_bot, tmp_path):
    # A key without Options access: every option read is 10005 Permission denied.
    bybit.fail_rest('/v5/execution/list', times=1000, ret_code=10005, category='option')
    bybit.fail_rest('/v5/order/realtime', times=1000, ret_code=10005, category='option')
    bot = run_bot()
    ready(bybit, discord, bot)
    embed = wait_title(discord, r'^Bybit refuses option reads with this key')
    assert '10005' in embed['description']
    bot.wait_log('private stream ready')
    assert 'recovery after the private reconnect failed' not in bot.output  # not retried
    fill = bybit.make_execution(category='linear', leavesQty='0')
    bybit.add_execution(fill)
    wait_title(discord, r'^Fill: ')
    bybit.drop('private')                    # the reconnect reads the others, not option
    time.sleep(3)
    assert count_titles(discord, r'^Bybit refuses') == 1
    assert len(bybit.rest_calls('/v5/execution/list', category='option')) == 1
    assert bot.stop() == 0
    state = json.loads((tmp_path / 'state.json').read_text(encoding='utf-8'))
    assert state['fills']['watermark_ms'] >= int(fill['execTime'])  # option holds nothing back
