#!/usr/bin/env python3
"""Benchmark of bybit_ws_notify.py on loopback: throughput, alert latency, memory, idle cost, a
whole account on a small VPS, and start-up.

    python tests/bench.py            # full run, about 4 minutes on 2 cores
    python tests/bench.py --smoke    # tiny run for CI, under 30 s
    python tests/bench.py --only throughput,memory   # some parts: throughput latency memory
                                                     # idle account startup
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
   reads (in a process of its own: FloodProcess); 200 complete fills (leavesQty 0: flushed
   without the coalescing delay) are pushed 100 ms apart, and the time from each push to the
   FakeDiscord (bucket of 10000: no rate-limit waits) receipt of the alert whose footer says
   `exec <execId>` is measured. Then again "with four
   categories streaming" (issue 8): candle symbols in linear, inverse and spot (option has no
   kline), each of the three public streams flooded the same way, the same fills.
3. Memory: VmRSS of a BybitWS client after 10k and after 1M messages of a replay that cycles the
   deltas (each cycle ends with a delta restoring the snapshot, so the book stays bounded). Then
   one BybitWS client on the public paths of all four categories at once: the book replay and
   trades on linear, tickers and trades (every ts, seq and trade id new) on inverse, spot and
   option; RSS after 10k and after 1M messages of the four together, and the linear book checked.
4. Idle: CPU% (utime+stime from /proc/<pid>/stat) of the real script over 60 s with no market
   data, pings only (PING_INTERVAL_S default).
5. A whole account on a small VPS (issue 11): the real script with BYBIT_SYMBOL = 20 symbols (15
   linear, 5 spot), BYBIT_PERIOD=1, keys and all four categories, against FakeBybit (private
   stream and REST, a five-coin wallet, positions in three categories), FakeDiscord and an
   AccountFloodServer on the public paths. Each public connection receives, at Bybit's push
   rates (docs/bybit_v5.md §6: derivatives every 100 ms, spot every 50 ms), the tickers of 200
   linear or 50 spot symbols (about 3,000 msgs/s in all, spread over 10 ms slots), plus one
   unconfirmed kline update a second for each of its candle symbols; the private stream carries a
   complete fill every 100 ms, rotating linear, inverse, spot and option. Over 30 s of steady load:
   CPU in % of one core (utime+stime), VmRSS at the end, alert latency p50/p99, and the msgs/s the
   flood wrote (what the script received), with the script's CPU per thread.
   The script subscribes only its kline topics, so the tickers are pushed onto its own public
   connections unsubscribed, as if it had subscribed a trader's extra topics. That is the honest
   "whole account in one process" measure: the load goes through the script's own receive
   threads and parser (a ticker takes the same route a subscribed one would), in the process
   whose CPU, memory and GIL the alert path shares. A second client process subscribing the
   tickers instead would split the load across two interpreters (two GILs, so no contention on
   the alert path, and twice the base RSS), which measures neither one process nor the sum fairly.
6. Start-up: from Popen of the script (the whole-account settings, no state file) to the moment
   FakeBybit has acked every expected subscription (public linear, public spot, private), and to
   the startup alert at FakeDiscord; median of 3 runs. A note breaks the median run down from the
   script's DEBUG log and the REST requests the fake received, beside the cost of the
   interpreter, of importing requests and websocket, and of the script's --version.
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
import math
import os
import platform
import random
import re
import shutil
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
CATEGORIES_ALL = ('linear', 'inverse', 'spot', 'option')
BOOK_TOPIC = f'orderbook.200.{SYMBOL}'
TRADE_TOPIC = f'publicTrade.{SYMBOL}'
KLINE_TOPIC = f'kline.1.{SYMBOL}'
SENTINEL = 'bench-sentinel-trade'
TICK = 0.5                      # the price step of the replay
TS0 = 1_700_000_000_000         # ts of the snapshot (ms)
U0, SEQ0, TSEQ0 = 18_521_288, 7_961_638_724, 1_783_284_617
MB = 1024.0

FULL = {'deltas': 30_000, 'repeats': 5, 'executions': 200, 'idle_s': 60.0,
        'mem_total': 1_000_000, 'rss_first': 10_000, 'client_timeout_s': 120.0,
        'account_s': 30.0, 'account_warm_s': 3.0, 'startup_runs': 3}
SMOKE = {'deltas': 500, 'repeats': 1, 'executions': 5, 'idle_s': 3.0,
         'mem_total': 20_000, 'rss_first': 10_000, 'client_timeout_s': 30.0,
         'account_s': 2.0, 'account_warm_s': 0.5, 'startup_runs': 1}
PARTS = ('throughput', 'latency', 'memory', 'idle', 'account', 'startup')


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


def kline_flood_chunk(frames: int = 400, topic: str = KLINE_TOPIC) -> tuple[bytes, int]:
    """One chunk of unconfirmed kline updates of `topic` (the bot parses and discards them),
    repeated forever."""
    rng = random.Random(7)
    start = (int(time.time() * 1000) // 60_000) * 60_000
    parts = []
    for i in range(frames):
        close = 65_000 + rng.randint(-200, 200) * TICK
        parts.append(ws_frame(dumps({
            'topic': topic, 'data': [{
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
    transport's write buffer is the flow control). Runs its own event loop in a daemon thread.

    routes: {category: (topics, source)} gives each public path /v5/public/<category> its own
    topics and source (a path not in routes is acked, never streamed); without it every path gets
    `topics` and `source`. The option path acks as Bybit's does (COMMAND_RESP)."""

    def __init__(self, topics: Iterable[str] = (),
                 source: Callable[[], Iterable[bytes]] | None = None, *,
                 ack_delay_s: float = 0.02, settle_s: float = 0.3,
                 tls: ssl.SSLContext | None = None, routes: dict | None = None) -> None:
        # ack_delay_s and settle_s: pybit registers a subscription and its callback only after
        # send() returns, so an instant ack or first frame would race it (KeyError in pybit).
        self.topics = set(topics)
        self.source = source
        self.routes = {cat: (set(t), src) for cat, (t, src) in (routes or {}).items()}
        self.ack_delay_s, self.settle_s = ack_delay_s, settle_s
        self.bytes_sent = 0
        self.bytes_by: dict[str, int] = {}     # category -> bytes written by its streams
        self.streaming = threading.Event()
        self.streaming_by: dict[str, threading.Event] = {
            cat: threading.Event() for cat in (*self.routes, CATEGORY)}
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
        return self.url_for(CATEGORY)

    def url_for(self, category: str) -> str:
        if self.tls:  # the certificate names localhost
            return f'wss://localhost:{self.port}/v5/public/{category}'
        return f'ws://127.0.0.1:{self.port}/v5/public/{category}'

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

        category = ws.request.path.rstrip('/').rpartition('/')[2] if ws.request else CATEGORY
        if self.routes:
            topics, source = self.routes.get(category, (set(), None))
        else:
            topics, source = self.topics, self.source
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
                    args = list(msg.get('args') or ())
                    if category == 'option':  # the option path's ack (docs/bybit_v5.md §4)
                        ack = {'success': True, 'conn_id': 'x', 'type': 'COMMAND_RESP',
                               'data': {'failTopics': [], 'successTopics': args}}
                    else:
                        ack = {'success': True, 'ret_msg': '', 'conn_id': 'x',
                               'req_id': msg.get('req_id', ''), 'op': 'subscribe'}
                    await ws.send(dumps(ack))
                    subscribed.update(args)
                    if task is None and source is not None and topics <= subscribed:
                        task = asyncio.create_task(
                            self._stream(ws, category, source, subscribed))
        except ConnectionClosed:
            pass
        finally:
            if task is not None:
                task.cancel()

    def _started(self, category: str) -> None:
        self.streaming.set()
        self.streaming_by.setdefault(category, threading.Event()).set()

    def _wrote(self, category: str, size: int) -> None:
        self.bytes_sent += size
        self.bytes_by[category] = self.bytes_by.get(category, 0) + size

    async def _stream(self, ws: Any, category: str, source: Any, subscribed: set) -> None:
        await asyncio.sleep(self.settle_s)
        # Whole pre-framed frames go straight to the transport, so the server costs ~nothing per
        # message and the client is the bottleneck; websockets' own sends (acks, pongs) are whole
        # frames too, so they interleave safely. drain() (websockets' flow-control wait, not a
        # documented API) blocks while the write buffer is above its high-water mark.
        transport = ws.transport
        self._started(category)
        try:
            for chunk in source():
                if transport.is_closing():
                    return
                transport.write(chunk)
                self._wrote(category, len(chunk))
                await ws.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        self.finished.set()


class FloodProcess:
    """A ReplayServer of kline floods ({category: topic}) run in a process of its own, for the
    latency part. In the bench's own process the flood's event loop would share the interpreter
    lock with FakeBybit's push and FakeDiscord's receipt, the two ends of the measure, and delay
    both: that is the bench's cost, not the bot's (about 1 ms of the p50 when measured in one
    process). The child prints its port, then every 20 ms the bytes written per category."""

    def __init__(self, floods: dict[str, str]) -> None:
        self.floods = dict(floods)
        self.bytes_by: dict[str, int] = {}
        self.streaming_by = {cat: threading.Event() for cat in self.floods}
        self.port = 0
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def url_for(self, category: str) -> str:
        return f'ws://127.0.0.1:{self.port}/v5/public/{category}'

    @property
    def url(self) -> str:
        return self.url_for(CATEGORY)

    def __enter__(self) -> FloodProcess:  # noqa: PYI034 (typing.Self needs 3.11)
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), '--flood', json.dumps(self.floods)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self._proc.stdout.readline()
        if not first.strip().isdigit():
            self._proc.kill()
            raise RuntimeError(f'the flood process did not start: {first!r}')
        self.port = int(first)
        self._reader = threading.Thread(target=self._read, name='flood-reader', daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self.bytes_by = json.loads(line)
                for cat, size in self.bytes_by.items():
                    if size and cat in self.streaming_by:
                        self.streaming_by[cat].set()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # the child's cue to stop
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(5)


def flood_main(floods: dict[str, str]) -> int:
    """The child of FloodProcess."""
    chunks = {c: kline_flood_chunk(topic=t) for c, t in floods.items()}
    routes = {c: ({t}, lambda c=c: itertools.repeat(chunks[c][0])) for c, t in floods.items()}
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    with ReplayServer(routes=routes, settle_s=0) as server:
        print(server.port, flush=True)
        while not done.wait(0.02):
            print(json.dumps(server.bytes_by), flush=True)
    return 0


# The whole account's public traffic #############################################################
# A trader's Unified account on a small VPS: candles for 20 symbols (15 linear, 5 spot), the
# tickers of the 200 linear and 50 spot symbols they follow at Bybit's push rates, and fills of
# every category on the private stream.

LINEAR_CANDLES = ('BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT', 'DOGEUSDT', 'ADAUSDT', 'LINKUSDT',
                  'AVAXUSDT', 'DOTUSDT', 'LTCUSDT', 'BCHUSDT', 'TRXUSDT', 'NEARUSDT', 'APTUSDT',
                  'ARBUSDT')
SPOT_CANDLES = ('BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT', 'MNTUSDT')
ACCOUNT_SYMBOLS = ','.join([*LINEAR_CANDLES, *(f'spot:{s}' for s in SPOT_CANDLES)])
ACCOUNT_TICKERS = {'linear': 200, 'spot': 50}        # symbols whose tickers stream
TICKER_PERIOD_S = {'linear': 0.1, 'spot': 0.05}      # docs/bybit_v5.md §6, tickers push frequency
FLOOD_SLOT_S = 0.01                                  # the flood writes every 10 ms
KLINE_EVERY_S = 1.0                                  # one unconfirmed update per kline topic
FILL_CATEGORIES = ('linear', 'inverse', 'spot', 'option')
PRIVATE_ALL = ('order', 'execution', 'position', 'wallet')   # main_topics with all four categories


def account_kline_topics(category: str) -> list[str]:
    return [f'kline.1.{s}' for s in (LINEAR_CANDLES if category == 'linear' else SPOT_CANDLES)]


def ticker_symbols(category: str) -> list[str]:
    """The candle symbols first, then made-up ones up to ACCOUNT_TICKERS[category]."""
    known = list(LINEAR_CANDLES if category == 'linear' else SPOT_CANDLES)
    return known + [f'K{i:03d}USDT' for i in range(ACCOUNT_TICKERS[category] - len(known))]


def _ticker(category: str, symbol: str, price: float, rng: random.Random, snapshot: bool,
            ts: int) -> dict:
    """A tickers message shaped as Bybit's (payloads/ws_public_tickers_linear_perpetual.json and
    ticker.mdx): linear deltas carry the fields that move every 100 ms; spot is snapshot only."""
    def p(x: float) -> str:
        return f'{x:.4f}' if x < 100 else f'{x:.2f}'
    last = price * (1 + rng.uniform(-0.001, 0.001))
    if category == 'spot':
        return {'topic': f'tickers.{symbol}', 'ts': ts, 'type': 'snapshot', 'cs': ts * 7,
                'data': {'symbol': symbol, 'lastPrice': p(last), 'highPrice24h': p(price * 1.03),
                         'lowPrice24h': p(price * 0.97), 'prevPrice24h': p(price * 0.99),
                         'volume24h': f'{rng.uniform(1e3, 1e6):.4f}',
                         'turnover24h': f'{rng.uniform(1e6, 1e9):.4f}',
                         'price24hPcnt': f'{rng.uniform(-0.05, 0.05):.4f}',
                         'usdIndexPrice': p(last * 1.0001)}}
    data = {'symbol': symbol, 'tickDirection': rng.choice(('PlusTick', 'ZeroPlusTick', 'MinusTick',
                                                           'ZeroMinusTick')),
            'price24hPcnt': f'{rng.uniform(-0.05, 0.05):.6f}', 'lastPrice': p(last),
            'markPrice': p(last * 1.00002), 'indexPrice': p(last * 0.99998),
            'openInterest': f'{rng.uniform(1e4, 1e6):.3f}',
            'openInterestValue': f'{rng.uniform(1e7, 1e10):.2f}',
            'turnover24h': f'{rng.uniform(1e6, 1e10):.4f}', 'volume24h': f'{rng.uniform(1e3, 1e6):.4f}',
            'bid1Price': p(last * 0.9999), 'bid1Size': f'{rng.uniform(0.1, 5e4):.3f}',
            'ask1Price': p(last * 1.0001), 'ask1Size': f'{rng.uniform(0.1, 5e4):.3f}'}
    if snapshot:
        data.update({'prevPrice24h': p(price * 0.99), 'highPrice24h': p(price * 1.03),
                     'lowPrice24h': p(price * 0.97), 'prevPrice1h': p(price), 'fundingIntervalHour': '8',
                     'fundingCap': '0.005', 'nextFundingTime': str(ts // 28_800_000 * 28_800_000 + 28_800_000),
                     'fundingRate': '0.0001', 'preOpenPrice': '', 'preQty': '',
                     'curPreListingPhase': ''})
    return {'topic': f'tickers.{symbol}', 'type': 'snapshot' if snapshot else 'delta', 'data': data,
            'cs': ts * 7, 'ts': ts}


def kline_update(topic: str, n: int) -> bytes:
    """One unconfirmed 1-minute kline update of the open candle (alerts nothing), framed."""
    now = int(time.time() * 1000)
    start = now // 60_000 * 60_000
    close = 100 + (n % 41) * 0.25
    return ws_frame(dumps({'topic': topic, 'data': [{
        'start': start, 'end': start + 59_999, 'interval': '1', 'open': '100.00',
        'close': f'{close:.2f}', 'high': '110.00', 'low': '90.00', 'volume': str(1000 + n),
        'turnover': f'{(1000 + n) * close:.4f}', 'confirm': False, 'timestamp': now}],
        'ts': now, 'type': 'snapshot'}).encode())


class TickerFlood:
    """What one category's public connection receives in the whole-account run: the tickers of
    its symbols, each every TICKER_PERIOD_S, spread evenly over 10 ms slots (symbol i in slot
    i mod period/10 ms), pre-framed in a few variants (so the flood costs the bench ~nothing);
    linear starts with a snapshot of each symbol, as Bybit does, then deltas. Plus one
    unconfirmed kline update a second for each kline topic the connection subscribed."""

    variants = 8

    def __init__(self, category: str, seed: int = 3) -> None:
        rng = random.Random(seed)
        self.category = category
        self.symbols = ticker_symbols(category)
        self.kline_topics = account_kline_topics(category)
        self.phases = round(TICKER_PERIOD_S[category] / FLOOD_SLOT_S)
        prices = {s: 10 ** rng.uniform(-1, 4.8) for s in self.symbols}
        ts = int(time.time() * 1000)
        self.first = b''
        if category != 'spot':  # derivatives: a snapshot first, then deltas
            self.first = b''.join(ws_frame(dumps(_ticker(category, s, prices[s], rng, True,
                                                         ts)).encode()) for s in self.symbols)
        self.chunks: list[tuple[bytes, int]] = []   # slot k: phase k % phases, variant k // phases
        for k in range(self.phases * self.variants):
            frames = [ws_frame(dumps(_ticker(category, s, prices[s], rng, False, ts + k * 10)).encode())
                      for i, s in enumerate(self.symbols) if i % self.phases == k % self.phases]
            self.chunks.append((b''.join(frames), len(frames)))
        slots_per_s = round(KLINE_EVERY_S / FLOOD_SLOT_S)
        self.kline_slots = slots_per_s
        self.kline_due: dict[int, list[str]] = {}
        for j, topic in enumerate(self.kline_topics):
            self.kline_due.setdefault(j * slots_per_s // len(self.kline_topics), []).append(topic)
        self.rate = len(self.symbols) / TICKER_PERIOD_S[category] + \
            len(self.kline_topics) / KLINE_EVERY_S  # msgs/s it should write

    def slot(self, k: int, subscribed: set) -> tuple[bytes, int]:
        chunk, n = self.chunks[k % len(self.chunks)]
        due = [t for t in self.kline_due.get(k % self.kline_slots, ()) if t in subscribed]
        if due:
            chunk = chunk + b''.join(kline_update(t, k) for t in due)
            n += len(due)
        return chunk, n


class AccountFloodServer(ReplayServer):
    """The public side of the whole-account run, one path per category (BYBIT_WS_PUBLIC_URL is
    one category's URL, the others derived from it): once a connection has subscribed to the
    kline topics of its category, its TickerFlood is written at Bybit's rates (paced by the
    clock, not as fast as read) whatever else was subscribed. It counts the frames and bytes
    written per category and how far behind schedule a write fell (a reader that cannot keep up
    fills the socket, and drain() then holds the writer back)."""

    def __init__(self, floods: dict[str, TickerFlood]) -> None:
        super().__init__(routes={c: (f.kline_topics, f) for c, f in floods.items()},
                         ack_delay_s=0, settle_s=0)
        self.frames_by = dict.fromkeys(floods, 0)
        self.late_s = 0.0

    async def _stream(self, ws: Any, category: str, source: Any, subscribed: set) -> None:
        flood: TickerFlood = source
        transport = ws.transport
        loop = asyncio.get_running_loop()
        self._started(category)
        try:
            if flood.first:
                transport.write(flood.first)
                self._wrote(category, len(flood.first))
                self.frames_by[category] += len(flood.symbols)
            t0, k = loop.time(), 0
            while not transport.is_closing():
                k += 1
                delay = t0 + k * FLOOD_SLOT_S - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.late_s = max(self.late_s, -delay)
                chunk, n = flood.slot(k, subscribed)
                transport.write(chunk)
                self._wrote(category, len(chunk))
                self.frames_by[category] += n
                await ws.drain()
        except (ConnectionError, asyncio.CancelledError):
            return


# Four categories streaming to a BybitWS client (the memory part) #################################

OPTION_SYMBOL = 'BTC-31DEC27-100000-C'
MEM4_TOPICS = {  # category: (ticker topic, trade topic); linear carries the book replay
    'inverse': ('tickers.BTCUSD', 'publicTrade.BTCUSD'),
    'spot': ('tickers.BTCUSDT', 'publicTrade.BTCUSDT'),
    'option': (f'tickers.{OPTION_SYMBOL}', 'publicTrade.BTC'),  # option trades: the base coin
}


def _counter_template(obj: Any) -> tuple[bytes, list[str]]:
    """Compact JSON with each "@name@" (a whole value, or inside a string) turned into %d, and
    the names in the order they appear."""
    text = dumps(obj).replace('%', '%%')
    names = re.findall(r'@(\w+)@', text)
    text = re.sub(r'"@\w+@"', '%d', text)
    return re.sub(r'@\w+@', '%d', text).encode(), names


def market_traffic(category: str) -> Iterator[bytes]:
    """Endless ticker and trade messages of one symbol of `category`, shaped as Bybit's
    (ticker.mdx, trade.mdx; option tickers and trades carry an id and greeks), with every ts,
    seq and trade id new."""
    rng = random.Random(11)
    ticker_topic, trade_topic = MEM4_TOPICS[category]
    symbol = ticker_topic.split('.', 1)[1]
    templates = []
    for v in range(8):
        price = 95_000 + v * 7.5
        if category == 'option':
            ticker = {'id': f'{ticker_topic}-@ts@', 'topic': ticker_topic, 'ts': '@ts@',
                      'data': {'symbol': symbol, 'bidPrice': f'{2490 + v}', 'bidSize': '12.5',
                               'bidIv': '0.4870', 'askPrice': f'{2510 + v}', 'askSize': '9.1',
                               'askIv': '0.4951', 'lastPrice': f'{2500 + v}',
                               'highPrice24h': '2650', 'lowPrice24h': '2380',
                               'markPrice': f'{2498.3 + v:.1f}', 'indexPrice': f'{price:.2f}',
                               'markPriceIv': '0.4896', 'underlyingPrice': f'{price + 21.4:.2f}',
                               'openInterest': '1520.3', 'turnover24h': '9812345.12',
                               'volume24h': '103.2', 'totalVolume': '5231', 'totalTurnover':
                               '498123456', 'delta': '0.4521', 'gamma': '0.00002',
                               'vega': '52.3114', 'theta': '-48.7723',
                               'predictedDeliveryPrice': '0', 'change24h': '0.0213'},
                      'type': 'snapshot'}
            trade = {'id': f'{trade_topic}-@ts@', 'topic': trade_topic, 'ts': '@ts@',
                     'type': 'snapshot', 'data': [{
                         'T': '@ts@', 's': symbol, 'S': 'Buy' if v % 2 else 'Sell', 'v': '0.1',
                         'p': f'{2500 + v}', 'i': 'o-@seq@', 'BT': False, 'mP': '2498.3',
                         'iP': f'{price:.2f}', 'mIv': '0.4896', 'iv': '0.4912'}]}
        else:
            data = _ticker('linear' if category == 'inverse' else 'spot', symbol, price, rng,
                           False, 0)['data']
            ticker = {'topic': ticker_topic, 'type': 'snapshot' if category == 'spot' else 'delta',
                      'data': data, 'cs': '@seq@', 'ts': '@ts@'}
            trade = {'topic': trade_topic, 'type': 'snapshot', 'ts': '@ts@', 'data': [{
                'T': '@ts@', 's': symbol, 'S': 'Buy' if v % 2 else 'Sell',
                'v': '100' if category == 'inverse' else '0.002', 'p': f'{price:.2f}',
                'L': 'PlusTick', 'i': f'{category}-@seq@', 'BT': False, 'seq': '@seq@'}]}
        templates += [_counter_template(ticker), _counter_template(trade)]
    if category == 'inverse':  # derivatives: a snapshot first
        first = _ticker('linear', symbol, 95_000, rng, True, TS0)
        yield dumps(first).encode()
    ts, seq = TS0, 1_000_000
    for i in itertools.count():
        tpl, names = templates[i % len(templates)]
        ts += 1
        seq += 1
        yield tpl % tuple(ts if name == 'ts' else seq for name in names)


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


def client_bybitws_four(url: str, total: int, timeout_s: float, rss_at: Iterable[int] = ()) -> dict:
    """One BybitWS client on the public paths of all four categories at once: the book replay
    and trades on linear, tickers and trades on inverse, spot and option. RSS is read when the
    count of messages (all categories together) reaches each of rss_at, and the run stops at
    `total`; the book is read once every connection is closed, with the number of linear
    messages it has taken in, so the parent can check it against the replay."""
    mod = load_script()
    marks = sorted(set(rss_at) | {total})
    rss: dict[int, int] = {}
    counter = itertools.count(1)   # next() is atomic: four receive threads count together
    per: dict[str, int] = dict.fromkeys(CATEGORIES_ALL, 0)   # one writer each: its own thread
    times = {'t0': 0.0, 't1': 0.0}
    done = threading.Event()

    def seen(category: str) -> None:
        per[category] += 1
        n = next(counter)
        if n == 1:
            times['t0'] = time.perf_counter()
        if n in marks:
            rss[n] = read_rss_kb()
            if n == total:
                times['t1'] = time.perf_counter()
                done.set()

    def on_book(_ws: Any, data: Any) -> None:
        seen(data['category'])

    def on_trade(_ws: Any, data: Any) -> None:
        seen(data[-1]['category'])

    def on_ticker(_ws: Any, data: Any) -> None:
        seen(data['category'])

    rss_start = read_rss_kb()
    channel = [f'linear:{BOOK_TOPIC}', f'linear:{TRADE_TOPIC}'] + [
        f'{category}:{topic}' for category, topics in MEM4_TOPICS.items() for topic in topics]
    ws = mod.BybitWS('', '', symbols=[SYMBOL], channel=channel,
                     callback={'orderbook': on_book, 'trade': on_trade, 'instrument': on_ticker},
                     category=CATEGORY, public_url=url)
    completed = done.wait(timeout_s)
    if not completed:
        times['t1'] = time.perf_counter()
    ws.close()
    book = ws.get_orderbooks()
    return {'n': sum(per.values()) if not completed else total, 't0': times['t0'],
            't1': times['t1'], 'sentinel': completed, 'per_category': dict(per),
            'first': [book['bids'][0][0] if book['bids'] else None,
                      book['asks'][0][0] if book['asks'] else None],
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
        elif args.client == 'bybitws-4cat':
            result = client_bybitws_four(args.url, args.total, args.timeout,
                                         [int(x) for x in args.rss_at.split(',') if x])
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
            # Round by round, each client once a round: this machine's speed drifts over minutes,
            # so each ratio compares runs made seconds apart, not a minute apart.
            values: dict[str, list] = {}
            last: dict[str, dict] = {}
            out: dict[str, tuple] = {}   # label -> the row it ends with, if not a rate
            for _ in range(cfg['repeats']):
                for kind, over_tls in THROUGHPUT_RUNS:
                    label = PEER_LABELS[kind] + (' (TLS)' if over_tls else '')
                    if label in out:
                        continue
                    if over_tls and tls is None:
                        out[label] = ('skipped', 'no openssl to make a cert')
                        continue
                    server = secure if over_tls else plain
                    res = run_client(kind, server.url, total, cfg['client_timeout_s'],
                                     cafile=tls[1] if over_tls else None)
                    if res.get('skipped'):
                        out[label] = ('skipped', res['skipped'])
                        continue
                    if res.get('error'):
                        report.crash(f'{label} throughput client', res['error'])
                        out[label] = ('crashed', '')
                        continue
                    if not res.get('sentinel'):
                        report.crash(f'{label} throughput client',
                                     f'no sentinel within {cfg["client_timeout_s"]} s: got '
                                     f'{res.get("n")} of {total} messages')
                    values.setdefault(label, []).append(res['rate'])
                    last[label] = res
            for kind, over_tls in THROUGHPUT_RUNS:
                label = PEER_LABELS[kind] + (' (TLS)' if over_tls else '')
                if label in out and out[label][0] == 'skipped':
                    report.row(f'{label} msgs/s', 'skipped', '', '', out[label][1])
                if not values.get(label):
                    rates[label] = None
                    continue
                # Best of N: other processes on the machine can only slow a run down.
                rates[label] = max(values[label])
                runs_text = ', '.join(f'{v:,.0f}' for v in values[label])
                n = len(values[label])
                detail = f'best of {n} runs ({runs_text})' if n > 1 else '1 run'
                if last[label].get('version'):
                    detail += f"; {kind} {last[label]['version']}"
                report.row(f'{label} msgs/s', f'{rates[label]:,.0f}', '', '', detail)
                if kind != 'floor':
                    book_rows(report, kind, label, last[label], ref, expected_levels)
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
    memory_one(cfg, report)
    memory_four(cfg, report)


def memory_one(cfg: dict, report: Report) -> None:
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


def memory_four(cfg: dict, report: Report) -> None:
    """RSS of one BybitWS client streaming four categories at once (see client_bybitws_four)."""
    replay = Replay(min(cfg['deltas'], 20_000), seed=2)
    total, first = cfg['mem_total'], cfg['rss_first']
    routes: dict = {'linear': ({BOOK_TOPIC, TRADE_TOPIC},
                               lambda: chunked(replay.payloads(10 ** 15, cyclic=True)))}
    for category, topics in MEM4_TOPICS.items():
        routes[category] = (set(topics), lambda c=category: chunked(market_traffic(c)))
    with ReplayServer(routes=routes) as server:
        res = run_client('bybitws-4cat', server.url_for(CATEGORY), total,
                         cfg['client_timeout_s'] + total / 20_000, rss_at=f'{first},{total}')
    if res.get('error') or not res.get('sentinel'):
        report.crash('BybitWS 4-category memory client', res.get('error') or
                     f'stopped at {res.get("n")} of {total} messages')
        return
    rss, per = res['rss_kb'], res['per_category']
    a, b = rss.get(str(first)), rss.get(str(total))
    growth = (b - a) / MB
    shares = ', '.join(f'{c} {n:,}' for c, n in per.items())
    report.row(f'BybitWS 4 categories RSS after {first:,} msgs', f'{a / MB:.1f} MB', '', '',
               f'{res["rss_start_kb"] / MB:.1f} MB before connecting')
    report.row(f'BybitWS 4 categories RSS after {total:,} msgs', f'{b / MB:.1f} MB', '', '',
               f'{res["rate"]:,.0f} msgs/s over the whole run, on 4 connections: {shares}')
    report.row(f'RSS growth {first:,} -> {total:,} (4 categories)', f'{growth:+.2f} MB',
               '<= 1 MB', 'PASS' if growth <= 1 else 'MISS',
               'book replay + trades on linear; tickers + trades on inverse, spot, option')
    ref = replay.best_at(per['linear'] + 1, cyclic=True)   # + 1: best_at counts a sentinel
    ok, text = book_check(res, ref)
    report.row('BybitWS linear book after the 4-category run', 'match' if ok else 'MISMATCH',
               'match', 'PASS' if ok else 'MISS',
               f'{text} after {per["linear"]:,} linear messages')
    if not ok:
        report.failed.append('BybitWS final book mismatch (4-category memory)')


# (row suffix, BYBIT_SYMBOL, the kline topic flooded on each category's public stream). The
# second is issue 8's "alert latency with four categories streaming": candle symbols in the three
# categories that have klines (option has none), each public stream flooded, and the private
# stream (all four categories' topics) carrying the same fills.
LATENCY_VARIANTS = (
    ('', SYMBOL, {CATEGORY: KLINE_TOPIC}),
    (' (4 categories streaming)', 'BTCUSDT,BTCUSD,spot:ETHUSDT',
     {'linear': 'kline.1.BTCUSDT', 'inverse': 'kline.1.BTCUSD', 'spot': 'kline.1.ETHUSDT'}),
)


def alert_times(discord: Any, sent: dict[str, float], received: dict[str, float]) -> bool:
    """Fill into `received` the FakeDiscord receipt time of each alert whose embed footer says
    `exec <execId>` of a fill in `sent`; True once every fill's alert is in."""
    with discord._lock:
        messages = list(discord.messages)
    for message in messages:
        for embed in message['payload'].get('embeds') or ():
            found = re.search(r'exec (\S+)', (embed.get('footer') or {}).get('text', ''))
            if found and found.group(1) in sent:
                received.setdefault(found.group(1), message['t'])
    return len(received) == len(sent)


def part_latency(cfg: dict, report: Report, tmp: Path) -> None:
    for suffix, symbols, floods in LATENCY_VARIANTS:
        latency_run(cfg, report, tmp, suffix, symbols, floods)


def latency_run(cfg: dict, report: Report, tmp: Path, suffix: str, symbols: str,
                floods: dict[str, str]) -> None:
    fake_bybit, fake_discord = fakes()
    chunks = {c: kline_flood_chunk(topic=t) for c, t in floods.items()}  # the child's, to count
    n_exec = cfg['executions']
    tag = 'latency4' if suffix else 'latency'
    with fake_bybit() as bybit, fake_discord(limit=10_000) as discord, \
            FloodProcess(floods) as flood:
        bybit.wallet = bybit.make_wallet('USDT', '10000')
        log_path = tmp / f'{tag}-bot.log'
        env = bot_env(flood.url, bybit, discord, tmp / f'{tag}.state.json')
        if symbols != SYMBOL:
            env.update(BYBIT_SYMBOL=symbols, BYBIT_CATEGORY='')
        with running_bot(env, log_path) as bot:
            wait_until(lambda: any('execution' in s for s in bybit.subscriptions('private')),
                       20, 'the execution subscription', bot, log_path)
            wait_until(lambda: all(flood.streaming_by[c].is_set() for c in floods), 20,
                       'the kline flood to start', bot, log_path)
            wait_until(lambda: len(discord.messages) >= 1, 20, 'the startup alert', bot, log_path)
            time.sleep(1.0)  # the flood is in full swing
            bytes0, cpu0, t0 = dict(flood.bytes_by), cpu_ticks(bot.pid), time.monotonic()
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
            with contextlib.suppress(RuntimeError):
                wait_until(lambda: alert_times(discord, sent, received), 15,
                           'every execution alert', bot, log_path)
            elapsed = time.monotonic() - t0
            rates = {c: (flood.bytes_by.get(c, 0) - bytes0.get(c, 0)) / len(chunks[c][0]) *
                     chunks[c][1] / elapsed for c in floods}
            cpu = (cpu_ticks(bot.pid) - cpu0) / os.sysconf('SC_CLK_TCK') / elapsed * 100
            rate_limited = len(discord.rate_limited)
    lat = [(received[e] - sent[e]) * 1000 for e in sent if e in received]
    missing = len(sent) - len(lat)
    if suffix:
        each = ', '.join(f'{c} {r:,.0f}' for c, r in rates.items())
        report.note(f'latency{suffix}: BYBIT_SYMBOL={symbols}: the script consumed about '
                    f'{sum(rates.values()):,.0f} kline msgs/s on its {len(floods)} public streams '
                    f'({each}) while the same {n_exec} fills were pushed 100 ms apart (script '
                    f'CPU {cpu:.0f}% of a core)')
    else:
        report.note(f'latency: the script consumed about {sum(rates.values()):,.0f} kline msgs/s '
                    f'on its public stream while {n_exec} fills were pushed 100 ms apart (script '
                    f'CPU {cpu:.0f}% of a core)')
        report.note('latency excludes the coalescing delay (every fill is complete, leavesQty '
                    '"0", so it is flushed at once; EXEC_COALESCE_S at its default 1.0) and '
                    'rate-limit waits (FakeDiscord bucket of 10000 per 2 s; 429s during the run: '
                    f'{rate_limited})')
    if missing:
        report.crash(f'alert latency{suffix}', f'{missing} of {len(sent)} execution alerts never '
                                               'reached Discord within 15 s')
    if not lat:
        return
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    report.row(f'alert latency p50{suffix}', f'{p50:.1f} ms', '', '',
               f'{len(lat)} fills, push -> FakeDiscord receipt')
    report.row(f'alert latency p99{suffix}', f'{p99:.1f} ms', '<= 5 ms',  # issue 11, item 3
               'PASS' if p99 <= 5 else 'MISS',
               'during the public flood' + (f' of {len(floods)} streams' if suffix else ''))
    report.row(f'alert latency max{suffix}', f'{max(lat):.1f} ms', '', '')


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


def account_fixture(bybit: Any) -> None:
    """A Unified account with five coins and open positions in three categories (spot has none),
    so the startup reads and the private recovery return what a real account returns."""
    bybit.wallet = bybit.make_wallet_coins({'USDT': '25000', 'USDC': '5000', 'BTC': '0.5',
                                            'ETH': '4', 'MNT': '1000'})
    bybit.positions = [bybit.make_position(category='linear'),
                       bybit.make_position(category='linear', symbol='ETHUSDT', size='0.5',
                                           avgPrice='3300', positionValue='1650',
                                           markPrice='3400'),
                       bybit.make_position(category='inverse'),
                       bybit.make_position(category='option')]


def account_env(public_url: str, bybit: Any, discord: Any, state_file: Path) -> dict[str, str]:
    """bot_env with the whole-account settings: 20 candle symbols (15 linear, 5 spot) of period
    1, account alerts of all four categories (BYBIT_CATEGORIES empty), keys."""
    env = bot_env(public_url, bybit, discord, state_file)
    env.update(BYBIT_SYMBOL=ACCOUNT_SYMBOLS, BYBIT_CATEGORY='', BYBIT_PERIOD='1',
               BYBIT_CATEGORIES='')
    return env


def proc_status_kb(pid: int, key: str) -> int:
    """A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or -1."""
    with contextlib.suppress(OSError), open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return -1


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime of each thread of a process, in clock ticks (/proc/<pid>/task/*/stat)."""
    ticks = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f'/proc/{pid}/task'):
            with contextlib.suppress(OSError), \
                    open(f'/proc/{pid}/task/{task}/stat', encoding='ascii') as stat:
                text = stat.read()
                fields = text[text.rindex(')') + 2:].split()
                ticks[int(task)] = int(fields[11]) + int(fields[12])
    return ticks


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by OS thread id, from `py-spy dump` when py-spy is installed (Python
    3.11 does not name its OS threads); empty without it."""
    spy = Path(sys.executable).with_name('py-spy')
    tool = str(spy) if spy.is_file() else shutil.which('py-spy')
    if not tool:
        return {}
    try:
        out = subprocess.run([tool, 'dump', '--pid', str(pid), '--nonblocking'], capture_output=True,
                             text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "(.*)"', out,
                                                       re.MULTILINE)}


def thread_cpu_text(pid: int, before: dict[int, int], after: dict[int, int], seconds: float,
                    names: dict[int, str], top: int = 8) -> str:
    tick = os.sysconf('SC_CLK_TCK')
    used = sorted(((after[t] - before.get(t, 0), t) for t in after), reverse=True)
    parts = [f'{names.get(t, "tid " + str(t))} {n / tick / seconds * 100:.1f}'
             for n, t in used[:top] if n]
    return ', '.join(parts) or 'no thread used a tick'


def part_account(cfg: dict, report: Report, tmp: Path) -> None:
    """The real script with the whole-account settings, against FakeBybit (private stream and
    REST), an AccountFloodServer (public paths) and FakeDiscord, over a steady window."""
    fake_bybit, fake_discord = fakes()
    floods = {category: TickerFlood(category) for category in ACCOUNT_TICKERS}
    target_rate = sum(f.rate for f in floods.values())
    window = cfg['account_s']
    with fake_bybit() as bybit, fake_discord(limit=10_000) as discord, \
            AccountFloodServer(floods) as flood:
        account_fixture(bybit)
        log_path = tmp / 'account-bot.log'
        env = account_env(flood.url_for('linear'), bybit, discord, tmp / 'account.state.json')
        with running_bot(env, log_path) as bot:
            wait_until(lambda: any(set(PRIVATE_ALL) <= s for s in bybit.subscriptions('private')),
                       20, 'the private subscriptions', bot, log_path)
            wait_until(lambda: all(flood.streaming_by[c].is_set() for c in floods), 20,
                       'the ticker floods to start', bot, log_path)
            wait_until(lambda: len(discord.messages) >= 1, 20, 'the startup alert', bot, log_path)
            time.sleep(cfg['account_warm_s'])  # past the startup reads and the first recovery
            frames0, bytes0 = dict(flood.frames_by), dict(flood.bytes_by)
            flood.late_s = 0.0
            posts0 = len(discord.messages)
            threads0, cpu0, ns0 = thread_ticks(bot.pid), cpu_ticks(bot.pid), cpu_ns(bot.pid)
            load0 = os.getloadavg()[0]
            t0 = time.monotonic()
            sent: dict[str, float] = {}
            category_of: dict[str, str] = {}
            for i in range(round(window / 0.1)):
                pause = t0 + i * 0.1 - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                category = FILL_CATEGORIES[i % len(FILL_CATEGORIES)]
                item = bybit.make_execution(category=category, side='Buy' if i % 2 else 'Sell')
                with bybit._lock:  # the REST list too, as add_execution() keeps it
                    bybit.executions.append(item)
                sent[item['execId']] = time.monotonic()
                category_of[item['execId']] = category
                bybit.push_private('execution', [item])
            pause = t0 + window - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            threads1, cpu1, ns1 = thread_ticks(bot.pid), cpu_ticks(bot.pid), cpu_ns(bot.pid)
            t1 = time.monotonic()
            frames1, bytes1, late_s = dict(flood.frames_by), dict(flood.bytes_by), flood.late_s
            rss, hwm = proc_status_kb(bot.pid, 'VmRSS'), proc_status_kb(bot.pid, 'VmHWM')
            names = thread_names(bot.pid)
            received: dict[str, float] = {}
            with contextlib.suppress(RuntimeError):
                wait_until(lambda: alert_times(discord, sent, received), 15,
                           'every execution alert', bot, log_path)
            posts = len(discord.messages) - posts0
            alive = bot.poll() is None
    if not alive:
        report.crash('whole account', f'the script exited during the run:\n{log_path.read_text()}')
        return
    elapsed = t1 - t0
    tick = os.sysconf('SC_CLK_TCK')
    cpu = (cpu1 - cpu0) / tick / elapsed * 100
    rates = {c: (frames1[c] - frames0[c]) / elapsed for c in floods}
    mbps = sum(bytes1[c] - bytes0[c] for c in floods) / elapsed / MB / MB
    lat = [(received[e] - sent[e]) * 1000 for e in sent if e in received]
    missing = len(sent) - len(lat)
    precise = f'schedstat {(ns1 - ns0) / 1e7 / elapsed:.2f} %' if ns0 >= 0 and ns1 >= 0 else ''
    report.row('whole account: script CPU', f'{cpu:.1f} %', '<= 8 %', 'PASS' if cpu <= 8 else 'MISS',
               f'of one core, utime+stime over {elapsed:.0f} s ({precise}); 20 candle symbols, '
               f'tickers of {ACCOUNT_TICKERS["linear"]} linear + {ACCOUNT_TICKERS["spot"]} spot '
               'symbols, a fill every 100 ms')
    report.row('whole account: public msgs/s received', f'{sum(rates.values()):,.0f}',
               f'~{target_rate:,.0f}', '',
               ', '.join(f'{c} {r:,.0f}' for c, r in rates.items()) +
               f' (tickers + kline updates), {mbps:.2f} MB/s; writes at most {late_s * 1000:.0f} '
               'ms behind schedule')
    report.row('whole account: script RSS', f'{rss / MB:.1f} MB', '<= 60 MB',
               'PASS' if 0 < rss <= 60 * MB else 'MISS', f'VmRSS at the end; peak VmHWM '
               f'{hwm / MB:.1f} MB')
    if missing:
        report.crash('whole account: alert latency', f'{missing} of {len(sent)} execution alerts '
                                                     'never reached Discord within 15 s')
    if lat:
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        report.row('whole account: alert latency p50', f'{p50:.1f} ms', '', '',
                   f'{len(lat)} fills rotating linear, inverse, spot, option')
        report.row('whole account: alert latency p99', f'{p99:.1f} ms', '<= 10 ms',
                   'PASS' if p99 <= 10 else 'MISS', f'max {max(lat):.1f} ms; push -> '
                   'FakeDiscord receipt')
        by_category = []
        for category in FILL_CATEGORIES:
            mine = [(received[e] - sent[e]) * 1000 for e in sent
                    if e in received and category_of[e] == category]
            if mine:
                by_category.append(f'{category} p50 {percentile(mine, 50):.1f} / p99 '
                                   f'{percentile(mine, 99):.1f} ms')
        report.note('whole account: alert latency per category: ' + '; '.join(by_category) +
                    f'; {posts} Discord posts for {len(sent)} fills (FakeDiscord bucket of 10000, '
                    'so no rate-limit waits: a real webhook allows about 5 posts per 2 s)')
    report.note('whole account: the flood pushes the tickers onto the script\'s own public '
                'connections, unsubscribed (see the docstring); script CPU by thread, % of a '
                f'core: {thread_cpu_text(bot.pid, threads0, threads1, elapsed, names)}; load '
                f'average {load0:.2f} when the window began (other processes on the 2 cores add '
                'to the script\'s CPU time and to the tail latency)')


STARTUP_EVENTS = (  # (label, a regex on the script's DEBUG log)
    ('streams start', r'stream: connecting to'),
    ('public linear connected', r'public linear stream connected'),
    ('public spot connected', r'public spot stream connected'),
    ('private connected', r'private stream connected'),
    ('private authenticated', r'private stream authenticated'),
    ('public linear ready', r'public linear stream ready'),
    ('public spot ready', r'public spot stream ready'),
    ('private ready (after its recovery)', r'private stream ready'),
)


def log_times(text: str, wall0: float) -> dict[str, float]:
    """The first time (s after wall0) each STARTUP_EVENTS pattern appears in the script's log
    (asctime: local time with milliseconds)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        stamp = re.match(r'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ', line)
        if not stamp:
            continue
        at = time.mktime(time.strptime(stamp.group(1), '%Y-%m-%d %H:%M:%S')) + \
            int(stamp.group(2)) / 1000 - wall0
        for label, pattern in STARTUP_EVENTS:
            if label not in found and re.search(pattern, line):
                found[label] = at
    return found


def rest_text(call: dict, wall0: float) -> str:
    query = call['query']
    what = '/'.join(x for x in (query.get('category'), query.get('settleCoin')) if x)
    return f"{call['path'].removeprefix('/v5/')}{' ' + what if what else ''} " \
           f"{(call['time'] - wall0) * 1000:.0f}"


def launch_ms(args: list[str], runs: int) -> float:
    """Median wall time of `python args...` (ms)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=False, cwd=str(ROOT))
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


STARTUP_FAR_S = 0.15  # a REST round trip from a VPS on another continent than Bybit's servers


def measure_startup(n: int, rest_delay_s: float, tmp: Path,
                    all_acked: Callable[[Any], bool]) -> list[dict]:
    """n launches of the script with the whole-account settings, each REST answer held
    rest_delay_s by FakeBybit: when every stream was subscribed and the startup alert came."""
    fake_bybit, fake_discord = fakes()
    runs = []
    for run in range(n):
        tag = f'startup-{run}' + (f'-late{rest_delay_s * 1000:.0f}' if rest_delay_s else '')
        with fake_bybit() as bybit, fake_discord(limit=10_000) as discord:
            account_fixture(bybit)
            bybit.rest_delay_s = rest_delay_s
            log_path = tmp / f'{tag}-bot.log'
            env = account_env(bybit.public_url_for('linear'), bybit, discord,
                              tmp / f'{tag}.state.json')
            env['LOG_LEVEL'] = 'DEBUG'
            wall0, t0 = time.time(), time.monotonic()
            with running_bot(env, log_path) as bot:
                deadline = t0 + 20
                while not all_acked(bybit):
                    if bot.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError('the script did not subscribe every stream within 20 s:'
                                           f' have {bybit.subscriptions()}\n'
                                           f'{log_path.read_text()[-3000:]}')
                    time.sleep(0.002)
                subscribed = time.monotonic() - t0
                wait_until(lambda: len(discord.messages) >= 1, 20, 'the startup alert', bot,
                           log_path)
                alerted = discord.messages[0]['t'] - t0
                wait_until(lambda path=log_path: 'private stream ready' in path.read_text(), 20,
                           'the private recovery', bot, log_path)
                calls = bybit.rest_calls()
        runs.append({'sub': subscribed, 'alert': alerted, 'rest': calls,
                     'log': log_times(log_path.read_text(), wall0), 'wall0': wall0})
    return runs


def part_startup(cfg: dict, report: Report, tmp: Path) -> None:
    """From Popen of the script (whole-account settings, no state file) to every expected
    subscription acked by FakeBybit, and to the startup alert at FakeDiscord."""
    expected = {('public', 'linear'): set(account_kline_topics('linear')),
                ('public', 'spot'): set(account_kline_topics('spot')),
                ('private', None): set(PRIVATE_ALL)}

    def all_acked(bybit: Any) -> bool:
        for (kind, category), topics in expected.items():
            held = set().union(*bybit.subscriptions(kind, category=category))
            if not topics <= held:
                return False
        return True

    runs = measure_startup(cfg['startup_runs'], 0.0, tmp, all_acked)
    far = measure_startup(1, STARTUP_FAR_S, tmp, all_acked)[0]
    order = sorted(range(len(runs)), key=lambda i: runs[i]['sub'])
    median = runs[order[len(order) // 2]]
    subs = ', '.join(f"{r['sub'] * 1000:.0f}" for r in runs)
    alerts = ', '.join(f"{r['alert'] * 1000:.0f}" for r in runs)
    many = f'median of {len(runs)} runs ({{}} ms)' if len(runs) > 1 else '1 run'
    report.row('startup: launch -> every stream subscribed', f"{median['sub'] * 1000:.0f} ms",
               '<= 1000 ms', 'PASS' if median['sub'] <= 1 else 'MISS',
               many.format(subs) + f'; {sum(len(t) for t in expected.values())} topics acked on '
               f'{len(expected)} connections (' +
               ', '.join(f'{kind} {cat or ""}'.strip() + f' {len(t)}'
                         for (kind, cat), t in expected.items()) + '); keys, 4 categories')
    report.row('startup: launch -> startup alert at Discord', f"{median['alert'] * 1000:.0f} ms",
               '', '', many.format(alerts))
    report.row(f'startup, REST answers {STARTUP_FAR_S * 1000:.0f} ms late: subscribed',
               f"{far['sub'] * 1000:.0f} ms", '', '',
               f"1 run; every FakeBybit REST answer held {STARTUP_FAR_S * 1000:.0f} ms, as from a "
               f"VPS far from Bybit; startup alert at {far['alert'] * 1000:.0f} ms")
    # Where the time goes, in the median run: interpreter and imports, then the REST reads.
    pythons = cfg['startup_runs']
    bare = launch_ms(['-c', 'pass'], pythons)
    imports = launch_ms(['-c', 'import requests, websocket'], pythons)
    version = launch_ms([str(script_path()), '--version'], pythons)
    source = script_path().read_text(encoding='utf-8')
    compiles = []
    for _ in range(pythons):
        t_compile = time.perf_counter()
        compile(source, str(script_path()), 'exec')
        compiles.append((time.perf_counter() - t_compile) * 1000)
    compiled = sorted(compiles)[len(compiles) // 2]
    wall0 = median['wall0']
    events = median['log']
    opened = events.get('streams start', math.inf) + wall0
    before = [c for c in median['rest'] if c['time'] < opened]
    after = [c for c in median['rest'] if c['time'] >= opened]
    counts: dict[str, int] = {}
    for call in after:
        counts[call['path'].removeprefix('/v5/')] = counts.get(call['path'].removeprefix('/v5/'),
                                                               0) + 1
    span = (f"{(after[0]['time'] - wall0) * 1000:.0f}-{(after[-1]['time'] - wall0) * 1000:.0f}"
            if after else 'none')
    report.note(
        f'startup breakdown (median run, ms after Popen). For scale: `python -c pass` takes '
        f'{bare:.0f} ms, `python -c "import requests, websocket"` {imports:.0f}, `python '
        f'bybit_ws_notify.py --version` {version:.0f}, of which compiling its '
        f'{source.count(chr(10)):,} lines (a script run as __main__ is never cached as .pyc) '
        f'{compiled:.0f}. '
        'REST requests received by the fake before the streams open (the clock, then the '
        'rest at once): ' + ', '.join(rest_text(c, wall0) for c in before) + '; then ' +
        ', '.join(f'{label} {t * 1000:.0f}' for label, t in events.items()) +
        f"; every subscription acked {median['sub'] * 1000:.0f}; startup alert at Discord "
        f"{median['alert'] * 1000:.0f}; the private recovery's REST reads at {span} (" +
        ', '.join(f'{path} x{n}' for path, n in counts.items()) + ')')


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
                                             'bybitws-fast', 'bybitws-4cat'),
                        help=argparse.SUPPRESS)
    parser.add_argument('--url', help=argparse.SUPPRESS)
    parser.add_argument('--total', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--timeout', type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument('--rss-at', default='', help=argparse.SUPPRESS)
    parser.add_argument('--flood', default='', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        return flood_main(json.loads(args.flood))
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
                elif part == 'idle':
                    part_idle(cfg, report, Path(tmp))
                elif part == 'account':
                    part_account(cfg, report, Path(tmp))
                else:
                    part_startup(cfg, report, Path(tmp))
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
