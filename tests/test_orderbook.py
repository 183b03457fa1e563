"""BybitWS local state without a network: frames go straight into _on_message.

The order book follows docs/v5/websocket/public/orderbook.mdx: a snapshot resets, a delta with size
0 deletes, an unknown price inserts, a known one updates, and u == 1 means overwrite.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bybit_ws_notify as bot

PAYLOADS = Path(__file__).resolve().parent / 'payloads'
TOPICS = ['orderbook.200.BTCUSDT', 'publicTrade.BTCUSDT', 'tickers.BTCUSDT', 'kline.1.BTCUSDT']
BOOK = 'orderbook.200.BTCUSDT'


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding='utf-8'))


class Recorder:
    """Callbacks that record (ws, data) for each name."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[Any, Any]]] = {}

    def __getitem__(self, name: str) -> Callable[[Any, Any], None]:
        def record(ws: Any, data: Any) -> None:
            self.calls.setdefault(name, []).append((ws, copy.deepcopy(data)))
        return record

    def data(self, name: str) -> list[Any]:
        return [data for _, data in self.calls.get(name, [])]

    def callbacks(self, *names: str) -> dict[str, Callable[[Any, Any], None]]:
        return {name: self[name] for name in names}


@pytest.fixture(autouse=True)
def fresh_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad frames are logged once a minute per kind; do not eat other tests' first log line."""
    monkeypatch.setattr(bot, 'log_throttled', bot._LogThrottle())


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def ws(rec: Recorder) -> bot.BybitWS:
    return bot.BybitWS('', '', symbol='BTCUSDT', channel=list(TOPICS),
                       callback=rec.callbacks('orderbook', 'trade', 'instrument', 'ohlcv'),
                       autostart=False)


def feed(ws: bot.BybitWS, frame: Any, kind: str = 'public') -> None:
    stream = next(st for st in ws._streams if st.kind == kind)
    ws._on_message(stream, json.dumps(frame).encode())


def book_frame(kind: str, bids: list[list[str]], asks: list[list[str]], u: int = 100,
               topic: str = BOOK) -> dict[str, Any]:
    return {'topic': topic, 'type': kind, 'ts': 1687940967000 + u,
            'data': {'s': 'BTCUSDT', 'b': bids, 'a': asks, 'u': u, 'seq': 66544703000 + u},
            'cts': 1687940967000}


def levels(pairs: list[tuple[str, str]]) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s in pairs]


def assert_sorted(book: dict[str, list[tuple[float, float]]]) -> None:
    bid_prices = [p for p, _ in book['bids']]
    ask_prices = [p for p, _ in book['asks']]
    assert all(a > b for a, b in zip(bid_prices, bid_prices[1:]))
    assert all(a < b for a, b in zip(ask_prices, ask_prices[1:]))
    assert all(size > 0 for _, size in book['bids'] + book['asks'])


# A snapshot consistent with the official delta: every price it deletes or updates is in it.
SNAPSHOT_BIDS = [['30247.20', '10.5'], ['30245.40', '1.0'], ['30240.00', '2.0'],
                 ['30238.00', '3.0']]
SNAPSHOT_ASKS = [['30248.70', '1.0'], ['30249.30', '2.0'], ['30249.60', '0.5'],
                 ['30252.20', '1.0'], ['30255.00', '4.0']]


def official_delta() -> dict[str, Any]:
    frame = load('ws_public_orderbook_delta.json')
    frame['topic'] = BOOK
    return frame


# Order book ######################################################################################

def test_snapshot_builds_a_sorted_book(ws: bot.BybitWS) -> None:
    # Levels arrive unsorted here, with one zero-size level that must not appear.
    feed(ws, book_frame('snapshot', [['30240.00', '2.0'], ['30247.20', '10.5'], ['30245.40', '1.0'],
                                     ['30241.00', '0']],
                        [['30252.20', '1.0'], ['30248.70', '1.0'], ['30249.30', '0']]))
    book = ws.get_orderbooks()
    assert book == {'bids': [(30247.2, 10.5), (30245.4, 1.0), (30240.0, 2.0)],
                    'asks': [(30248.7, 1.0), (30252.2, 1.0)]}
    assert ws.data['timestamp']['orderbook'] == 1687940967100


def test_official_delta_applied_to_snapshot(ws: bot.BybitWS, rec: Recorder) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, official_delta())
    book = ws.get_orderbooks()
    # bids: 30247.2 and 30245.4 updated, 30242.1 and 30240.3 inserted, 30240.0 deleted.
    assert book['bids'] == levels([('30247.20', '30.028'), ('30245.40', '0.224'),
                                   ('30242.10', '1.593'), ('30240.30', '1.305'),
                                   ('30238.00', '3.0')])
    # asks: 30248.7 and 30249.6 deleted, 30249.3 and 30252.2 updated, three inserted.
    assert book['asks'] == levels([('30249.30', '0.892'), ('30249.50', '1.778'),
                                   ('30251.90', '2.947'), ('30252.20', '0.659'),
                                   ('30252.50', '4.591'), ('30255.00', '4.0')])
    assert ws.data['timestamp']['orderbook'] == 1687940967466
    assert [data['u'] for data in rec.data('orderbook')] == [100, 177400507]
    assert_sorted(book)


def test_delete_of_unknown_price_is_harmless(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('delta', [['30000.00', '0']], [['40000.00', '0']], u=101))
    assert ws.get_orderbooks() == {'bids': levels(SNAPSHOT_BIDS), 'asks': levels(SNAPSHOT_ASKS)}


def test_new_snapshot_resets(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('snapshot', [['100.5', '1']], [['101', '2']], u=5))
    assert ws.get_orderbooks() == {'bids': [(100.5, 1.0)], 'asks': [(101.0, 2.0)]}


def test_delta_with_u_1_overwrites(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('delta', [['200', '1'], ['201', '0']], [['202', '3']], u=1))
    assert ws.get_orderbooks() == {'bids': [(200.0, 1.0)], 'asks': [(202.0, 3.0)]}
    feed(ws, book_frame('delta', [['199', '4']], [], u=2))
    assert ws.get_orderbooks()['bids'] == [(200.0, 1.0), (199.0, 4.0)]


def test_delta_before_snapshot_is_ignored(ws: bot.BybitWS, rec: Recorder) -> None:
    feed(ws, official_delta())
    assert ws.get_orderbooks() == {'bids': [], 'asks': []}
    assert 'orderbook' not in rec.calls
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, official_delta())
    assert len(ws.get_orderbooks()['asks']) == 6


def test_unknown_book_type_is_ignored(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('partial', [['1', '1']], [['2', '2']]))
    assert ws.get_orderbooks() == {'bids': levels(SNAPSHOT_BIDS), 'asks': levels(SNAPSHOT_ASKS)}


def test_malformed_delta_changes_nothing(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    # A good bid level, then a bad ask level: the frame is refused whole, not half applied.
    feed(ws, book_frame('delta', [['30246.00', '5']], [['30250.00', '-1']], u=101))
    feed(ws, book_frame('delta', [['30246.00', '5']], [['NaN', '1']], u=102))
    feed(ws, book_frame('delta', [['30246.00', '5', '9']], [], u=103))
    assert ws.get_orderbooks() == {'bids': levels(SNAPSHOT_BIDS), 'asks': levels(SNAPSHOT_ASKS)}


def test_other_symbol_book_does_not_touch_ours(ws: bot.BybitWS, rec: Recorder) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('snapshot', [['1', '1']], [['2', '2']], topic='orderbook.200.ETHUSDT'))
    assert ws.get_orderbooks()['bids'] == levels(SNAPSHOT_BIDS)
    assert len(rec.data('orderbook')) == 2


def test_get_orderbooks_returns_a_copy(ws: bot.BybitWS) -> None:
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    copy_ = ws.get_orderbooks()
    assert copy_['bids'][0] == (30247.2, 10.5)   # best bid first
    assert copy_['asks'][0] == (30248.7, 1.0)    # best ask first
    copy_['bids'].clear()
    copy_['asks'].insert(0, (1.0, 1.0))
    copy_['asks'].append((9e9, 1.0))
    again = ws.get_orderbooks()
    assert again == {'bids': levels(SNAPSHOT_BIDS), 'asks': levels(SNAPSHOT_ASKS)}
    feed(ws, book_frame('delta', [['30247.20', '0']], [], u=101))
    assert again['bids'][0] == (30247.2, 10.5)   # an earlier copy does not change either


def test_board_snapshot_is_the_live_book(ws: bot.BybitWS) -> None:
    board = ws.data['board_snapshot']
    bids, asks = board['bids'], board['asks']
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, official_delta())
    feed(ws, book_frame('snapshot', [['10', '1'], ['11', '2']], [['12', '3']], u=7))
    feed(ws, book_frame('delta', [['9', '1']], [['12', '0'], ['13', '1']], u=8))
    assert ws.data['board_snapshot'] is board
    assert board['bids'] is bids
    assert board['asks'] is asks
    assert bids == [(11.0, 2.0), (10.0, 1.0), (9.0, 1.0)]
    assert asks == [(13.0, 1.0)]
    assert ws.get_orderbooks() == {'bids': bids, 'asks': asks}


def test_random_deltas_match_a_dict_model(ws: bot.BybitWS) -> None:
    rng = random.Random(20240501)
    ticks = [f'{30000 + i * 0.5:.2f}' for i in range(120)]
    model: dict[str, dict[float, float]] = {'bids': {}, 'asks': {}}

    def random_side(count: int, zero_share: float) -> list[list[str]]:
        out = []
        for _ in range(count):
            size = '0' if rng.random() < zero_share else f'{rng.randint(1, 5000) / 1000:.3f}'
            out.append([rng.choice(ticks), size])
        return out

    def apply(side: str, updates: list[list[str]], reset: bool) -> None:
        if reset:
            model[side] = {}
        for price, size in updates:
            if float(size) == 0:
                model[side].pop(float(price), None)
            else:
                model[side][float(price)] = float(size)

    for step in range(1500):
        kind = 'snapshot' if step == 0 or rng.random() < 0.01 else 'delta'
        u = 1 if kind == 'delta' and rng.random() < 0.005 else step + 2
        reset = kind == 'snapshot' or u == 1
        bids = random_side(rng.randint(0, 40 if reset else 8), 0.0 if reset else 0.4)
        asks = random_side(rng.randint(0, 40 if reset else 8), 0.0 if reset else 0.4)
        apply('bids', bids, reset)
        apply('asks', asks, reset)
        feed(ws, book_frame(kind, bids, asks, u=u))
        book = ws.get_orderbooks()
        assert book['bids'] == sorted(model['bids'].items(), reverse=True), step
        assert book['asks'] == sorted(model['asks'].items()), step
        assert ws.data['board_snapshot']['bids'] == book['bids']


# Trades, tickers, klines #########################################################################

def test_trades_update_execution_and_last_price(ws: bot.BybitWS, rec: Recorder) -> None:
    frame = load('ws_public_trade.json')
    feed(ws, frame)
    # Each trade handed on carries its category (its symbol is Bybit's 's').
    assert list(ws.data['execution']) == [dict(t, category='linear') for t in frame['data']]
    assert ws.data['last_price'] == 16578.5
    assert ws.data['timestamp']['trade'] == 1672304486868
    later = dict(frame['data'][0], p='16580.00', i='second')
    feed(ws, dict(frame, data=[dict(frame['data'][0], p='16579.00', i='first'), later]))
    assert ws.data['last_price'] == 16580.0  # the last trade of the frame
    assert len(ws.data['execution']) == 3
    assert rec.data('trade')[0] == [dict(t, category='linear') for t in frame['data']]
    ws_arg = rec.calls['trade'][0][0]
    assert ws_arg is ws


def test_execution_deque_is_bounded(ws: bot.BybitWS) -> None:
    trade = load('ws_public_trade.json')
    for i in range(250):
        feed(ws, dict(trade, data=[dict(trade['data'][0], i=str(i))]))
    assert len(ws.data['execution']) == 200
    assert ws.data['execution'][0]['i'] == '50'


def test_ticker_snapshot_then_delta_merge(ws: bot.BybitWS, rec: Recorder) -> None:
    snapshot = load('ws_public_tickers_linear_perpetual.json')
    feed(ws, snapshot)
    assert ws.data['instrument'] == snapshot['data']
    assert ws.data['last_price'] == 66666.6
    delta = {'topic': 'tickers.BTCUSDT', 'type': 'delta', 'cs': 9532239430, 'ts': 1760325052730,
             'data': {'symbol': 'BTCUSDT', 'lastPrice': '66670.10', 'bid1Price': '66670.00',
                      'markPrice': '66668.00'}}
    feed(ws, delta)
    merged = dict(snapshot['data'], lastPrice='66670.10', bid1Price='66670.00', markPrice='66668.00')
    assert ws.data['instrument'] == merged
    assert ws.data['last_price'] == 66670.1
    assert ws.data['timestamp']['instrument'] == 1760325052730
    # A delta without lastPrice keeps the last price.
    feed(ws, dict(delta, data={'symbol': 'BTCUSDT', 'fundingRate': '0.0001'}))
    assert ws.data['last_price'] == 66670.1
    assert ws.data['instrument']['fundingRate'] == '0.0001'
    assert ws.data['instrument']['volume24h'] == '73191.3870'
    # A new snapshot replaces everything.
    feed(ws, dict(snapshot, data={'symbol': 'BTCUSDT', 'lastPrice': '1.5'}))
    assert ws.data['instrument'] == {'symbol': 'BTCUSDT', 'lastPrice': '1.5'}
    assert [t.get('lastPrice') for t in rec.data('instrument')] == [
        '66666.60', '66670.10', None, '1.5']


def test_confirmed_klines_stored_once(ws: bot.BybitWS, rec: Recorder) -> None:
    frame = load('ws_public_kline.json')
    open_candle = frame['data'][0]
    feed(ws, frame)  # confirm: false -> not stored, but the callback sees it
    assert list(ws.data['ohlcv']) == []
    closed = dict(open_candle, confirm=True)
    feed(ws, dict(frame, data=[closed]))
    feed(ws, dict(frame, data=[closed]))  # Bybit may push the closed candle again
    named = {'symbol': 'BTCUSDT', 'category': 'linear'}  # a candle says whose it is
    assert list(ws.data['ohlcv']) == [dict(closed, **named)]
    nxt = dict(closed, start=closed['start'] + 300_000, end=closed['end'] + 300_000)
    feed(ws, dict(frame, data=[nxt, dict(nxt, confirm=False)]))
    assert list(ws.data['ohlcv']) == [dict(closed, **named), dict(nxt, **named)]
    assert len(rec.data('ohlcv')) == 4
    assert rec.data('ohlcv')[0] == [dict(open_candle, **named)]


# Callbacks #######################################################################################

def test_callback_exception_is_logged_and_stream_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    def broken(ws: bot.BybitWS, data: Any) -> None:
        raise RuntimeError('callback exploded')

    def good(ws: bot.BybitWS, data: Any) -> None:
        seen.append(data)

    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=list(TOPICS),
                     callback={'trade': broken, 'instrument': good, 'orderbook': broken},
                     autostart=False)
    trade = load('ws_public_trade.json')
    with caplog.at_level(logging.ERROR, logger='bybit_ws_notify'):
        feed(ws, trade)
        feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
        feed(ws, load('ws_public_tickers_linear_perpetual.json'))
        feed(ws, dict(trade, data=[dict(trade['data'][0], p='17000')]))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "the 'trade' callback raised; the stream and the other alerts go on",
        "the 'orderbook' callback raised; the stream and the other alerts go on",
        "the 'trade' callback raised; the stream and the other alerts go on"]
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in errors)
    assert len(seen) == 1
    assert ws.data['last_price'] == 17000.0
    assert ws.get_orderbooks()['bids'] == levels(SNAPSHOT_BIDS)


def test_no_callback_is_fine() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=list(TOPICS), autostart=False)
    feed(ws, load('ws_public_trade.json'))
    assert ws.data['last_price'] == 16578.5


# Topics ##########################################################################################

def test_default_channels_are_v5() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSDT', autostart=False)
    assert [(st.kind, st.topics) for st in ws._streams] == [
        ('public', ['publicTrade.BTCUSDT', 'tickers.BTCUSDT', 'orderbook.200.BTCUSDT',
                    'kline.1.BTCUSDT'])]
    keyed = bot.BybitWS('k', 's', symbol='btcusd', period='5', autostart=False)
    assert [(st.kind, st.topics) for st in keyed._streams] == [
        ('public', ['publicTrade.BTCUSD', 'tickers.BTCUSD', 'orderbook.200.BTCUSD',
                    'kline.5.BTCUSD']),
        ('private', ['position', 'execution', 'order', 'wallet'])]
    assert keyed.category == 'inverse'


def test_legacy_topics_are_translated(caplog: pytest.LogCaptureFixture, rec: Recorder) -> None:
    with caplog.at_level(logging.WARNING, logger='bybit_ws_notify'):
        ws = bot.BybitWS('', '', symbol='BTCUSD',
                         channel=['trade.BTCUSD', 'instrument_info.100ms.BTCUSD',
                                  'orderBook_200.100ms.BTCUSD', 'klineV2.1.BTCUSD'],
                         callback=rec.callbacks('trade'), autostart=False)
    assert ws.topics == ['publicTrade.BTCUSD', 'tickers.BTCUSD', 'orderbook.200.BTCUSD',
                         'kline.1.BTCUSD']
    assert sum('retired inverse /realtime API' in r.getMessage() for r in caplog.records) == 4
    feed(ws, book_frame('snapshot', [['27000', '100']], [['27001', '200']],
                        topic='orderbook.200.BTCUSD'))
    assert ws.get_orderbooks() == {'bids': [(27000.0, 100.0)], 'asks': [(27001.0, 200.0)]}


def test_duplicate_topics_once() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSD', channel=['trade.BTCUSD', 'publicTrade.BTCUSD'],
                     autostart=False)
    assert ws.topics == ['publicTrade.BTCUSD']


def test_dcp_topics_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger='bybit_ws_notify'):
        ws = bot.BybitWS('k', 's', symbol='BTCUSDT',
                         channel=['dcp', 'dcp.future', 'dcp.spot', 'order'], autostart=False)
    assert ws.topics == ['order']
    assert sum('must never subscribe to dcp' in r.getMessage() for r in caplog.records) == 3


def test_private_topics_need_a_key() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=['order', 'kline.1.BTCUSDT'],
                     autostart=False)
    assert [(st.kind, st.topics) for st in ws._streams] == [('public', ['kline.1.BTCUSDT'])]


# Private handlers ################################################################################

@pytest.fixture
def pws(rec: Recorder) -> bot.BybitWS:
    return bot.BybitWS('k', 's', symbol='BTCUSDT',
                       channel=['kline.1.BTCUSDT', 'order', 'execution', 'position', 'wallet'],
                       callback=rec.callbacks('order', 'execution', 'position', 'wallet'),
                       autostart=False)


def test_private_stream_layout(pws: bot.BybitWS) -> None:
    assert [(st.kind, st.topics) for st in pws._streams] == [
        ('public', ['kline.1.BTCUSDT']), ('private', ['order', 'execution', 'position', 'wallet'])]


def test_execution_dedup_by_exec_id(pws: bot.BybitWS, rec: Recorder) -> None:
    frame = load('ws_private_execution.json')
    feed(pws, frame, 'private')
    feed(pws, frame, 'private')
    assert rec.data('execution') == [frame['data']]
    assert rec.calls['execution'][0][0] is pws
    assert list(pws.data['my_execution']) == frame['data']
    assert pws.journal.exec_watermark_ms == 1746270400353
    second = dict(frame['data'][0], execId='another', execTime='1746270400999')
    feed(pws, dict(frame, data=[frame['data'][0], second]), 'private')
    assert rec.data('execution')[1] == [second]
    assert pws.journal.exec_watermark_ms == 1746270400999


def test_execution_seed_ids_are_not_repeated(pws: bot.BybitWS, rec: Recorder) -> None:
    frame = load('ws_private_execution.json')
    pws.seed(exec_watermark_ms=1, exec_ids=[frame['data'][0]['execId']])
    feed(pws, frame, 'private')
    assert 'execution' not in rec.calls


def test_malformed_fill_does_not_swallow_valid_fill(pws: bot.BybitWS, rec: Recorder) -> None:
    frame = load('ws_private_execution.json')
    good = frame['data'][0]
    bad = dict(good, execId='bad-fill', execTime='x')
    feed(pws, dict(frame, data=[good, bad]), 'private')
    feed(pws, dict(frame, data=[good]), 'private')  # e.g. the REST backfill finds it again
    delivered = [fill['execId'] for batch in rec.data('execution') for fill in batch]
    assert good['execId'] in delivered


def test_open_orders_follow_status(pws: bot.BybitWS, rec: Recorder) -> None:
    order = load('rest_order_history.json')['result']['list'][0]
    frame = {'id': 'x', 'topic': 'order', 'creationTime': 1684476068372, 'data': []}
    # One order never reopens (issue 7 point 7): each lifecycle is its own order.
    steps = [('a', 'New', True), ('a', 'PartiallyFilled', True), ('a', 'Filled', False),
             ('b', 'Untriggered', True), ('b', 'Triggered', False), ('c', 'Untriggered', True),
             ('c', 'Deactivated', False), ('d', 'New', True), ('d', 'Cancelled', False),
             ('e', 'New', True), ('e', 'Rejected', False)]
    for order_id, status, open_ in steps:
        feed(pws, dict(frame, data=[dict(order, orderId=order_id, orderStatus=status)]), 'private')
        assert (order_id in pws.data['my_open_order']) is open_, status
        if open_:
            assert pws.data['my_open_order'][order_id]['orderStatus'] == status
    assert [batch[0]['orderStatus'] for batch in rec.data('order')] == [s for _, s, _ in steps]
    assert len(pws.data['my_order']) == len(steps)
    # A status already passed (a stale frame) changes nothing and calls nobody.
    for order_id, status in (('a', 'PartiallyFilled'), ('b', 'Untriggered'), ('e', 'New')):
        feed(pws, dict(frame, data=[dict(order, orderId=order_id, orderStatus=status)]), 'private')
        assert order_id not in pws.data['my_open_order']
    assert len(rec.data('order')) == len(steps)


def test_several_orders_in_one_frame(pws: bot.BybitWS) -> None:
    order = load('rest_order_history.json')['result']['list'][0]
    frame = {'topic': 'order', 'data': [dict(order, orderId='a', orderStatus='New'),
                                        dict(order, orderId='b', orderStatus='Untriggered'),
                                        dict(order, orderId='a', orderStatus='Filled')]}
    feed(pws, frame, 'private')
    assert sorted(pws.data['my_open_order']) == ['b']


def test_position_and_wallet_data(pws: bot.BybitWS, rec: Recorder) -> None:
    position = load('ws_private_position.json')
    feed(pws, position, 'private')
    assert pws.data['position'] == position['data'][0]
    other = dict(position['data'][0], symbol='ETHUSDT', size='2', side='Buy')
    feed(pws, dict(position, data=[other]), 'private')
    assert pws.data['position'] == position['data'][0]  # only this symbol's position
    assert 'linear:ETHUSDT:2' in pws.journal.open_positions  # re-read after a reconnect
    assert rec.data('position') == [position['data'], [other]]

    wallet = load('ws_private_wallet.json')
    feed(pws, wallet, 'private')
    # The message's creationTime is kept on the item: it orders wallet updates (LatestKnown).
    assert pws.data['wallet'] == dict(wallet['data'][0], creationTime=wallet['creationTime'])
    assert rec.data('wallet') == [[pws.data['wallet']]]
    assert pws.data['timestamp'].keys() >= {'position', 'wallet'}


def test_auth_and_subscribe_acks(pws: bot.BybitWS, rec: Recorder) -> None:
    private = next(st for st in pws._streams if st.kind == 'private')
    feed(pws, load('ws_auth_response.json'), 'private')
    assert private.authed is True
    assert pws.wait_authenticated(0) == 'ok'
    # One request of up to 10 topics; the private ack carries no req_id.
    assert list(private.pending.values()) == [['order', 'execution', 'position', 'wallet']]
    feed(pws, load('ws_subscribe_response_private.json'), 'private')
    assert private.ready is True
    assert not private.pending
    feed(pws, load('ws_pong_private.json'), 'private')
    assert private.topics == ['order', 'execution', 'position', 'wallet']


def test_rejected_subscription_is_dropped_and_reported(rec: Recorder) -> None:
    ws = bot.BybitWS('k', 's', symbol='BTCUSDT', channel=['order', 'wallet'],
                     callback=rec.callbacks('status'), autostart=False)
    private = ws._streams[0]
    feed(ws, load('ws_auth_response.json'), 'private')
    feed(ws, {'success': False, 'ret_msg': 'error:handler not found,topic:wallet',
              'conn_id': 'c', 'op': 'subscribe'}, 'private')
    assert private.topics == ['order']
    assert rec.data('status') == [{'event': 'topic_rejected', 'stream': 'private', 'category': '',
                                   'topic': 'wallet',
                                   'reason': 'error:handler not found,topic:wallet'}]
    assert private.ready is False
    feed(ws, load('ws_subscribe_response_private.json'), 'private')
    assert private.ready is True


def test_other_symbol_trades_do_not_set_last_price() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSDT',
                     channel=['publicTrade.BTCUSDT', 'publicTrade.ETHUSDT'], autostart=False)
    trade = load('ws_public_trade.json')
    feed(ws, trade)
    assert ws.data['last_price'] == 16578.5
    eth = dict(trade['data'][0], s='ETHUSDT', p='1200.50')
    feed(ws, dict(trade, topic='publicTrade.ETHUSDT', data=[eth]))
    assert ws.data['last_price'] == 16578.5


def test_depth_1_topic_does_not_wipe_the_depth_200_book() -> None:
    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=[BOOK, 'orderbook.1.BTCUSDT'],
                     autostart=False)
    feed(ws, book_frame('snapshot', SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    feed(ws, book_frame('snapshot', [['30247.20', '10.5']], [['30248.70', '1.0']], u=101,
                        topic='orderbook.1.BTCUSDT'))
    assert ws.get_orderbooks() == {'bids': levels(SNAPSHOT_BIDS), 'asks': levels(SNAPSHOT_ASKS)}
