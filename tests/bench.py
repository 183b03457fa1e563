#!/usr/bin/env python3
"""Benchmark of bybit_ws_notify.py on loopback: throughput, alert latency, memory, idle cost.

    python tests/bench.py            # full run, about 2.5 minutes on 2 cores
    python tests/bench.py --smoke    # tiny run for CI, under 30 s
    python tests/bench.py --only throughput,memory   # some parts (throughput latency memory idle)
    python tests/bench.py --script /tmp/copy/bybit_ws_notify.py   # measure a patched copy

Not a pytest test. Everything runs on 127.0.0.1 in one process tree: the servers run in this
process (threads), each measured client in a subprocess of it (this file with --client KIND).

1. Throughput: one deterministic (seeded) replay of a linear BTCUSDT public stream, an
   orderbook.200.BTCUSDT snapshot then deltas interleaved with publicTrade.BTCUSDT messages, is
   pre-generated and pre-framed before any timing, and written by a websockets-library server as
   fast as the client reads (flow control by the transport's write buffer). The clients that
   consume it: FLOOR (bare websocket-client recv_data + json.loads, BybitWS's connection
   options), BybitWS, PYBIT (pybit.unified_trading.WebSocket pointed at the server), CCXT
   (ccxt.pro.bybit through its `urls` option) on plain ws://, and FLOOR, BybitWS and CRYPTOFEED
   (a cryptofeed Bybit feed subclass with its endpoint overridden) over TLS, since cryptofeed
   refuses ws://; ratios compare like with like. A peer that cannot be imported is skipped and
   the table says so. msgs/s counts from the first data message to the last (a sentinel trade).
   Each client's final book is checked against the server's reference book.
2. Alert latency: `python bybit_ws_notify.py` runs against FakeBybit (private stream, REST) and a
   flood server that writes unconfirmed kline.1.BTCUSDT updates to its public stream as fast as it
   reads; 50 complete fills (leavesQty 0: flushed without the coalescing delay) are pushed 100 ms
   apart, and the time from each push to the FakeDiscord (bucket of 10000: no rate-limit waits)
   receipt of the alert whose footer says `exec <execId>` is measured.
3. Memory: VmRSS of a BybitWS client after 10k and after 1M messages of a replay that cycles the
   deltas (each cycle ends with a delta restoring the snapshot, so the book stays bounded).
4. Idle: CPU% (utime+stime from /proc/<pid>/stat) of the real script over 60 s with no market
   data, pings only (PING_INTERVAL_S default).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import random
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCRIPT = ROOT / 'bybit_ws_notify.py'
TESTS = Path(__file__).resolve().parent

CATEGORY, SYMBOL = 'linear', 'BTCUSDT'   # cryptofeed serves linear and spot only
BOOK_TOPIC = f'orderbook.200.{SYMBOL}'
TRADE_TOPIC = f'publicTrade.{SYMBOL}'
KLINE_TOPIC = f'kline.1.{SYMBOL}'
SENTINEL = 'bench-sentinel-trade'
TICK = 0.5                      # the price step of the replay
TS0 = 1_700_000_000_000         # ts of the snapshot (ms)
U0, SEQ0, TSEQ0 = 18_521_288, 7_961_638_724, 1_783_284_617
MB = 1024.0

FULL = {'deltas': 30_000, 'repeats': 3, 'executions': 50, 'idle_s': 60.0,
        'mem_total': 1_000_000, 'rss_first': 10_000, 'client_timeout_s': 120.0}
SMOKE = {'deltas': 500, 'repeats': 1, 'executions': 5, 'idle_s': 3.0,
         'mem_total': 20_000, 'rss_first': 10_000, 'client_timeout_s': 30.0}
PARTS = ('throughput', 'latency', 'memory', 'idle')


# Replay generation ###############################################################################
# Frames are JSON templates with %d where ts/u/seq go, so the memory run can cycle them with
# ever-increasing counters at ~1 us a frame; the throughput run renders them all before timing.

def px(tick: int) -> str:
    return f'{tick * TICK:.2f}'


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(',', ':'))


def template(obj: Any) -> bytes:
    """Compact JSON with every "@N@" string turned into a %d placeholder."""
    text = dumps(obj).replace('%', '%%')
    return re.sub(r'"@\w+@"', '%d', text).encode()


class BookSide:
    """One side of the reference book: sorted ticks and their sizes."""

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.keys: list[int] = []
        self.size: dict[int, int] = {}

    def best(self) -> int:
        return self.keys[-1] if self.is_bid else self.keys[0]

    def nth(self, i: int) -> int:
        return self.keys[-1 - i] if self.is_bid else self.keys[i]

    def put(self, tick: int, size: int) -> None:
        if tick not in self.size:
            bisect.insort(self.keys, tick)
        self.size[tick] = size

    def remove(self, tick: int) -> None:
        del self.keys[bisect.bisect_left(self.keys, tick)]
        del self.size[tick]

    def levels(self) -> list:
        keys = reversed(self.keys) if self.is_bid else self.keys
        return [[px(k), str(self.size[k])] for k in keys]


class Replay:
    """A seeded linear BTCUSDT replay: snapshot, frame templates, reference best bid/ask."""

    def __init__(self, n_deltas: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.bids, self.asks = BookSide(is_bid=True), BookSide(is_bid=False)
        mid = 130_000  # 65000.00
        for side, sign in ((self.bids, -1), (self.asks, 1)):
            ticks = [mid + sign] + rng.sample(range(mid + 2 * sign, mid + 401 * sign, sign), 199)
            for tick in ticks:
                side.put(tick, rng.randint(1, 50_000))
        self.snap_levels = (dict(self.bids.size), dict(self.asks.size))
        self.snapshot = dumps({
            'topic': BOOK_TOPIC, 'type': 'snapshot', 'ts': TS0,
            'data': {'s': SYMBOL, 'b': self.bids.levels(), 'a': self.asks.levels(), 'u': U0,
                     'seq': SEQ0},
            'cts': TS0 - 2}).encode()
        self.snap_best = self.best()
        self.frames: list[tuple[bytes, int]] = []   # (template, trades in it; 0 = a delta)
        self.best_after: list[tuple[float, float]] = []
        self.n_deltas, self.n_trades = n_deltas, 0
        for _ in range(n_deltas):
            self.frames.append((self._delta(rng), 0))
            self.best_after.append(self.best())
            if rng.random() < 0.3:
                k = rng.randint(1, 3)
                self.frames.append((self._trades(rng, k), k))
                self.best_after.append(self.best())
                self.n_trades += 1
        self.final_best = self.best()
        self.restore = self._restore()  # ends a cycle: back to the snapshot's book

    def best(self) -> tuple[float, float]:
        return self.bids.best() * TICK, self.asks.best() * TICK

    def _delta(self, rng: random.Random) -> bytes:
        changes: tuple[dict, dict] = ({}, {})
        for _ in range(rng.randint(1, 10)):
            which = rng.random() < 0.5
            side, other = (self.bids, self.asks) if which else (self.asks, self.bids)
            ch = changes[0 if which else 1]
            n = len(side.keys)
            r = rng.random()
            op = 'ins' if n < 190 else 'del' if n > 210 else (
                'ins' if r < 0.35 else 'del' if r < 0.7 else 'upd')
            if op == 'ins':
                sign = 1 if side.is_bid else -1
                span = abs(side.best() - side.nth(n - 1))
                for _try in range(8):
                    off = rng.randint(-30, 2) if rng.random() < 0.7 else rng.randint(-span - 10, 0)
                    tick = side.best() + sign * off
                    crossed = tick >= other.best() if side.is_bid else tick <= other.best()
                    if tick > 0 and tick not in side.size and tick not in ch and not crossed:
                        size = rng.randint(1, 50_000)
                        side.put(tick, size)
                        ch[tick] = size
                        break
                else:
                    op = 'upd'
            if op in ('del', 'upd'):
                idx = rng.randrange(min(n, 10)) if rng.random() < 0.5 else rng.randrange(n)
                tick = side.nth(idx)
                if tick in ch:
                    continue
                if op == 'del':
                    side.remove(tick)
                    ch[tick] = 0
                else:
                    size = side.size[tick] + rng.randint(1, 5_000)
                    side.put(tick, size)
                    ch[tick] = size
        bids = [[px(t), str(changes[0][t])] for t in sorted(changes[0], reverse=True)]
        asks = [[px(t), str(changes[1][t])] for t in sorted(changes[1])]
        return template({'topic': BOOK_TOPIC, 'type': 'delta', 'ts': '@ts@',
                         'data': {'s': SYMBOL, 'b': bids, 'a': asks, 'u': '@u@', 'seq': '@seq@'},
                         'cts': '@cts@'})

    def _trades(self, rng: random.Random, k: int) -> bytes:
        trades = []
        for _ in range(k):
            buy = rng.random() < 0.5
            trades.append({
                'T': '@T@', 's': SYMBOL, 'S': 'Buy' if buy else 'Sell',
                'v': str(rng.randint(1, 5_000)),
                'p': px(self.asks.best() if buy else self.bids.best()),
                'L': rng.choice(('PlusTick', 'ZeroPlusTick', 'MinusTick', 'ZeroMinusTick')),
                'i': str(uuid.UUID(int=rng.getrandbits(128), version=4)), 'BT': False,
                'seq': '@seq@'})
        return template({'topic': TRADE_TOPIC, 'type': 'snapshot', 'ts': '@ts@', 'data': trades})

    def _restore(self) -> bytes:
        sides = []
        for side, snap in ((self.bids, self.snap_levels[0]), (self.asks, self.snap_levels[1])):
            ch = {t: 0 for t in side.size if t not in snap}
            ch.update({t: s for t, s in snap.items() if side.size.get(t) != s})
            sides.append([[px(t), str(ch[t])] for t in sorted(ch, reverse=side.is_bid)])
        return template({'topic': BOOK_TOPIC, 'type': 'delta', 'ts': '@ts@',
                         'data': {'s': SYMBOL, 'b': sides[0], 'a': sides[1], 'u': '@u@',
                                  'seq': '@seq@'}, 'cts': '@cts@'})

    def cycle(self, cyclic: bool) -> list:
        return self.frames + [(self.restore, 0)] if cyclic else self.frames

    def payloads(self, total: int, *, cyclic: bool) -> Iterator[bytes]:
        """total data messages: the snapshot, frames (cycled if cyclic), the sentinel trade."""
        frames = self.cycle(cyclic)
        if not cyclic and total - 2 > len(frames):
            raise ValueError('not enough frames: use cyclic=True')
        yield self.snapshot
        ts, u, seq, tseq = TS0 + 1, U0 + 1, SEQ0 + 1, TSEQ0
        count = len(frames)
        for i in range(total - 2):
            tpl, k = frames[i % count]
            if k == 0:
                yield tpl % (ts, u, seq, ts - 2)
                u += 1
                seq += 3
            else:
                args = [ts]
                for j in range(k):
                    args += (ts - 1, tseq + j)
                tseq += k
                yield tpl % tuple(args)
            ts += 1
        yield dumps({'topic': TRADE_TOPIC, 'type': 'snapshot', 'ts': ts, 'data': [{
            'T': ts - 1, 's': SYMBOL, 'S': 'Buy', 'v': '1', 'p': px(self.asks.best()),
            'L': 'ZeroPlusTick', 'i': SENTINEL, 'BT': False, 'seq': tseq}]}).encode()

    def best_at(self, total: int, *, cyclic: bool) -> tuple[float, float]:
        """The reference best bid/ask once `total` messages were received."""
        frames = total - 2
        if frames <= 0:
            return self.snap_best
        best = self.best_after + [self.snap_best] if cyclic else self.best_after
        return best[(frames - 1) % len(best)]


def ws_frame(payload: bytes) -> bytes:
    """An unmasked server text frame."""
    n = len(payload)
    if n < 126:
        return b'\x81' + bytes((n,)) + payload
    if n < 65536:
        return b'\x81\x7e' + n.to_bytes(2, 'big') + payload
    return b'\x81\x7f' + n.to_bytes(8, 'big') + payload


def chunked(payloads: Iterable[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Framed payloads joined into chunks of about `size` bytes."""
    parts: list[bytes] = []
    total = 0
    for payload in payloads:
        frame = ws_frame(payload)
        parts.append(frame)
        total += len(frame)
        if total >= size:
            yield b''.join(parts)
            parts, total = [], 0
    if parts:
        yield b''.join(parts)


def kline_flood_chunk(frames: int = 400) -> tuple[bytes, int]:
    """One chunk of unconfirmed kline updates (the bot parses and discards them), repeated forever."""
    rng = random.Random(7)
    start = (int(time.time() * 1000) // 60_000) * 60_000
    parts = []
    for i in range(frames):
        close = 65_000 + rng.randint(-200, 200) * TICK
        parts.append(ws_frame(dumps({
            'topic': KLINE_TOPIC, 'data': [{
                'start': start, 'end': start + 59_999, 'interval': '1', 'open': '65000.00',
                'close': f'{close:.2f}', 'high': '65100.00', 'low': '64900.00',
                'volume': str(1000 + i), 'turnover': f'{(1000 + i) / close:.8f}',
                'confirm': False, 'timestamp': start + i}],
            'ts': start + i, 'type': 'snapshot'}).encode()))
    return b''.join(parts), frames


# The replay server ###############################################################################

class ReplayServer:
    """A websockets server: V5 subscribe acks and pongs; once every topic in `topics` is subscribed
    on a connection, it writes the chunks of source() to it as fast as the client reads them (the
    transport's write buffer is the flow control). Runs its own event loop in a daemon thread."""

    def __init__(self, topics: Iterable[str], source: Callable[[], Iterable[bytes]], *,
                 ack_delay_s: float = 0.02, settle_s: float = 0.3,
                 tls: ssl.SSLContext | None = None) -> None:
        # ack_delay_s and settle_s: pybit registers a subscription and its callback only after
        # send() returns, so an instant ack or first frame would race it (KeyError in pybit).
        self.topics = set(topics)
        self.source = source
        self.ack_delay_s, self.settle_s = ack_delay_s, settle_s
        self.bytes_sent = 0
        self.streaming = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name='replay-server', daemon=True)
        self.port = 0
        self.tls = tls

    @property
    def url(self) -> str:
        if self.tls:  # the certificate names localhost
            return f'wss://localhost:{self.port}/v5/public/{CATEGORY}'
        return f'ws://127.0.0.1:{self.port}/v5/public/{CATEGORY}'

    def __enter__(self) -> ReplayServer:  # noqa: PYI034 (typing.Self needs 3.11)
        self._thread.start()
        if not self._ready.wait(10) or self.error:
            raise RuntimeError(f'replay server did not start: {self.error!r}')
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 (reported by __enter__)
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        async with serve(self._handler, '127.0.0.1', 0, compression=None, ping_interval=None,
                         max_size=None, close_timeout=1, ssl=self.tls) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            for conn in list(server.connections):
                conn.transport.abort()

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        subscribed: set = set()
        task = None
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                op = msg.get('op')
                if op == 'ping':
                    await ws.send(dumps({'success': True, 'ret_msg': 'pong', 'conn_id': 'x',
                                         'req_id': msg.get('req_id', ''), 'op': 'ping'}))
                elif op == 'subscribe':
                    await asyncio.sleep(self.ack_delay_s)
                    await ws.send(dumps({'success': True, 'ret_msg': '', 'conn_id': 'x',
                                         'req_id': msg.get('req_id', ''), 'op': 'subscribe'}))
                    subscribed.update(msg.get('args') or ())
                    if task is None and self.topics <= subscribed:
                        task = asyncio.create_task(self._stream(ws))
        except ConnectionClosed:
            pass
        finally:
            if task is not None:
                task.cancel()

    async def _stream(self, ws: Any) -> None:
        await asyncio.sleep(self.settle_s)
        # Whole pre-framed frames go straight to the transport, so the server costs ~nothing per
        # message and the client is the bottleneck; websockets' own sends (acks, pongs) are whole
        # frames too, so they interleave safely. drain() (websockets' flow-control wait, not a
        # documented API) blocks while the write buffer is above its high-water mark.
        transport = ws.transport
        self.streaming.set()
        try:
            for chunk in self.source():
                if transport.is_closing():
                    return
                transport.write(chunk)
                self.bytes_sent += len(chunk)
                await ws.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        self.finished.set()


# Clients (each runs in its own subprocess: bench.py --client KIND) ###############################

def script_path() -> Path:
    """The bybit_ws_notify.py under test: --script, passed to subprocesses as BENCH_SCRIPT."""
    return Path(os.environ.get('BENCH_SCRIPT') or DEFAULT_SCRIPT).resolve()


def read_rss_kb() -> int:
    with open('/proc/self/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


def load_script() -> Any:
    """bybit_ws_notify.py imported as a module, by path."""
    spec = importlib.util.spec_from_file_location('bybit_ws_notify', script_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client_floor(url: str, total: int, timeout_s: float) -> dict:
    import websocket

    # The options BybitWS._run_stream uses.
    ws = websocket.create_connection(url, timeout=10, enable_multithread=True,
                                     skip_utf8_validation=True)
    ws.settimeout(min(timeout_s, 45.0))
    for i, topic in enumerate((BOOK_TOPIC, TRADE_TOPIC), 1):
        ws.send(dumps({'req_id': f'pub{i}', 'op': 'subscribe', 'args': [topic]}))
    recv, loads = ws.recv_data, json.loads
    while 'topic' not in (msg := loads(recv()[1])):
        pass
    t0 = time.perf_counter()
    for _ in range(total - 1):
        msg = loads(recv()[1])
    t1 = time.perf_counter()
    sentinel = msg.get('topic') == TRADE_TOPIC and msg['data'][-1].get('i') == SENTINEL
    ws.close()
    return {'n': total, 't0': t0, 't1': t1, 'sentinel': sentinel}


def client_pybit(url: str, total: int, timeout_s: float) -> dict:
    try:
        import pybit
        import pybit.unified_trading as unified
    except ImportError as exc:
        return {'skipped': f'pybit not importable ({exc})'}
    base = url.split('/v5/', 1)[0]
    unified.PUBLIC_WSS = base + '/v5/public/{CHANNEL_TYPE}'  # only in this subprocess
    count, marks = 0, {'t0': 0.0, 't1': 0.0}
    done = threading.Event()

    def callback(message: dict) -> None:
        nonlocal count
        count += 1
        if count == 1:
            marks['t0'] = time.perf_counter()
        if message['topic'] == TRADE_TOPIC and message['data'][-1].get('i') == SENTINEL:
            marks['t1'] = time.perf_counter()
            done.set()

    ws = unified.WebSocket(testnet=False, channel_type=CATEGORY)
    ws.orderbook_stream(200, SYMBOL, callback)
    ws.trade_stream(SYMBOL, callback)
    completed = done.wait(timeout_s)
    if not completed:
        marks['t1'] = time.perf_counter()
    book = ws.data.get(BOOK_TOPIC) or {'b': [], 'a': []}
    bids = [(float(p), float(s)) for p, s in book['b']]
    asks = [(float(p), float(s)) for p, s in book['a']]
    return {'n': count, 't0': marks['t0'], 't1': marks['t1'], 'sentinel': completed,
            'version': getattr(pybit, 'VERSION', ''),
            'first': [bids[0][0] if bids else None, asks[0][0] if asks else None],
            'levels': [sorted(bids, reverse=True), sorted(asks)],
            'sorted': bids == sorted(bids, reverse=True) and asks == sorted(asks)}


def client_ccxt(url: str, total: int, timeout_s: float) -> dict:
    """ccxt pro's bybit, its public linear URL pointed at the replay through the `urls` option and
    its market given by set_markets (no REST). ccxt applies every message to its book and trade
    cache, but hands user code only the current book and its last 1,000 trades per wake-up, so
    the count and the first message's time are taken in its message handler (a subclass that
    only observes), and the end is the wake-up that brings the sentinel trade."""
    try:
        import ccxt
        import ccxt.pro as ccxtpro
    except ImportError as exc:
        return {'skipped': f'ccxt not importable ({exc})'}
    symbol = 'BTC/USDT:USDT'
    market = {
        'id': SYMBOL, 'symbol': symbol, 'base': 'BTC', 'quote': 'USDT', 'settle': 'USDT',
        'baseId': 'BTC', 'quoteId': 'USDT', 'settleId': 'USDT', 'type': 'swap', 'spot': False,
        'margin': False, 'swap': True, 'future': False, 'option': False, 'active': True,
        'contract': True, 'linear': True, 'inverse': False, 'contractSize': 1.0, 'expiry': None,
        'expiryDatetime': None, 'strike': None, 'optionType': None, 'taker': 0.00055,
        'maker': 0.0002, 'precision': {'amount': 0.001, 'price': TICK},
        'limits': {'leverage': {'min': 1, 'max': 100}, 'amount': {'min': 0.001, 'max': None},
                   'price': {'min': TICK, 'max': None}, 'cost': {'min': None, 'max': None}},
        'info': {'category': CATEGORY}, 'created': None}
    marks = {'t0': 0.0, 't1': 0.0, 'n': 0}

    class TimedBybit(ccxtpro.bybit):  # only observes: when the first message came, and how many
        def handle_message(self, client: Any, message: Any) -> Any:
            if 'topic' in message:
                marks['n'] += 1
                if not marks['t0']:
                    marks['t0'] = time.perf_counter()
            return super().handle_message(client, message)

    async def run() -> dict:
        exchange = TimedBybit({'urls': {'api': {'ws': {'public': {CATEGORY: url}}}},
                               'options': {'defaultType': 'swap'}})
        exchange.set_markets([market])
        done = asyncio.Event()

        async def books() -> None:
            while not done.is_set():
                await exchange.watch_order_book(symbol, 200)

        async def trades() -> None:
            while True:
                batch = await exchange.watch_trades(symbol)
                if any(trade.get('id') == SENTINEL for trade in batch):
                    marks['t1'] = time.perf_counter()
                    done.set()
                    return

        book_task = asyncio.ensure_future(books())
        try:
            await asyncio.wait_for(trades(), timeout_s)
            completed = True
        except asyncio.TimeoutError:
            marks['t1'], completed = time.perf_counter(), False
        book = exchange.orderbooks.get(symbol) or {'bids': [], 'asks': []}
        bids = [[float(p), float(q)] for p, q in book['bids']]
        asks = [[float(p), float(q)] for p, q in book['asks']]
        book_task.cancel()
        return {'n': marks['n'], 't0': marks['t0'], 't1': marks['t1'], 'sentinel': completed,
                'version': ccxt.__version__,
                'first': [bids[0][0] if bids else None, asks[0][0] if asks else None],
                'levels': [bids, asks]}

    return asyncio.run(run())


def client_cryptofeed(url: str, total: int, timeout_s: float) -> dict:
    """cryptofeed's Bybit feed (asyncio and uvloop), subclassed with its public linear endpoint
    pointed at the replay over TLS (cryptofeed refuses ws://; SSL_CERT_FILE trusts the replay's
    certificate) and its symbol table set from an instruments-info row (no REST). It calls the
    book callback once per book message and the trade callback once per trade."""
    try:
        import cryptofeed
        from cryptofeed import FeedHandler
        from cryptofeed.connection import WebsocketEndpoint
        from cryptofeed.defines import BYBIT, FUTURES, L2_BOOK, PERPETUAL, TRADES
        from cryptofeed.exchanges.bybit import Bybit
        from cryptofeed.symbols import Symbols
    except ImportError as exc:
        return {'skipped': f'cryptofeed not importable ({exc})'}
    row = {'symbol': SYMBOL, 'contractType': 'LinearPerpetual', 'baseCoin': 'BTC',
           'quoteCoin': 'USDT', 'priceFilter': {'tickSize': f'{TICK:.2f}'}}
    Symbols.set(BYBIT, *Bybit._parse_symbol_data([{'result': {'list': [row]}}]))

    class LoopbackBybit(Bybit):
        websocket_endpoints = [WebsocketEndpoint(  # noqa: RUF012 (cryptofeed reads the class)
            url, instrument_filter=('TYPE', (FUTURES, PERPETUAL)),
            channel_filter=(Bybit.websocket_channels[L2_BOOK], Bybit.websocket_channels[TRADES]),
            options={'compression': None})]

    marks = {'t0': 0.0, 'book': None}
    deadline = time.monotonic() + timeout_s

    def finish(completed: bool) -> None:
        book = marks['book']
        bids = [[float(p), float(q)] for p, q in book.bids.to_dict().items()] if book else []
        asks = [[float(p), float(q)] for p, q in book.asks.to_dict().items()] if book else []
        result = {'n': total, 't0': marks['t0'], 't1': time.perf_counter(),
                  'sentinel': completed, 'version': cryptofeed.__version__ if hasattr(
                      cryptofeed, '__version__') else importlib.metadata.version('cryptofeed'),
                  'first': [bids[0][0] if bids else None, asks[0][0] if asks else None],
                  'levels': [bids, asks]}
        sys.stdout.write('RESULT ' + dumps(result) + '\n')
        sys.stdout.flush()
        os._exit(0)

    async def on_book(book: Any, receipt: float) -> None:
        if not marks['t0']:
            marks['t0'] = time.perf_counter()
        marks['book'] = book.book

    async def on_trade(trade: Any, receipt: float) -> None:
        if trade.id == SENTINEL:
            finish(True)
        elif time.monotonic() > deadline:
            finish(False)

    try:  # uvloop, as cryptofeed recommends; set here, since its own install comes too late
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler = FeedHandler(config={'log': {'filename': os.devnull, 'level': 'WARNING'},
                                  'uvloop': False})
    handler.add_feed(LoopbackBybit(symbols=['BTC-USDT-PERP'], channels=[L2_BOOK, TRADES],
                                   callbacks={L2_BOOK: on_book, TRADES: on_trade}))
    handler.run(install_signal_handlers=False)
    return {'error': 'cryptofeed stopped before the sentinel trade'}


def client_bybitws(url: str, total: int, timeout_s: float, rss_at: Iterable[int] = (),
                   fast: bool = False) -> dict:
    mod = load_script()
    rss_marks = set(rss_at)
    rss: dict[int, int] = {}
    count, marks = 0, {'t0': 0.0, 't1': 0.0}
    done = threading.Event()

    def callback(_ws: Any, data: Any) -> None:
        nonlocal count
        count += 1
        if count == 1:
            marks['t0'] = time.perf_counter()
        if count in rss_marks:
            rss[count] = read_rss_kb()
        if type(data) is list and data and data[-1].get('i') == SENTINEL:
            marks['t1'] = time.perf_counter()
            done.set()

    rss_start = read_rss_kb()
    ws = mod.BybitWS('', '', symbol=SYMBOL, channel=[BOOK_TOPIC, TRADE_TOPIC],
                     callback={'orderbook': callback, 'trade': callback}, category=CATEGORY,
                     public_url=url, **({'fast_reader': True} if fast else {}))
    completed = done.wait(timeout_s)
    if not completed:
        marks['t1'] = time.perf_counter()
    book = ws.get_orderbooks()
    return {'n': count, 't0': marks['t0'], 't1': marks['t1'], 'sentinel': completed,
            'first': [book['bids'][0][0] if book['bids'] else None,
                      book['asks'][0][0] if book['asks'] else None],
            'levels': [[list(x) for x in book['bids']], [list(x) for x in book['asks']]],
            'rss_kb': {str(k): v for k, v in rss.items()}, 'rss_start_kb': rss_start,
            'rss_end_kb': read_rss_kb()}


def client_main(args: argparse.Namespace) -> int:
    try:
        if args.client == 'floor':
            result = client_floor(args.url, args.total, args.timeout)
        elif args.client == 'pybit':
            result = client_pybit(args.url, args.total, args.timeout)
        elif args.client == 'ccxt':
            result = client_ccxt(args.url, args.total, args.timeout)
        elif args.client == 'cryptofeed':
            result = client_cryptofeed(args.url, args.total, args.timeout)
        else:
            rss_at = [int(x) for x in args.rss_at.split(',') if x]
            result = client_bybitws(args.url, args.total, args.timeout, rss_at,
                                    fast=args.client == 'bybitws-fast')
    except Exception:  # noqa: BLE001 (reported to the parent, which marks the run crashed)
        result = {'error': traceback.format_exc()}
    sys.stdout.write('RESULT ' + dumps(result) + '\n')
    sys.stdout.flush()
    os._exit(0)  # no teardown: client threads (pybit, BybitWS) are not part of the measure


def run_client(kind: str, url: str, total: int, timeout_s: float, rss_at: str = '',
               cafile: Path | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), '--client', kind, '--url', url,
           '--total', str(total), '--timeout', str(timeout_s), '--rss-at', rss_at]
    env = dict(os.environ, SSL_CERT_FILE=str(cafile),
               WEBSOCKET_CLIENT_CA_BUNDLE=str(cafile)) if cafile else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30,
                              check=False, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        return {'error': f'{kind} client timed out after {timeout_s + 30:.0f} s'}
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            result = json.loads(line[7:])
            if result.get('n') and result['t1'] > result['t0']:
                result['rate'] = (result['n'] - 1) / (result['t1'] - result['t0'])
            return result
    return {'error': f'{kind} client exited {proc.returncode} without a result:\n'
                     f'{proc.stdout[-2000:]}{proc.stderr[-3000:]}'}


# Helpers for the parent ##########################################################################

def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
        text = stat.read()
    fields = text[text.rindex(')') + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_ns(pid: int) -> int:
    """On-CPU time of every thread of a process in ns (/proc/<pid>/task/*/schedstat), or -1."""
    total = 0
    try:
        for task in os.listdir(f'/proc/{pid}/task'):
            with contextlib.suppress(FileNotFoundError), \
                    open(f'/proc/{pid}/task/{task}/schedstat', encoding='ascii') as stat:
                total += int(stat.read().split()[0])
    except OSError:
        return -1
    return total


def machine_info() -> list[str]:
    model = '?'
    with contextlib.suppress(OSError), open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    versions = []
    for name in ('websocket-client', 'websockets', 'pybit', 'requests'):
        try:
            versions.append(f'{name} {importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            versions.append(f'{name} (not installed)')
    script_version = '?'
    with contextlib.suppress(OSError), open(script_path(), encoding='utf-8') as script:
        match = re.search(r"^__version__ = '([^']+)'", script.read(), re.MULTILINE)
        script_version = match.group(1) if match else '?'
    cpu = (f'CPU: {model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), '
           f'{platform.system()} {platform.release()}')
    python = (f'Python {platform.python_version()} ({platform.python_implementation()}); '
              + ', '.join(versions) + f'; bybit_ws_notify {script_version} ({script_path()})')
    load = 'load average {:.2f} {:.2f} {:.2f} (1/5/15 min) at the start'.format(*os.getloadavg())
    return [cpu, python, load]


def bot_env(public_url: str, bybit: Any, discord: Any, state_file: Path) -> dict[str, str]:
    """The script's environment: nothing inherited from BYBIT_*/DISCORD_*, linear BTCUSDT, the
    fakes' endpoints, and every timer at its default (PING_INTERVAL_S 20, EXEC_COALESCE_S 1.0)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('BYBIT_', 'DISCORD_')) and k not in (
               'STATE_FILE', 'DOWN_ALERT_S', 'PING_INTERVAL_S', 'WATCHDOG_S', 'EXEC_COALESCE_S',
               'LOG_LEVEL')}
    env.update(BYBIT_WS_PUBLIC_URL=public_url, BYBIT_WS_PRIVATE_URL=bybit.private_url,
               BYBIT_REST_URL=bybit.rest_url, BYBIT_API_KEY=bybit.api_key,
               BYBIT_API_SECRET=bybit.api_secret, BYBIT_SYMBOL=SYMBOL, BYBIT_CATEGORY=CATEGORY,
               DISCORD_NOTIFY='true', DISCORD_WEBHOOK_URL=discord.url, STATE_FILE=str(state_file),
               PYTHONUNBUFFERED='1')
    return env


@contextlib.contextmanager
def running_bot(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    with open(log_path, 'w', encoding='utf-8') as log_file:
        proc = subprocess.Popen([sys.executable, str(script_path())], env=env, cwd=str(ROOT),
                                stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str,
               proc: subprocess.Popen | None = None, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f'the script exited ({proc.returncode}) before {what}:\n'
                               f'{log_path.read_text()[-3000:] if log_path else ""}')
        if time.monotonic() > deadline:
            tail = log_path.read_text()[-3000:] if log_path else ''
            raise RuntimeError(f'timed out after {timeout_s:.0f} s waiting for {what}\n{tail}')
        time.sleep(0.02)


def fakes() -> tuple[type, type]:
    sys.path.insert(0, str(TESTS))
    from fake_bybit import FakeBybit
    from fake_discord import FakeDiscord
    return FakeBybit, FakeDiscord


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# The parts #######################################################################################

def book_check(result: dict, ref: tuple[float, float]) -> tuple[bool, str]:
    first = tuple(result.get('first') or (None, None))
    if first == ref:
        return True, f'best bid/ask {first[0]}/{first[1]} == reference'
    return False, f'best bid/ask {first[0]}/{first[1]} != reference {ref[0]}/{ref[1]}'


def part_throughput(cfg: dict, report: Report) -> None:
    t_gen = time.monotonic()
    replay = Replay(cfg['deltas'], seed=1)
    total = 2 + len(replay.frames)
    chunks = list(chunked(replay.payloads(total, cyclic=False)))
    size = sum(len(c) for c in chunks)
    ref = replay.final_best
    report.note(f'replay: snapshot (200+200 levels) + {replay.n_deltas} deltas + '
                f'{replay.n_trades} trade messages + sentinel = {total} messages, '
                f'{size / MB / MB:.1f} MB framed, generated in {time.monotonic() - t_gen:.1f} s; '
                f'reference best bid/ask {ref[0]}/{ref[1]}')
    expected_levels = [
        [[t * TICK, float(replay.bids.size[t])] for t in reversed(replay.bids.keys)],
        [[t * TICK, float(replay.asks.size[t])] for t in replay.asks.keys]]
    rates: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix='bench-tls-') as folder, \
            ReplayServer({BOOK_TOPIC, TRADE_TOPIC}, lambda: chunks) as plain:
        tls = tls_context(Path(folder))
        with ReplayServer({BOOK_TOPIC, TRADE_TOPIC}, lambda: chunks,
                          tls=tls[0] if tls else None) as secure:
            for kind, over_tls in THROUGHPUT_RUNS:
                label = PEER_LABELS[kind] + (' (TLS)' if over_tls else '')
                if over_tls and tls is None:
                    report.row(f'{label} msgs/s', 'skipped', '', '', 'no openssl to make a cert')
                    continue
                server = secure if over_tls else plain
                values, last = [], {}
                for _ in range(cfg['repeats']):
                    res = run_client(kind, server.url, total, cfg['client_timeout_s'],
                                     cafile=tls[1] if over_tls else None)
                    if res.get('skipped'):
                        report.row(f'{label} msgs/s', 'skipped', '', '', res['skipped'])
                        break
                    if res.get('error'):
                        report.crash(f'{label} throughput client', res['error'])
                        break
                    if not res.get('sentinel'):
                        report.crash(f'{label} throughput client',
                                     f'no sentinel within {cfg["client_timeout_s"]} s: got '
                                     f'{res.get("n")} of {total} messages')
                    values.append(res['rate'])
                    last = res
                if not values:
                    rates[label] = None
                    continue
                # Best of N: other processes on the machine can only slow a run down.
                rates[label] = max(values)
                runs_text = ', '.join(f'{v:,.0f}' for v in values)
                detail = f'best of {len(values)} runs ({runs_text})' if len(values) > 1 else '1 run'
                if last.get('version'):
                    detail += f"; {kind} {last['version']}"
                report.row(f'{label} msgs/s', f'{rates[label]:,.0f}', '', '', detail)
                if kind != 'floor':
                    book_rows(report, kind, label, last, ref, expected_levels)
    for name, num, den, target in RATIOS:
        a, b = rates.get(num), rates.get(den)
        if a and b:
            ratio = a / b
            report.row(name, f'{ratio:.2f}x', f'>= {target}x' if target else '',
                       ('PASS' if ratio >= target else 'MISS') if target else '')
        else:
            report.row(name, 'n/a', f'>= {target}x' if target else '', 'n/a', 'a rate is missing')


# BybitWS runs twice: with websocket-client's reader (its default, which the script uses) and with
# fast_reader=True (frames read in large chunks), the library option for market-data consumers.
THROUGHPUT_RUNS = (('floor', False), ('bybitws', False), ('bybitws-fast', False), ('pybit', False),
                   ('ccxt', False), ('floor', True), ('bybitws-fast', True), ('cryptofeed', True))
PEER_LABELS = {'floor': 'FLOOR', 'bybitws': 'BybitWS', 'bybitws-fast': 'BybitWS fast_reader',
               'pybit': 'PYBIT', 'ccxt': 'CCXT',
               'cryptofeed': 'CRYPTOFEED'}
RATIOS = (  # (row, numerator, denominator, target or 0): like against like, plain or TLS
    ('BybitWS / PYBIT', 'BybitWS', 'PYBIT', 3),
    ('BybitWS / CCXT', 'BybitWS', 'CCXT', 0),
    ('BybitWS / FLOOR', 'BybitWS', 'FLOOR', 0.5),
    ('BybitWS fast_reader / FLOOR', 'BybitWS fast_reader', 'FLOOR', 0.9),
    ('BybitWS fast_reader / CRYPTOFEED (both TLS)', 'BybitWS fast_reader (TLS)',
     'CRYPTOFEED (TLS)', 1.3),
    ('BybitWS fast_reader / FLOOR (both TLS)', 'BybitWS fast_reader (TLS)', 'FLOOR (TLS)', 0),
)


def tls_context(folder: Path) -> tuple[ssl.SSLContext, Path] | None:
    """A server context with a fresh self-signed certificate for localhost, and the cert's path
    (the clients trust it through SSL_CERT_FILE and WEBSOCKET_CLIENT_CA_BUNDLE); None without
    openssl."""
    sys.path.insert(0, str(TESTS))
    from selfsigned import localhost_cert
    return localhost_cert(folder)


def book_rows(report: Report, kind: str, label: str, last: dict, ref: tuple,
              expected_levels: list) -> None:
    """Whether a client's final book is the replay's: best bid/ask, and every level."""
    ok, text = book_check(last, ref)
    levels = last.get('levels') or [[], []]
    levels_ok = levels == expected_levels
    sorted_ok = [sorted(levels[0], reverse=True), sorted(levels[1])] == expected_levels
    if kind.startswith('bybitws'):
        report.row(f'{label} final book', 'match' if ok and levels_ok else 'MISMATCH',
                   'match', 'PASS' if ok and levels_ok else 'MISS',
                   text + ('; all levels match' if levels_ok else '; LEVELS DIFFER'))
        if not (ok and levels_ok):
            report.failed.append(f'{label} final book mismatch (throughput)')
        return
    content = 'all levels match' if levels_ok else \
        'the sorted content matches the reference book' if sorted_ok else \
        'the content differs from the reference book'
    unsorted = '' if last.get('sorted', True) else \
        ' (pybit appends inserted levels: its b/a lists are not sorted)'
    report.row(f'{label} final book', 'match' if ok else 'MISMATCH', 'match',
               'PASS' if ok else 'MISS', f'b[0]/a[0]: {text}{unsorted}; {content}')


def part_memory(cfg: dict, report: Report) -> None:
    replay = Replay(min(cfg['deltas'], 20_000), seed=2)
    total, first = cfg['mem_total'], cfg['rss_first']
    ref = replay.best_at(total, cyclic=True)
    with ReplayServer({BOOK_TOPIC, TRADE_TOPIC},
                      lambda: chunked(replay.payloads(total, cyclic=True))) as server:
        res = run_client('bybitws', server.url, total, cfg['client_timeout_s'] + total / 20_000,
                         rss_at=f'{first},{total}')
    if res.get('error') or not res.get('sentinel'):
        report.crash('BybitWS memory client', res.get('error') or
                     f'no sentinel: got {res.get("n")} of {total} messages')
        return
    rss = res['rss_kb']
    a, b = rss.get(str(first)), rss.get(str(total))
    growth = (b - a) / MB
    report.row(f'BybitWS RSS after {first:,} msgs', f'{a / MB:.1f} MB', '', '',
               f'{res["rss_start_kb"] / MB:.1f} MB before connecting')
    report.row(f'BybitWS RSS after {total:,} msgs', f'{b / MB:.1f} MB', '', '',
               f'{res["rate"]:,.0f} msgs/s over the whole run; cycles of '
               f'{len(replay.frames) + 1} frames, each ending with a restoring delta')
    report.row(f'RSS growth {first:,} -> {total:,}', f'{growth:+.2f} MB', '<= 5 MB',
               'PASS' if growth <= 5 else 'MISS')
    ok, text = book_check(res, ref)
    report.row('BybitWS book after the memory run', 'match' if ok else 'MISMATCH', 'match',
               'PASS' if ok else 'MISS', text)
    if not ok:
        report.failed.append('BybitWS final book mismatch (memory)')


def part_latency(cfg: dict, report: Report, tmp: Path) -> None:
    fake_bybit, fake_discord = fakes()
    chunk, per_chunk = kline_flood_chunk()
    n_exec = cfg['executions']
    with fake_bybit() as bybit, fake_discord(limit=10_000) as discord, \
            ReplayServer({KLINE_TOPIC}, lambda: itertools.repeat(chunk), settle_s=0) as flood:
        bybit.wallet = bybit.make_wallet('USDT', '10000')
        log_path = tmp / 'latency-bot.log'
        env = bot_env(flood.url, bybit, discord, tmp / 'latency.state.json')
        with running_bot(env, log_path) as bot:
            wait_until(lambda: any('execution' in s for s in bybit.subscriptions('private')),
                       20, 'the execution subscription', bot, log_path)
            wait_until(flood.streaming.is_set, 20, 'the kline flood to start', bot, log_path)
            wait_until(lambda: len(discord.messages) >= 1, 20, 'the startup alert', bot, log_path)
            time.sleep(1.0)  # the flood is in full swing
            bytes0, cpu0, t0 = flood.bytes_sent, cpu_ticks(bot.pid), time.monotonic()
            sent: dict[str, float] = {}
            for i in range(n_exec):
                price = 65_000 + (i % 20) * TICK
                item = bybit.make_execution(
                    category=CATEGORY, symbol=SYMBOL, side='Buy' if i % 2 else 'Sell',
                    execQty='0.01', orderQty='0.01', leavesQty='0', execPrice=f'{price:.2f}',
                    execValue=f'{0.01 * price:.2f}', execFee='0.357', feeCurrency='USDT',
                    orderPrice=f'{price:.2f}', markPrice=f'{price:.2f}', orderType='Market')
                with bybit._lock:  # the REST list too, as add_execution() keeps it
                    bybit.executions.append(item)
                sent[item['execId']] = time.monotonic()
                bybit.push_private('execution', [item])
                pause = t0 + (i + 1) * 0.1 - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            received: dict[str, float] = {}

            def collect() -> bool:
                with discord._lock:
                    messages = list(discord.messages)
                for message in messages:
                    for embed in message['payload'].get('embeds') or ():
                        found = re.search(r'exec (\S+)', (embed.get('footer') or {}).get('text', ''))
                        if found and found.group(1) in sent:
                            received.setdefault(found.group(1), message['t'])
                return len(received) == len(sent)

            with contextlib.suppress(RuntimeError):
                wait_until(collect, 15, 'every execution alert', bot, log_path)
            elapsed = time.monotonic() - t0
            flood_rate = (flood.bytes_sent - bytes0) / len(chunk) * per_chunk / elapsed
            cpu = (cpu_ticks(bot.pid) - cpu0) / os.sysconf('SC_CLK_TCK') / elapsed * 100
            rate_limited = len(discord.rate_limited)
    lat = [(received[e] - sent[e]) * 1000 for e in sent if e in received]
    missing = len(sent) - len(lat)
    report.note(f'latency: the script consumed about {flood_rate:,.0f} kline msgs/s on its public '
                f'stream while {n_exec} fills were pushed 100 ms apart (script CPU {cpu:.0f}% '
                f'of a core)')
    report.note('latency excludes the coalescing delay (every fill is complete, leavesQty "0", so '
                'it is flushed at once; EXEC_COALESCE_S at its default 1.0) and rate-limit waits '
                f'(FakeDiscord bucket of 10000 per 2 s; 429s during the run: {rate_limited})')
    if missing:
        report.crash('alert latency', f'{missing} of {len(sent)} execution alerts never reached '
                                      'Discord within 15 s')
    if not lat:
        return
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    report.row('alert latency p50', f'{p50:.1f} ms', '', '',
               f'{len(lat)} fills, push -> FakeDiscord receipt')
    report.row('alert latency p99', f'{p99:.1f} ms', '<= 50 ms', 'PASS' if p99 <= 50 else 'MISS',
               'during the public flood')
    report.row('alert latency max', f'{max(lat):.1f} ms', '', '')


def part_idle(cfg: dict, report: Report, tmp: Path) -> None:
    fake_bybit, fake_discord = fakes()
    with fake_bybit() as bybit, fake_discord(limit=10_000) as discord:
        bybit.wallet = bybit.make_wallet('USDT', '10000')
        log_path = tmp / 'idle-bot.log'
        env = bot_env(bybit.public_url_for(CATEGORY), bybit, discord, tmp / 'idle.state.json')
        with running_bot(env, log_path) as bot:
            wait_until(lambda: any(KLINE_TOPIC in s for s in bybit.subscriptions('public')) and
                       any('execution' in s for s in bybit.subscriptions('private')),
                       20, 'the subscriptions', bot, log_path)
            wait_until(lambda: len(discord.messages) >= 1, 20, 'the startup alert', bot, log_path)
            time.sleep(1.0)
            pings0 = sum(1 for m in bybit.received_ops() if m.get('op') == 'ping')
            cpu0, ns0, t0 = cpu_ticks(bot.pid), cpu_ns(bot.pid), time.monotonic()
            time.sleep(cfg['idle_s'])
            cpu1, ns1, t1 = cpu_ticks(bot.pid), cpu_ns(bot.pid), time.monotonic()
            pings = sum(1 for m in bybit.received_ops() if m.get('op') == 'ping') - pings0
            alive = bot.poll() is None
    tick = os.sysconf('SC_CLK_TCK')
    pct = (cpu1 - cpu0) / tick / (t1 - t0) * 100
    precise = (f'schedstat: {(ns1 - ns0) / 1e6:.1f} ms on CPU = {(ns1 - ns0) / 1e7 / (t1 - t0):.4f} %'
               if ns0 >= 0 and ns1 >= 0 else 'no schedstat')
    if not alive:
        report.crash('idle', f'the script exited during the idle window:\n{log_path.read_text()}')
    report.row(f'idle CPU over {t1 - t0:.0f} s', f'{pct:.3f} %', '<= 1 %',
               'PASS' if pct <= 1 else 'MISS',
               f'utime+stime: {cpu1 - cpu0} ticks of 1/{tick} s; {precise}; {pings} pings sent '
               '(PING_INTERVAL_S default 20, public + private stream, no market data)')


# Report ##########################################################################################

class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.notes: list[str] = []
        self.failed: list[str] = []
        self.crashes: list[str] = []

    def row(self, name: str, value: str, target: str = '', result: str = '',
            detail: str = '') -> None:
        self.rows.append((name, value, target, result, detail))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def crash(self, what: str, error: str) -> None:
        self.crashes.append(what)
        self.row(what, 'CRASHED', '', 'MISS', error.strip().splitlines()[-1][:150])
        print(f'--- {what} crashed:\n{error}', file=sys.stderr)

    def render(self) -> str:
        head = ('measure', 'value', 'target', 'result', 'detail')
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        lines = []
        for cells in [head, tuple('-' * w for w in widths) + ('-' * 6,), *self.rows]:
            lines.append('| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) +
                         f' | {cells[4]}')
        return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--smoke', action='store_true', help='tiny run for CI (< 30 s)')
    parser.add_argument('--only', default=','.join(PARTS), help='comma-separated parts to run')
    parser.add_argument('--script', type=Path, default=script_path(),
                        help='the bybit_ws_notify.py to measure (e.g. a patched copy)')
    parser.add_argument('--client', choices=('floor', 'pybit', 'ccxt', 'cryptofeed', 'bybitws',
                                             'bybitws-fast'),
                        help=argparse.SUPPRESS)
    parser.add_argument('--url', help=argparse.SUPPRESS)
    parser.add_argument('--total', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--timeout', type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument('--rss-at', default='', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(args)
    if not args.script.is_file():
        parser.error(f'--script {args.script}: no such file')
    os.environ['BENCH_SCRIPT'] = str(args.script.resolve())  # the subprocesses inherit it

    cfg = SMOKE if args.smoke else FULL
    parts = [p.strip() for p in args.only.split(',') if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f'unknown part(s) {", ".join(sorted(unknown))}; choose from {PARTS}')
    started = time.monotonic()
    print(f'bybit_ws_notify benchmark ({"smoke" if args.smoke else "full"} mode)')
    for line in machine_info():
        print(line)
    print(flush=True)
    report = Report()
    with tempfile.TemporaryDirectory(prefix='bench-') as tmp:
        for part in PARTS:
            if part not in parts:
                continue
            t_part = time.monotonic()
            try:
                if part == 'throughput':
                    part_throughput(cfg, report)
                elif part == 'memory':
                    part_memory(cfg, report)
                elif part == 'latency':
                    part_latency(cfg, report, Path(tmp))
                else:
                    part_idle(cfg, report, Path(tmp))
            except Exception:  # noqa: BLE001 (one broken part must not hide the others)
                report.crash(part, traceback.format_exc())
            print(f'[{part} done in {time.monotonic() - t_part:.1f} s]', file=sys.stderr,
                  flush=True)
    print(report.render())
    print()
    for note in report.notes:
        print(f'- {note}')
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'- wall time {time.monotonic() - started:.1f} s; load average {load} at the end '
          '(other processes on the machine slow every measure down)')
    bad = report.crashes + report.failed
    if bad:
        print(f'FAILED: {"; ".join(bad)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
