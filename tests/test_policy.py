"""The alert policy (Notifier) on its own: event sequences in, alerts out, with a fake clock and a
recording sink. No processes, no sockets, no threads: the grouping timer is driven by tick(now).

Payloads named realshaped_* are written from the field lists of issue 7 and shared/docs/bybit_v5.md,
in the shapes real Bybit messages were seen in; they are not official examples.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

import bybit_ws_notify as bot

PAYLOADS = Path(__file__).resolve().parent / 'payloads'
PLACEHOLDERS = ('', '-', 'None', 'nan', 'NaN', '?')


def data(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text(encoding='utf-8'))['data'])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """Records what the policy sends, as DiscordSender would queue it."""

    def __init__(self) -> None:
        self.embeds: list[dict[str, Any]] = []

    def send(self, embed: dict[str, Any]) -> None:
        self.embeds.append(embed)

    def pending_state(self) -> tuple:
        return [], 0

    @property
    def titles(self) -> list[str]:
        return [e.get('title', '') for e in self.embeds]


def settings(**env: str) -> bot.Settings:
    base = {'BYBIT_SYMBOL': 'BTCUSDT', 'BYBIT_API_KEY': 'key', 'BYBIT_API_SECRET': 'secret',
            'DISCORD_NOTIFY': 'false', 'EXEC_COALESCE_S': '1.0',
            'STATE_FILE': str(Path(tempfile.gettempdir()) / 'unused.state.json')}  # never written
    return bot.load_settings({**base, **env})


def notifier(state: dict | None = None, **env: str) -> tuple[bot.Notifier, Sink, Clock]:
    """A Notifier past its startup (state {} is a restart with an empty state file)."""
    sink, clock = Sink(), Clock()
    policy = bot.Notifier(settings(**env), sink, {} if state is None else state, clock=clock)
    policy.post_startup({'title': 'started'})
    sink.embeds.clear()
    return policy, sink, clock


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f['name']: f['value'] for f in embed.get('fields', [])}


def assert_no_placeholders(embed: dict[str, Any]) -> None:
    for name, value in fields(embed).items():
        assert value.strip() not in PLACEHOLDERS, (name, value, embed)
        assert 'None' not in value and ' - ' not in value and '?' not in value, (name, value)
    for word in ('None', ' - ', '?', 'nan', '  '):
        assert word not in embed.get('title', ''), embed['title']


def order(status: str, updated: int, **extra: Any) -> dict[str, Any]:
    return {'category': 'linear', 'symbol': 'BTCUSDT', 'orderId': 'o-1', 'side': 'Buy',
            'orderType': 'Limit', 'price': '90000', 'qty': '0.01', 'orderStatus': status,
            'cumExecQty': extra.pop('cumExecQty', '0'), 'updatedTime': str(updated), **extra}


def fill(exec_id: str, leaves: str, **extra: Any) -> dict[str, Any]:
    return {'category': 'linear', 'symbol': 'BTCUSDT', 'orderId': 'o-1', 'execId': exec_id,
            'side': 'Buy', 'execType': 'Trade', 'execQty': '0.004', 'execPrice': '90000',
            'execFee': '0.1', 'feeCurrency': 'USDT', 'orderQty': '0.012', 'leavesQty': leaves,
            'isMaker': True, 'execTime': '1746270400000', 'closedSize': '0', 'execPnl': '0',
            **extra}


def position(size: str, seq: int, updated: int = 1746270400000, **extra: Any) -> dict[str, Any]:
    return {'category': 'linear', 'symbol': 'BTCUSDT', 'positionIdx': 0, 'side': 'Buy',
            'size': size, 'entryPrice': '95000', 'markPrice': '95100', 'liqPrice': '80000',
            'unrealisedPnl': '1', 'curRealisedPnl': '-0.5', 'leverage': '10', 'takeProfit': '0',
            'stopLoss': '0', 'seq': seq, 'updatedTime': str(updated), **extra}


def wallet(balance: str, created: int | None) -> dict[str, Any]:
    account = {'accountType': 'UNIFIED', 'totalEquity': balance,
               'coin': [{'coin': 'USDT', 'walletBalance': balance, 'equity': balance}]}
    if created is not None:
        account['creationTime'] = created
    return account


# First start: the baseline ########################################################################

def test_first_start_learns_the_account_silently_and_the_startup_alert_comes_first() -> None:
    sink, clock = Sink(), Clock()
    policy = bot.Notifier(settings(), sink, None, clock=clock)
    # The startup REST reads: an open position and the balance. Not news.
    policy.set_baseline([('linear', [position('0.5', seq=10)])], [wallet('1000', None)])
    # A live order arrives while the bot still waits for the private auth: it waits too.
    policy.feed('order', [order('New', 1)])
    assert sink.embeds == []
    # The first private resync re-reads the same account and the open orders: still the baseline.
    policy.feed('order', [order('New', 1, orderId='o-old')], source='recovered')
    policy.feed('position', [position('0.5', seq=10)], source='recovered')
    policy.post_startup({'title': 'bybit-ws-notify started'})
    policy.on_status(None, {'event': 'ready', 'stream': 'private'})
    assert sink.titles == ['bybit-ws-notify started', 'Order New: Buy Limit 0.01 BTC BTCUSDT @ 90000']
    # After the baseline, a change is alerted against it.
    policy.feed('position', [position('0.8', seq=11)])
    assert sink.titles[-1] == 'Position increased: BTCUSDT Long 0.8 BTC'
    assert fields(sink.embeds[-1])['Size'] == '0.5 → 0.8 BTC'


def test_first_start_baseline_lasts_until_the_whole_first_resync_succeeded() -> None:
    # The first resync's order read failed (10006, say) and is retried: the rows of the retry are
    # still the baseline, so an order placed before the bot ever started is not alerted.
    sink, clock = Sink(), Clock()
    policy = bot.Notifier(settings(), sink, None, clock=clock)
    policy.post_startup({'title': 'bybit-ws-notify started'})
    policy.on_status(None, {'event': 'ready', 'stream': 'private', 'complete': False})
    policy.feed('order', [order('New', 1, orderId='o-before-start')], source='recovered')
    assert sink.titles == ['bybit-ws-notify started']
    policy.on_status(None, {'event': 'resynced', 'stream': 'private'})
    policy.feed('order', [order('Filled', 2, orderId='o-before-start')], source='recovered')
    assert sink.titles[-1].startswith('Order Filled: ')  # after the baseline: news again


def test_alerts_held_before_startup_are_in_the_state_file_and_released_on_stop() -> None:
    sink, clock = Sink(), Clock()
    policy = bot.Notifier(settings(), sink, None, clock=clock)
    policy.feed('execution', [fill('e-1', '0')])
    assert sink.embeds == []
    assert [item['embed']['title'] for item in policy.snapshot()['outbox']] == [
        'Fill: Buy 0.004 BTC BTCUSDT @ 90000']
    policy.stop()  # stopped before the startup alert went out: nothing is lost
    assert sink.titles == ['Fill: Buy 0.004 BTC BTCUSDT @ 90000']


# Coalescing of fills ##############################################################################

def test_fills_of_one_order_are_one_alert_when_the_window_ends() -> None:
    policy, sink, clock = notifier()
    policy.feed('execution', [fill('e-1', '0.008')])
    assert policy.tick(clock.now) == 1001.0          # due when the 1 s window ends
    clock.now = 1000.5
    policy.feed('execution', [fill('e-2', '0.004', execPrice='90010')])
    assert policy.tick(clock.now) == 1001.0 and sink.embeds == []
    assert policy.tick(1001.0) is None
    assert sink.titles == ['Fill: Buy 0.008 BTC BTCUSDT @ 90005 (2 fills)']
    assert fields(sink.embeds[0])['Left'] == '0.004 BTC'


def test_the_fill_that_completes_the_order_flushes_at_once() -> None:
    policy, sink, clock = notifier()
    policy.feed('execution', [fill('e-1', '0.008')])
    policy.feed('execution', [fill('e-2', '0.004')])
    policy.feed('execution', [fill('e-3', '0')])
    assert sink.titles == ['Fill: Buy 0.012 BTC BTCUSDT @ 90000 (3 fills)']
    assert fields(sink.embeds[0])['Filled'] == '0.012 / 0.012 BTC'
    assert policy.tick(clock.now) is None


def test_recovered_fills_flush_on_the_next_tick_and_repeats_are_dropped() -> None:
    policy, sink, clock = notifier()
    rows = [fill(f'e-{i}', '0.004') for i in range(2)]
    policy.feed('execution', rows, source='recovered')
    assert policy.tick(clock.now) is None
    assert sink.titles == ['Fill: Buy 0.008 BTC BTCUSDT @ 90000 (2 fills)']
    assert sink.embeds[0]['footer']['text'].endswith('recovered after a disconnect')
    policy.feed('execution', rows, source='recovered')  # the same execIds again
    assert policy.tick(clock.now + 5) is None
    assert len(sink.embeds) == 1


def test_balance_changes_of_a_burst_are_one_alert() -> None:
    policy, sink, clock = notifier()
    policy.feed('wallet', [wallet('1000', 1)])
    policy.feed('wallet', [wallet('1012.5', 2)])
    clock.now += 0.5
    policy.feed('wallet', [wallet('1010', 3)])
    assert policy.tick(clock.now) == 1001.0
    assert policy.tick(1001.0) is None
    assert sink.titles == ['Balance USDT: 1000.00 → 1010.00 (+10.00)']


# Updates never go backwards #######################################################################

def test_an_order_status_never_goes_backwards() -> None:
    policy, sink, _ = notifier()
    policy.feed('order', [order('New', 1)])
    policy.feed('order', [order('PartiallyFilled', 2, cumExecQty='0.004')])
    policy.feed('order', [order('Filled', 3, cumExecQty='0.01')])
    # The stale PartiallyFilled frame again, and a REST resync read before the Filled arrived.
    policy.feed('order', [order('PartiallyFilled', 2, cumExecQty='0.004')])
    policy.feed('order', [order('PartiallyFilled', 2, cumExecQty='0.004')], source='recovered')
    policy.feed('order', [order('Filled', 3, cumExecQty='0.01', cancelType='CancelByUser')])
    policy.feed('order', [order('Cancelled', 4, cumExecQty='0.01')])  # closed is final
    assert [t.split(':')[0] for t in sink.titles] == [
        'Order New', 'Order PartiallyFilled', 'Order Filled']
    assert policy.journal.orders.get('o-1') == ['Filled', 3]


def test_an_older_update_of_the_same_status_is_ignored() -> None:
    policy, sink, _ = notifier()
    policy.feed('order', [order('PartiallyFilled', 5, cumExecQty='0.008')])
    policy.feed('order', [order('PartiallyFilled', 3, cumExecQty='0.004')])
    assert policy.journal.orders.get('o-1') == ['PartiallyFilled', 5]
    assert len(sink.embeds) == 1
    # Bybit's lifecycle beats the clock: a conditional order goes Untriggered -> Triggered -> New.
    policy.feed('order', [order('Untriggered', 1, orderId='c-1')])
    policy.feed('order', [order('Triggered', 2, orderId='c-1')])
    policy.feed('order', [order('Untriggered', 9, orderId='c-1')])
    assert policy.journal.orders.get('c-1') == ['Triggered', 2]


def test_an_older_position_is_ignored_by_seq() -> None:
    policy, sink, _ = notifier()
    policy.feed('position', [position('0.01', seq=100)])
    policy.feed('position', [position('0.03', seq=102)])
    # A REST re-read that was answered before the last live push: older seq, newer-looking time.
    policy.feed('position', [position('0.01', seq=101, updated=1746270500000)], source='recovered')
    assert [t for t in sink.titles] == ['Position opened: BTCUSDT Long 0.01 BTC',
                                        'Position increased: BTCUSDT Long 0.03 BTC']
    assert policy.journal.position_views['linear:BTCUSDT:0']['size'] == '0.03'
    # Without seq, updatedTime decides.
    policy.feed('position', [position('0.02', seq=0, updated=1746270300000)])
    assert len(sink.embeds) == 2


def test_an_older_balance_is_ignored_by_its_time() -> None:
    policy, sink, clock = notifier()
    policy.feed('wallet', [wallet('1000', 100)])
    policy.feed('wallet', [wallet('1010', 300)])
    policy.feed('wallet', [wallet('1000', 200)], source='recovered')   # read before the push
    policy.tick(clock.now + 5)
    assert sink.titles == ['Balance USDT: 1000.00 → 1010.00 (+10.00)']
    assert policy.journal.balances['USDT'] == '1010'


def test_bybitws_keeps_a_filled_order_out_of_the_open_orders() -> None:
    """review.md defect 2: a REST resync read before a live Filled must not re-open the order."""
    calls: list[list[dict]] = []
    ws = bot.BybitWS('key', 'secret', symbol='BTCUSDT', channel=['order'],
                     callback={'order': lambda ws, orders: calls.append(orders)}, autostart=False)
    ws.seed(open_orders={'o-1': order('PartiallyFilled', 2, cumExecQty='0.004')})
    ws._account('order', [order('Filled', 3, cumExecQty='0.01')])
    ws._account('order', [order('PartiallyFilled', 2, cumExecQty='0.004')], source='recovered')
    assert ws.open_orders() == {}
    assert [[o['orderStatus'] for o in batch] for batch in calls] == [['Filled']]
    ws._account('position', [position('0.03', seq=102)])
    ws._account('position', [position('0.01', seq=101)])
    assert ws.data['position']['size'] == '0.03'


# Dedup across a restart ###########################################################################

def test_a_restart_neither_repeats_nor_reopens() -> None:
    policy, _sink, _ = notifier()
    policy.feed('order', [order('New', 1)])
    policy.feed('order', [order('Filled', 3, cumExecQty='0.01')])
    policy.feed('execution', [fill('e-1', '0')])
    policy.feed('position', [position('0.01', seq=100)])
    policy.feed('wallet', [wallet('1000', 100)])
    state = json.loads(json.dumps(policy.snapshot()))
    again, sink2, clock2 = notifier(state)
    again.feed('execution', [fill('e-1', '0')], source='recovered')
    again.feed('order', [order('Filled', 3, cumExecQty='0.01')], source='recovered')
    again.feed('order', [order('PartiallyFilled', 2, cumExecQty='0.004')])
    again.feed('position', [position('0.01', seq=99)], source='recovered')
    again.feed('wallet', [wallet('990', 50)], source='recovered')
    again.tick(clock2.now + 5)
    assert sink2.embeds == []


def test_a_state_file_of_2_0_0_still_stops_a_regression() -> None:
    # 2.0.0 kept {orderId: status}: the status alone still orders the lifecycle.
    policy, sink, _ = notifier({'version': 1, 'orders': {'o-1': 'Filled'}})
    policy.feed('order', [order('PartiallyFilled', 2, cumExecQty='0.004')])
    policy.feed('order', [order('Filled', 3)])
    assert sink.embeds == []


# Funding ##########################################################################################

def test_funding_is_alerted_at_once_with_what_reconciles_it() -> None:
    policy, sink, clock = notifier()
    policy.feed('execution', data('realshaped_ws_execution_funding.json'))
    assert sink.titles == ['Funding paid: 4.750025 USDT on BTCUSDT Long 0.5 BTC']
    assert fields(sink.embeds[0]) == {'Amount': '4.750025 USDT paid', 'Position': 'Long 0.5 BTC',
                                      'Mark price': '95000.5', 'Funding rate': '0.01%'}
    received = dict(data('realshaped_ws_execution_funding.json')[0], execId='f-2', execFee='-1.2',
                    side='Sell')
    policy.feed('execution', [received])
    assert sink.titles[-1] == 'Funding received: 1.2 USDT on BTCUSDT Short 0.5 BTC'
    assert policy.tick(clock.now) is None


# Each real message shape ##########################################################################

def test_spot_fills_without_fee_currency() -> None:
    policy, sink, _clock = notifier(BYBIT_CATEGORY='spot')
    buy, sell = data('realshaped_ws_execution_spot_no_feecurrency.json')
    policy.feed('execution', [buy, sell])
    assert sink.titles == ['Fill: Buy 0.000104 BTC BTCUSDT spot @ 96022.1',
                           'Fill: Sell 0.0001 BTC BTCUSDT spot @ 96051']
    bought, sold = (fields(e) for e in sink.embeds)
    assert bought['Fee'] == '0.000000104 BTC'                      # a buy pays in the base coin
    assert bought['Filled'] == '0.000104 BTC for 9.9862984 / 10 USDT'  # sized in USDT
    assert sold['Fee'] == '0.01152612 USDT (incl. VAT 0.00192102)'  # a sell in the quote coin
    for embed in sink.embeds:
        assert_no_placeholders(embed)
        assert 'Realised PnL' not in fields(embed)


def test_spot_market_buy_of_2023_is_sized_in_usdt() -> None:
    policy, sink, _ = notifier(BYBIT_CATEGORY='spot')
    policy.feed('order', data('realshaped_ws_order_spot_market_buy_2023.json'))
    assert sink.titles == ['Order Filled: Buy Market 10 USDT BTCUSDT spot']
    assert fields(sink.embeds[0])['Filled'] == '0.000104 BTC for 9.98631 / 10 USDT'
    assert_no_placeholders(sink.embeds[0])


def test_closing_fill_without_exec_pnl_shows_no_pnl() -> None:
    policy, sink, _ = notifier()
    policy.feed('execution', data('realshaped_ws_execution_linear_close_no_execpnl.json'))
    got = fields(sink.embeds[0])
    assert 'Realised PnL' not in got       # it said "Realised PnL: 0 USDT"
    assert got['Fee'] == '0.9289 USDT'
    assert_no_placeholders(sink.embeds[0])


def test_position_without_cur_realised_pnl_shows_no_pnl_field() -> None:
    policy, sink, _ = notifier()
    policy.feed('position', data('realshaped_ws_position_no_curRealisedPnl.json'))
    assert sink.titles == ['Position opened: BTCUSDT Long 0.02 BTC']
    got = fields(sink.embeds[0])
    assert 'Realised PnL' not in got       # it said "Realised PnL: - USDT"
    assert 'Liq. price' not in got         # liqPrice "" (it said "-")
    assert got['Unrealised PnL'] == '1.53 USDT'
    assert_no_placeholders(sink.embeds[0])


def test_classic_spot_wallet_with_empty_equity() -> None:
    policy, sink, clock = notifier(BYBIT_CATEGORY='spot')
    account = data('realshaped_ws_wallet_classic_spot.json')[0]
    policy.feed('wallet', [dict(account, coin=[dict(account['coin'][0], walletBalance='1000')],
                                creationTime=1)])
    policy.feed('wallet', [account])
    policy.tick(clock.now + 5)
    assert sink.titles == ['Balance USDT: 1000.00 → 990.01 (-9.99)']
    assert fields(sink.embeds[0]) == {'Wallet balance': '990.01 USDT', 'Change': '-9.99 USDT'}
    assert sink.embeds[0]['footer']['text'] == 'SPOT wallet'


def test_borrowed_usdt_reads_as_borrowed() -> None:
    policy, sink, clock = notifier()
    policy.feed('wallet', [wallet('1000.2', 1)])
    policy.feed('wallet', data('realshaped_ws_wallet_unified_borrow.json'))
    policy.tick(clock.now + 5)
    embed = sink.embeds[0]
    assert embed['title'] == 'Balance USDT: 1000.20 → -499.89 (-1500.09), 500.11 borrowed'
    assert fields(embed)['Borrowed'] == '500.11 USDT'
    assert_no_placeholders(embed)


def test_ioc_orders_not_fully_filled_read_as_partly_filled() -> None:
    linear, spot = data('realshaped_ws_order_ioc_rest_cancelled.json')
    policy, sink, _ = notifier()
    policy.feed('order', [linear])
    spot_policy, spot_sink, _ = notifier(BYBIT_CATEGORY='spot')
    spot_policy.feed('order', [spot])
    for embed in sink.embeds + spot_sink.embeds:
        assert embed['title'].startswith('Order Partially filled, rest cancelled: ')
        assert fields(embed)['Reason'] == 'the rest was cancelled (not fully filled)'
        assert embed['footer']['text'].endswith(' · EC_CancelForNoFullFill')
        assert embed['color'] != bot.COLOR['error']
        assert_no_placeholders(embed)
    assert fields(sink.embeds[0])['Filled'] == '0.3 / 0.5 BTC'
    assert fields(spot_sink.embeds[0])['Filled'] == '0.0012 / 0.002 BTC'


@pytest.mark.parametrize('name', sorted(p.name for p in PAYLOADS.glob('ws_private_*.json')) +
                         sorted(p.name for p in PAYLOADS.glob('realshaped_ws_*.json')))
def test_no_alert_of_any_payload_has_a_placeholder(name: str) -> None:
    items = data(name)
    topic = json.loads((PAYLOADS / name).read_text(encoding='utf-8'))['topic']
    policy, sink, clock = notifier()  # every category is alerted, each in its own units

    def handler(_ws: None, batch: list) -> None:
        policy.feed(topic, batch)

    if topic == 'wallet':  # a balance is alerted as a change from a known one
        first = copy.deepcopy(items)
        for account in first:
            account['creationTime'] = 1
            for row in account['coin']:
                row['walletBalance'] = '1'
        handler(None, first)
    handler(None, items)
    policy.tick(clock.now + 5)
    for embed in sink.embeds:
        assert_no_placeholders(embed)


def test_trouble_is_not_held_back_behind_the_startup_alert() -> None:
    sink, clock = Sink(), Clock()
    policy = bot.Notifier(settings(), sink, None, clock=clock)
    policy.on_status(None, {'event': 'down', 'stream': 'private', 'down_s': 60})
    assert sink.titles == ['Private stream down for 60 s']


def bybitws(channel: list[str], **kwargs: Any) -> bot.BybitWS:
    """A BybitWS that never connects (autostart off; its REST points nowhere it would use)."""
    return bot.BybitWS('key', 'secret', symbol='BTCUSDT', channel=channel, autostart=False,
                       rest_url='http://127.0.0.1:9', **kwargs)


def test_a_first_start_owes_no_fill_from_before_it_started() -> None:
    ws = bybitws(['execution'])
    ws.seed(exec_watermark_ms=1_700_000_000_000, first_start=True)
    assert ws.unrecovered_since_ms() == 1_700_000_000_000          # from the start itself
    ws.seed(exec_watermark_ms=1_700_000_000_000)                    # a restart: the last fill seen
    assert ws.unrecovered_since_ms() == 1_700_000_000_000 - bot.BACKFILL_MARGIN_MS


def test_a_bot_that_does_not_watch_fills_saves_when_it_stopped_not_an_old_watermark() -> None:
    # Months of public-only or BYBIT_EXECUTION_NOTIFY=false, then fills switched on: the backfill
    # must start at the last stop, not re-alert every fill since an old watermark.
    policy, _, _ = notifier({'version': 1, 'exec_watermark_ms': 1_600_000_000_000},
                            BYBIT_EXECUTION_NOTIFY='false')
    policy.ws = ws = bybitws(['order', 'position', 'wallet'], journal=policy.journal)
    ws.seed()
    assert ws.unrecovered_since_ms() is None
    before = bot.now_ms()
    assert policy.snapshot()['fills']['watermark_ms'] >= before
