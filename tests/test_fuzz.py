"""Fuzzing BybitWS._on_message: random bytes, random JSON and mutated official payloads.

No exception may escape _on_message (a bad frame is a log line, never a dead stream), and after
every frame the local order book stays well formed: bids strictly descending, asks strictly
ascending, every price and size a finite number above zero.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bybit_ws_notify as bot

PAYLOADS = Path(__file__).resolve().parent / 'payloads'
SYMBOL = 'BTCUSDT'
BOOK = f'orderbook.200.{SYMBOL}'
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding='utf-8'))


SNAPSHOT = {'topic': BOOK, 'type': 'snapshot', 'ts': 1687940967000,
            'data': {'s': SYMBOL, 'b': [['30247.20', '10.5'], ['30245.40', '1.0'],
                                        ['30240.00', '2.0'], ['30238.00', '3.0']],
                     'a': [['30248.70', '1.0'], ['30249.30', '2.0'], ['30249.60', '0.5'],
                           ['30252.20', '1.0'], ['30255.00', '4.0']],
                     'u': 177400506, 'seq': 66544703000},
            'cts': 1687940966999}
DELTA = dict(load('ws_public_orderbook_delta.json'), topic=BOOK)
BASES: list[dict[str, Any]] = [
    SNAPSHOT, DELTA, load('ws_public_trade.json'), load('ws_public_tickers_linear_perpetual.json'),
    dict(load('ws_public_kline.json'), topic=f'kline.1.{SYMBOL}'),
    load('ws_private_order.json'), load('ws_private_execution.json'),
    load('ws_private_position.json'), load('ws_private_wallet.json'),
    load('ws_auth_response.json'), load('ws_subscribe_response_private.json'),
    load('ws_subscribe_response_public_linear_inverse.json'), load('ws_pong_private.json'),
    load('ws_pong_public_linear_inverse.json'),
]
TOPICS = [BOOK, 'orderbook.50.BTCUSDT', f'publicTrade.{SYMBOL}', f'tickers.{SYMBOL}',
          f'kline.1.{SYMBOL}', 'order', 'execution', 'position', 'wallet', 'greeks', 'dcp',
          'unknown.topic', '', 'orderbook', 'orderbook.200.']


def make_ws() -> tuple[bot.BybitWS, list[str]]:
    calls: list[str] = []

    def record(name: str) -> Callable[[Any, Any], None]:
        def callback(ws: Any, data: Any) -> None:
            calls.append(name)
        return callback

    names = ('trade', 'instrument', 'orderbook', 'ohlcv', 'position', 'execution', 'order',
             'wallet', 'status', 'greeks')
    ws = bot.BybitWS('k', 's', symbol=SYMBOL,
                     channel=[BOOK, f'publicTrade.{SYMBOL}', f'tickers.{SYMBOL}',
                              f'kline.1.{SYMBOL}', 'order', 'execution', 'position', 'wallet'],
                     callback={name: record(name) for name in names}, autostart=False)
    return ws, calls


def feed_raw(ws: bot.BybitWS, raw: bytes) -> None:
    for stream in ws._streams:  # the same frame on both connections
        ws._on_message(stream, raw)
        check_book(ws)


def dumps(frame: Any) -> bytes:
    return json.dumps(frame, allow_nan=True).encode()


def check_book(ws: bot.BybitWS) -> None:
    board = ws.data['board_snapshot']
    assert board['bids'] is ws._book.bids
    assert board['asks'] is ws._book.asks
    book = ws.get_orderbooks()
    for side, levels in book.items():
        for level in levels:
            assert type(level) is tuple
            assert len(level) == 2
            price, size = level
            assert type(price) is float
            assert type(size) is float
            assert 0 < price < math.inf, (side, level)
            assert 0 < size < math.inf, (side, level)
    bid_prices = [p for p, _ in book['bids']]
    ask_prices = [p for p, _ in book['asks']]
    assert all(a > b for a, b in zip(bid_prices, bid_prices[1:])), bid_prices
    assert all(a < b for a, b in zip(ask_prices, ask_prices[1:])), ask_prices
    assert ws._book.bid_keys == [-p for p in bid_prices]
    assert ws._book.ask_keys == ask_prices


def check_still_works(ws: bot.BybitWS) -> None:
    """After any junk, a good snapshot and the official delta still give the right book."""
    feed_raw(ws, dumps(SNAPSHOT))
    feed_raw(ws, dumps(DELTA))
    book = ws.get_orderbooks()
    assert book['bids'][0] == (30247.2, 30.028)
    assert book['asks'][0] == (30249.3, 0.892)
    assert len(book['bids']) == 5
    assert len(book['asks']) == 6


@pytest.fixture(autouse=True)
def fresh_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad frames are logged once a minute per kind; do not eat other tests' first log line."""
    monkeypatch.setattr(bot, 'log_throttled', bot._LogThrottle())


# Strategies ######################################################################################

_NUMBERS = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf, 10 ** 400]))
_NUMERIC_TEXT = st.one_of(
    st.sampled_from(['0', '-0', '0.000', '-1', '-30247.2', 'NaN', 'nan', '-nan', 'Infinity', 'inf',
                     '-inf', '1e400', '-1e400', '1e-400', '1e308', '0x10', '1_000', ' 5 ', '',
                     '٣', '1e', '.', '--1', '+1', '30247.20', '1.0']),
    _NUMBERS.map(str))
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _NUMERIC_TEXT,
                     st.text(max_size=30))
_JSON = st.recursive(_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=6), st.dictionaries(st.text(max_size=8), children, max_size=6)),
    max_leaves=30)
_LEVEL = st.one_of(
    st.lists(st.one_of(_NUMERIC_TEXT, _NUMBERS, st.none(), st.booleans()), min_size=2, max_size=2),
    st.lists(_NUMERIC_TEXT, max_size=4), _JSON)
_HUGE = st.sampled_from(['9' * 5000, 'x' * 100_000, '[' * 3000, '1' + '0' * 400])


@st.composite
def _replacement(draw: st.DrawFn) -> Any:
    return draw(st.one_of(
        st.just(''), st.none(), _HUGE, _JSON, _SCALARS, _NUMERIC_TEXT,
        st.lists(_LEVEL, max_size=8),
        st.just([[['30247.2', '1']]]), st.just({'b': [['1', '1']]}), st.just([[]] * 3)))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += _paths(child, (*prefix, i))
    return out


def _parent(frame: Any, path: tuple) -> Any:
    node = frame
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutated_frames(draw: st.DrawFn) -> Any:
    """An official payload with 1-4 mutations: keys deleted, values replaced with "", None, huge
    strings, nested junk, wrong types, NaN/Infinity/negative numbers, junk order-book levels."""
    frame: Any = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(frame)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(['delete', 'replace', 'replace', 'levels', 'topic']))
        if action == 'topic' and isinstance(frame, dict):
            frame['topic'] = draw(st.sampled_from(TOPICS))
            if draw(st.booleans()):
                frame['type'] = draw(st.sampled_from(['snapshot', 'delta', 'Snapshot', None, 1]))
        elif action == 'levels' and isinstance(frame, dict):
            data = frame.get('data')
            if isinstance(data, dict):
                data[draw(st.sampled_from(['b', 'a', 'u']))] = draw(
                    st.one_of(st.lists(_LEVEL, max_size=8), _JSON, st.just(1)))
        elif not path:
            frame = draw(_replacement())
        else:
            parent = _parent(frame, path)
            if action == 'delete':
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(_replacement())
    return frame


# Tests ###########################################################################################

def test_random_bytes_never_raise() -> None:
    ws, _ = make_ws()

    @FUZZ
    @given(raw=st.one_of(st.binary(max_size=3000), st.text(max_size=300).map(str.encode),
                         st.binary(max_size=200).map(lambda b: dumps(SNAPSHOT)[:-20] + b)))
    def run(raw: bytes) -> None:
        feed_raw(ws, dumps(SNAPSHOT))
        feed_raw(ws, raw)
        assert ws.get_orderbooks()['bids'][0] == (30247.2, 10.5)

    run()
    check_still_works(ws)


def test_random_json_never_raises() -> None:
    ws, calls = make_ws()
    frames = st.one_of(
        _JSON,
        st.fixed_dictionaries({'topic': st.sampled_from(TOPICS), 'data': _JSON},
                              optional={'type': st.sampled_from(['snapshot', 'delta', 'x']),
                                        'ts': _SCALARS}),
        st.fixed_dictionaries({'op': st.sampled_from(['auth', 'subscribe', 'pong', 'ping', 'x']),
                               'success': _SCALARS, 'ret_msg': _SCALARS},
                              optional={'req_id': _SCALARS, 'data': _JSON}),
    )

    @FUZZ
    @given(frame=frames)
    def run(frame: Any) -> None:
        feed_raw(ws, dumps(frame))

    run()  # one BybitWS for every example: junk piles up as it would on a live stream
    check_still_works(ws)
    assert 'orderbook' in calls


def test_mutated_official_payloads_never_raise() -> None:
    ws, calls = make_ws()

    @FUZZ
    @given(snapshot_first=st.booleans(), frames=st.lists(mutated_frames(), min_size=1, max_size=4))
    def run(snapshot_first: bool, frames: list[Any]) -> None:
        if snapshot_first:
            feed_raw(ws, dumps(SNAPSHOT))
            assert len(ws.get_orderbooks()['bids']) == 4
        for frame in frames:
            feed_raw(ws, dumps(frame))

    run()
    # After the junk, every official payload still reaches its callback. (Whether the mutated
    # examples happen to include an intact frame of each kind depends on hypothesis's version.)
    calls.clear()
    for frame in BASES:
        feed_raw(ws, dumps(frame))
    check_still_works(ws)
    assert {'orderbook', 'trade', 'instrument', 'ohlcv'} <= set(calls)


_GRID = [f'{30230 + i * 0.5:.2f}' for i in range(60)]
_GOOD_LEVEL = st.tuples(st.sampled_from(_GRID),
                        st.sampled_from(['0', '0.000', '0.001', '1', '2.5', '30.028', '1e3'])).map(list)
_BAD_LEVEL = st.one_of(
    st.lists(st.one_of(_NUMERIC_TEXT, _NUMBERS, st.none(), st.booleans()), min_size=2, max_size=2),
    st.lists(_NUMERIC_TEXT, max_size=4), _SCALARS, st.dictionaries(st.text(max_size=3), _SCALARS,
                                                                    max_size=2))
_BOOK_SIDE = st.lists(st.one_of(_GOOD_LEVEL, _GOOD_LEVEL, _GOOD_LEVEL, _BAD_LEVEL), max_size=6)


def test_order_book_levels_fuzz() -> None:
    """Only the levels change: good levels mixed with junk prices and sizes."""
    ws, _ = make_ws()
    stamps = itertools.count(1)
    accepted = []

    @FUZZ
    @given(steps=st.lists(st.tuples(st.sampled_from(['snapshot', 'delta', 'delta', 'delta']),
                                    _BOOK_SIDE, _BOOK_SIDE,
                                    st.sampled_from([2, 2, 177400507, 1, None, '1', True])),
                          min_size=1, max_size=5))
    def run(steps: list[tuple[str, list[Any], list[Any], Any]]) -> None:
        for kind, bids, asks, u in steps:
            stamp = next(stamps)
            frame = {'topic': BOOK, 'type': kind, 'ts': stamp,
                     'data': {'s': SYMBOL, 'b': bids, 'a': asks, 'u': u}}
            feed_raw(ws, dumps(frame))
            if ws.data['timestamp'].get('orderbook') == stamp:
                accepted.append(stamp)

    feed_raw(ws, dumps(SNAPSHOT))
    run()
    assert len(accepted) > 20  # the junk did not crowd out the updates that should apply
    check_still_works(ws)


def test_valid_levels_in_odd_but_legal_forms() -> None:
    """Numbers as JSON numbers, exponents, signs and spacing are still read as numbers."""
    ws, _ = make_ws()
    feed_raw(ws, dumps({'topic': BOOK, 'type': 'snapshot',
                        'data': {'b': [[100.5, 2], ['1.005E2', '3'], [' 99 ', '+1']],
                                 'a': [['101', '1e0'], ['1.02e2', '0.5']], 'u': 9}}))
    assert ws.get_orderbooks() == {'bids': [(100.5, 3.0), (99.0, 1.0)],
                                   'asks': [(101.0, 1.0), (102.0, 0.5)]}


def test_huge_frame_is_ignored() -> None:
    ws, calls = make_ws()
    feed_raw(ws, dumps(SNAPSHOT))
    before = ws.get_orderbooks()
    huge = copy.deepcopy(SNAPSHOT)
    huge['data']['b'] = [['1', '1']]
    huge['data']['pad'] = 'x' * bot.MAX_FRAME_BYTES
    raw = dumps(huge)
    assert len(raw) > bot.MAX_FRAME_BYTES
    calls.clear()
    feed_raw(ws, raw)
    assert ws.get_orderbooks() == before
    assert calls == []
    check_still_works(ws)


def test_deeply_nested_frame_is_ignored() -> None:
    ws, _ = make_ws()
    feed_raw(ws, dumps(SNAPSHOT))
    feed_raw(ws, b'[' * 100_000 + b']' * 100_000)
    feed_raw(ws, b'{"topic": "' + BOOK.encode() + b'", "type": "delta", "data": '
             + b'[' * 50_000 + b']' * 50_000 + b'}')
    assert len(ws.get_orderbooks()['asks']) == 5
    check_still_works(ws)
