"""The chunked websocket frame reader against websocket-client's own reader, frame for frame.

Both readers get the same byte stream through a real socket pair, written in random pieces so a
frame can be cut anywhere: data frames of every length class (7-bit, 16-bit, 64-bit lengths),
fragmented messages, pings, pongs and closes interleaved, and broken frames (reserved bits, bad
opcodes, a stray continuation, a long ping, masked frames). They must return the same
(opcode, payload) sequence, raise the same error at the same point, and send the same pongs and
close frames back. One more test runs the reader over TLS with records split anywhere.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
import struct
import threading
import time

import pytest
import websocket
from fake_bybit import FakeBybit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selfsigned import localhost_cert

import bybit_ws_notify as bot

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = None) -> bytes:
    """One frame as a server sends it (unmasked unless mask is given)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size, flag = len(payload), 0x80 if mask else 0
    if size < 126:
        head += bytes([flag | size])
    elif size < 65536:
        head += bytes([flag | 126]) + struct.pack('!H', size)
    else:
        head += bytes([flag | 127]) + struct.pack('!Q', size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def sizes() -> st.SearchStrategy[int]:
    # Around each length-class boundary, plus small ones (most of Bybit's frames).
    return st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 70000]))


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(['text', 'text', 'binary', 'fragmented', 'ping', 'pong',
                                     'masked', 'broken']))
        payload = random.Random(draw(st.integers(0, 2**32))).randbytes(draw(sizes()))
        if kind in ('text', 'binary'):
            parts.append(frame(TEXT if kind == 'text' else BINARY, payload))
        elif kind == 'fragmented':
            pieces = draw(st.integers(2, 4))
            step = max(len(payload) // pieces, 1)
            chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b'']
            for i, chunk in enumerate(chunks):
                parts.append(frame(TEXT if i == 0 else CONT, chunk, fin=i == len(chunks) - 1))
                if draw(st.booleans()):  # a control frame may come between the fragments
                    parts.append(frame(PING, payload[:draw(st.integers(0, 125))]))
        elif kind in ('ping', 'pong'):
            parts.append(frame(PING if kind == 'ping' else PONG, payload[:125]))
        elif kind == 'masked':
            parts.append(frame(draw(st.sampled_from([TEXT, PING])), payload[:125],
                               mask=payload[-4:].rjust(4, b'm')))
        else:
            parts.append(draw(st.sampled_from([
                frame(TEXT, payload, rsv=4),                 # RSV1: compression, never agreed
                frame(0x3, payload),                         # a reserved opcode
                frame(CONT, payload),                        # continuation with nothing begun
                frame(PING, payload + b'x' * 126),           # a ping longer than 125
                frame(PING, b'', fin=False),                 # a fragmented ping
            ])))
    if draw(st.booleans()):
        parts.append(frame(CLOSE, struct.pack('!H', 1000) + b'bye'))
    return b''.join(parts)


def client_frames(data: bytes) -> list:
    """The (opcode, payload) of each masked frame a client sent."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        size, pos = b1 & 0x7F, pos + 2
        if size == 126:
            size, pos = struct.unpack('!H', data[pos:pos + 2])[0], pos + 2
        elif size == 127:
            size, pos = struct.unpack('!Q', data[pos:pos + 8])[0], pos + 8
        mask, pos = data[pos:pos + 4], pos + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[pos:pos + size]))
        out.append((b0 & 0x0F, payload))
        pos += size
    return out


def read_all(stream: bytes, cuts: list, use_chunked: bool,
             wrap: tuple | None = None) -> tuple:
    """Send `stream` over a socket pair in pieces; read it with one reader. Returns (frames
    returned, the error that ended it, frames the reader sent back)."""
    ours, peer = socket.socketpair()
    if wrap is not None:
        server_ctx, client_ctx = wrap
        result: dict = {}
        accept = threading.Thread(target=lambda: result.update(
            s=server_ctx.wrap_socket(peer, server_side=True)))
        accept.start()
        ours = client_ctx.wrap_socket(ours, server_hostname='localhost')
        accept.join(5)
        peer = result['s']
    ours.settimeout(5)

    def write() -> None:
        pos = 0
        try:
            for cut in [c for c in cuts if c < len(stream)] + [len(stream)]:
                if cut > pos:
                    peer.sendall(stream[pos:cut])
                    pos = cut
            if wrap is None:
                peer.shutdown(socket.SHUT_WR)
            else:  # over TLS the stream ends with a close frame instead of a TCP half-close
                peer.sendall(frame(CLOSE, b''))
        except OSError:  # the reader stopped early (an error or a close) and hung up
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    recv = bot._FrameReader(ws).recv_data if use_chunked else ws.recv_data
    got, error = [], None
    try:
        while True:
            opcode, data = recv()
            got.append((opcode, bytes(data)))
            if opcode == CLOSE:
                break
    except websocket.WebSocketException as exc:
        error = (type(exc).__name__, str(exc))
    sent = b''
    if wrap is None:  # what the reader sent back (pongs, close), up to its half-close
        with contextlib.suppress(OSError):  # websocket-client closes it itself on EOF
            ours.shutdown(socket.SHUT_WR)
        peer.settimeout(5)
        while True:
            chunk = peer.recv(65536)
            if not chunk:
                break
            sent += chunk
    ours.close()  # a writer still blocked on a full buffer now fails and ends
    writer.join(5)
    peer.close()
    return got, error, client_frames(sent)


@FUZZ
@given(stream=streams(), cuts=st.lists(st.integers(0, 200_000), max_size=20).map(sorted))
def test_chunked_reader_matches_websocket_client_frame_for_frame(stream, cuts):
    theirs = read_all(stream, cuts, use_chunked=False)
    ours = read_all(stream, cuts, use_chunked=True)
    assert ours[0] == theirs[0]          # the same frames, in the same order
    assert ours[1] == theirs[1]          # the same error at the same point (or none)
    assert ours[2] == theirs[2]          # the same pongs and close frames sent back


def test_reader_handles_64_bit_lengths_and_frames_split_byte_by_byte():
    big = os.urandom(70_000)
    stream = frame(BINARY, big) + frame(TEXT, b'{"a":1}') + frame(CLOSE, b'')
    got, error, _ = read_all(stream, list(range(40)), use_chunked=True)
    assert got == [(BINARY, big), (TEXT, b'{"a":1}'), (CLOSE, b'')] and error is None


def test_reader_refuses_a_declared_length_it_would_not_allocate():
    head = bytes([0x82, 127]) + struct.pack('!Q', 1 << 40)
    got, error, _ = read_all(head + b'xx', [], use_chunked=True)
    assert got == [] and error is not None and 'too large' in error[1]


def test_an_unexpected_error_turns_the_reader_off_for_later_connections(monkeypatch):
    ours, peer = socket.socketpair()
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    reader = bot._FrameReader(ws)
    reader._buf, reader._pos = frame(PING, b'p'), 0
    monkeypatch.setattr(bot._FrameReader, 'disabled', False)
    ws.cont_frame = None  # breaks the slow path the way a changed websocket-client might
    ws.pong = None
    with pytest.raises(websocket.WebSocketProtocolException):
        reader.recv_data()
    assert bot._FrameReader.disabled
    assert bot._FrameReader.for_connection(ws) == ws.recv_data
    ours.close()
    peer.close()


@pytest.fixture(scope='module')
def tls_pair(tmp_path_factory) -> tuple:
    made = localhost_cert(tmp_path_factory.mktemp('tls'))
    if made is None:
        pytest.skip('openssl is needed to make a self-signed certificate')
    server, cert = made
    client = ssl.create_default_context(cafile=str(cert))  # verified, as in the product
    return server, client


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams(), cuts=st.lists(st.integers(0, 200_000), max_size=30).map(sorted))
def test_reader_over_tls_with_records_split_anywhere(tls_pair, stream, cuts):
    # Each sendall of a piece becomes its own TLS record(s), so records end mid-frame.
    plain = read_all(stream + frame(CLOSE, b''), cuts, use_chunked=False)
    tls = read_all(stream, cuts, use_chunked=True, wrap=tls_pair)
    assert tls[0] == plain[0] and tls[1] == plain[1]


@pytest.mark.parametrize('fast_reader', [False, True])
def test_bybitws_keeps_the_same_book_with_either_reader(fast_reader):
    # Through a real connection to the fake exchange (websockets' frames, its pings and acks).
    with FakeBybit() as bybit:
        ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=['orderbook.50.BTCUSDT'],
                         public_url=bybit.public_url_for('linear'), fast_reader=fast_reader)
        try:
            bybit.wait_subscribed('orderbook.50.BTCUSDT')
            big = [[f'{90000 - i * 0.5:.1f}', '1'] for i in range(2000)]   # a 64-bit length frame
            bybit.push_public('orderbook.50.BTCUSDT', {'s': 'BTCUSDT', 'b': big,
                                                       'a': [['90001.0', '2']], 'u': 1, 'seq': 1})
            for n in range(1, 200):
                bybit.push_public('orderbook.50.BTCUSDT',
                                  {'s': 'BTCUSDT', 'b': [[f'{90000 - n * 0.5:.1f}', '0']], 'a': [],
                                   'u': n + 1, 'seq': n + 1}, type='delta')
            deadline = time.monotonic() + 10
            while len(ws.get_orderbooks()['bids']) != 1801 and time.monotonic() < deadline:
                time.sleep(0.02)
            book = ws.get_orderbooks()
            assert book['bids'][0] == (90000.0, 1.0) and book['asks'] == [(90001.0, 2.0)]
            assert len(book['bids']) == 1801   # 2000 levels less the 199 deleted
        finally:
            ws.close()


@pytest.mark.parametrize(('yield_s', 'yields'), [(-1.0, 20), (3600.0, 0)])  # each frame; never
def test_serving_buffered_frames_lets_go_of_the_gil_every_yield_s(monkeypatch, yield_s, yields):
    """A reader that never waits on the socket must still let other threads run (the alert
    path): it sleeps(0) once every yield_s while it serves frames from its buffer."""
    ours, peer = socket.socketpair()
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    reader = bot._FrameReader(ws, yield_s=yield_s)
    reader._buf, reader._pos = b''.join(frame(TEXT, b'{"n":%d}' % i) for i in range(20)), 0
    slept: list = []
    monkeypatch.setattr(bot.time, 'sleep', slept.append)
    got = [reader.recv_data() for _ in range(20)]
    assert [data for _, data in got] == [b'{"n":%d}' % i for i in range(20)]
    assert slept == [0] * yields
    ours.close()
    peer.close()


@pytest.mark.parametrize(('steps_aside', 'window_s', 'asides'), [
    (True, 3600.0, 20),   # a public reader, an alert on its way: it waits after each frame
    (True, 0.0, 0),       # off (BybitWS alone): never
    (False, 3600.0, 0),   # the private stream's own reader: never
])
def test_public_readers_step_aside_while_an_alert_is_on_its_way(monkeypatch, steps_aside,
                                                                 window_s, asides):
    """_AlertsFirst: after make_way() and until window_s has passed, a public stream's reader
    sleeps out the window after each frame it serves from its buffer: the alert path has the
    GIL. (time.sleep is replaced here, so the window never ends.)"""
    ours, peer = socket.socketpair()
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    reader = bot._FrameReader(ws, yield_s=3600.0, steps_aside=steps_aside)
    reader._buf, reader._pos = b''.join(frame(TEXT, b'{"n":%d}' % i) for i in range(20)), 0
    monkeypatch.setattr(bot._AlertsFirst, 'window_s', window_s)
    monkeypatch.setattr(bot._AlertsFirst, 'until', 0.0)
    bot._AlertsFirst.make_way()
    slept: list = []
    monkeypatch.setattr(bot.time, 'sleep', slept.append)
    got = [reader.recv_data() for _ in range(20)]
    assert [data for _, data in got] == [b'{"n":%d}' % i for i in range(20)]
    assert len(slept) == asides and all(0 < s <= window_s for s in slept)
    ours.close()
    peer.close()


def test_a_frame_waiting_in_the_private_socket_opens_the_window(monkeypatch):
    """_AlertsFirst.check (a public reader's yield): a private frame not read yet, because
    the private thread has no GIL yet, opens the window; an empty socket does not."""
    monkeypatch.setattr(bot._AlertsFirst, 'window_s', 3600.0)
    monkeypatch.setattr(bot._AlertsFirst, 'until', 0.0)
    monkeypatch.setattr(bot._AlertsFirst, 'private', [])
    private, exchange = socket.socketpair()
    try:
        bot._AlertsFirst.watch(private, True)
        bot._AlertsFirst.check()
        assert bot._AlertsFirst.until == 0.0               # nothing waiting
        exchange.sendall(frame(TEXT, b'{"topic":"execution"}'))
        bot._AlertsFirst.check()
        assert bot._AlertsFirst.until > time.perf_counter()
        bot._AlertsFirst.watch(private, False)
        assert bot._AlertsFirst.private == []
    finally:
        private.close()
        exchange.close()
    # A private socket closed before it was unwatched (websocket-client closes it and sets
    # ws.sock to None on a dropped connection) is dropped, and the next one is looked at.
    old, new = socket.socketpair(), socket.socketpair()
    try:
        bot._AlertsFirst.watch(old[0], True)
        old[0].close()
        bot._AlertsFirst.watch(new[0], True)
        assert bot._AlertsFirst.private == [new[0]]
        bot._AlertsFirst.until = 0.0
        new[1].sendall(frame(TEXT, b'{"topic":"order"}'))
        bot._AlertsFirst.check()
        assert bot._AlertsFirst.until > time.perf_counter()
    finally:
        for sock in (*old, *new):
            sock.close()


def _gathering_reader(gather_s: float) -> tuple:
    ours, peer = socket.socketpair()
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    ours.settimeout(10)   # a read that nothing answers fails the test instead of hanging it
    ws.sock, ws.connected = ours, True
    reader = bot._FrameReader(ws, yield_s=3600.0, steps_aside=True)
    reader.gather_s = gather_s
    return reader, ours, peer


def test_a_busy_public_stream_is_read_at_most_every_gather_s(monkeypatch):
    """Once its socket is empty, a reader that read less than gather_s ago sleeps out the rest
    before it reads again, and the frames that came meanwhile come with that one read. A frame
    already waiting is read at once, and so is the first. (time.sleep is replaced: here it
    records the wait and sends what arrives during it.)"""
    reader, ours, peer = _gathering_reader(1.0)
    reader._counted_since -= 10.0   # a stream read for 10 s: a few bytes a second
    slept: list = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        peer.sendall(frame(TEXT, b'{"n":3}') + frame(TEXT, b'{"n":4}'))

    monkeypatch.setattr(bot.time, 'sleep', sleep)
    try:
        peer.sendall(frame(TEXT, b'{"n":1}'))
        assert reader.recv_data() == (TEXT, b'{"n":1}') and slept == []   # the first read
        peer.sendall(frame(TEXT, b'{"n":2}'))
        assert reader.recv_data() == (TEXT, b'{"n":2}') and slept == []   # waiting: at once
        assert reader.recv_data() == (TEXT, b'{"n":3}')                   # empty: it gathers
        assert len(slept) == 1 and 0 < slept[0] <= 1.0
        assert reader.recv_data() == (TEXT, b'{"n":4}') and len(slept) == 1  # the same read
    finally:
        ours.close()
        peer.close()


@pytest.mark.parametrize(('last_read_ago_s', 'bytes_a_second', 'sleeps'), [
    (0.0, 100, True),             # busy and light: it gathers
    (7200.0, 100, False),         # quiet: the last read is longer ago than gather_s
    (0.0, 1 << 40, False),        # a rate whose gather_s of data would not fit in the socket
])
def test_when_a_reader_gathers(monkeypatch, last_read_ago_s, bytes_a_second, sleeps):
    """_gather() on an empty socket, gather_s 1 s: it sleeps only when the last read is recent
    and what would arrive meanwhile, at the rate read lately, fits in the receive buffer (else
    the exchange would be held back)."""
    reader, ours, peer = _gathering_reader(1.0)
    now = time.perf_counter()
    reader._read_at = now - last_read_ago_s
    reader._taken, reader._counted_since = bytes_a_second, now - 1.0
    slept: list = []
    monkeypatch.setattr(bot.time, 'sleep', slept.append)
    try:
        reader._gather()
        assert bool(slept) is sleeps
    finally:
        ours.close()
        peer.close()


def test_gathering_starts_only_once_every_subscribe_is_acked():
    """With more topics than one request takes, the acks come one after another: each is read
    at once (a gather of an hour would otherwise hold the second), and once the stream is
    ready its reader gathers."""
    topics = [f'kline.1.S{i:02d}USDT' for i in range(12)]   # two subscribe requests
    with FakeBybit() as bybit:
        bybit.ack_delay_s = 0.2   # the acks then come in two reads, 0.2 s apart
        ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=topics, autostart=False,
                         public_url=bybit.public_url_for('linear'), fast_reader=True)
        ws.public_gather_s = 3600.0
        ws.ack_timeout_s = 3600.0   # so only the acks themselves make it ready
        ws.start()
        try:
            stream = next(s for s in ws._streams if s.kind == 'public')
            deadline = time.monotonic() + 20
            while not stream.ready and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(topics) > bot.SUBSCRIBE_CHUNK
            assert stream.ready and bybit.subscriptions('public', 'linear') == [set(topics)]
            assert stream.reader is not None and stream.reader.gather_s == 3600.0
        finally:
            ws.close()
        # close() ends a reader asleep in an hour-long gather: no thread is left behind.
        assert not any(thread.is_alive() for thread in ws._threads)


def test_the_private_stream_never_gathers():
    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=['kline.1.BTCUSDT'], autostart=False,
                     public_url='ws://127.0.0.1:1/v5/public/linear', rest_url='http://127.0.0.1:1',
                     fast_reader=True)
    ws.public_gather_s = 1.0
    ours, peer = socket.socketpair()
    conn = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    conn.sock, conn.connected = ours, True
    try:
        for kind, category, gather_s in (('private', '', 0.0), ('public', 'linear', 1.0)):
            stream = bot._Stream(kind, 'ws://127.0.0.1:1', [], category)
            stream.reader = bot._FrameReader(conn, steps_aside=kind == 'public')
            ws._start_gathering(stream)
            assert stream.reader.gather_s == gather_s
    finally:
        ours.close()
        peer.close()


def test_a_reader_asleep_in_a_gather_wakes_when_the_client_closes():
    """BybitWS gives its readers its stop event: close() must not wait out a gather."""
    reader, ours, peer = _gathering_reader(3600.0)
    now = time.perf_counter()
    reader._read_at, reader._counted_since = now, now - 3600.0   # busy, a few bytes a second
    reader.stop = threading.Event()
    thread = threading.Thread(target=reader._gather, daemon=True)
    try:
        thread.start()
        thread.join(0.2)
        assert thread.is_alive()    # asleep in the gather
        reader.stop.set()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        ours.close()
        peer.close()
