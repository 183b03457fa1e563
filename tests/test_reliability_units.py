"""Reliability mechanisms tested piece by piece, with real parts and no network: the subscribe-ack
timeout, idempotent stream readiness, posting only what the state file holds, and the state file's
own housekeeping."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_discord import FakeDiscord

import bybit_ws_notify as bot


def streams(ws: bot.BybitWS) -> dict:
    return {st.kind: st for st in ws._streams}


def test_missing_subscribe_ack_does_not_hold_the_stream_forever(caplog):
    ws = bot.BybitWS('', '', symbol='BTCUSDT', channel=['kline.1.BTCUSDT'], autostart=False)
    public = streams(ws)['public']
    public.pending['pub1'] = ['kline.1.BTCUSDT']
    with caplog.at_level(logging.WARNING, logger='bybit_ws_notify'):
        ws._ack_timeout(public)
    assert public.ready and not public.pending
    assert 'no subscribe ack for kline.1.BTCUSDT' in caplog.text
    assert public.topics == ['kline.1.BTCUSDT']   # kept: resubscribed on the next connect


def test_a_stream_becomes_ready_once():
    ws = bot.BybitWS('key', 'secret', symbol='BTCUSDT', channel=['execution'], autostart=False)
    private = streams(ws)['private']
    ws._stream_ready(private)
    ws._stream_ready(private)    # a late ack after the ack timeout
    assert ws._tasks.qsize() == 1  # one recovery, not two


def test_state_file_removes_only_its_own_stale_temp_files(tmp_path: Path):
    state = tmp_path / 'bot.state.json'
    ours = tmp_path / '.bot.state.json.x1y2.tmp'
    other = tmp_path / '.eth.state.json.a1b2.tmp'   # another bot's write in progress
    for path in (ours, other):
        path.write_text('{')
    store = bot.StateFile(str(state))
    assert store.load() is None
    assert not ours.exists() and other.exists()
    assert store.save({'version': 1, 'outbox': []})
    assert bot.StateFile(str(state)).load() == {'version': 1, 'outbox': []}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [state.name, f'{state.name}.log', other.name])


def test_state_journal_saves_replay_and_compact(tmp_path: Path):
    path = tmp_path / 'bot.state.json'
    store = bot.StateFile(str(path))
    store.compact_bytes = 600
    states = [{'version': 2, 'n': n, 'pad': 'x' * 100} for n in range(12)]
    assert store.save(states[0])                       # the first save writes the whole file
    whole = json.loads(path.read_text())
    assert whole['n'] == 0 and whole['journal']
    for state in states[1:4]:
        assert store.save(state)                       # then lines in the journal
    assert json.loads(path.read_text())['n'] == 0      # the file itself is not rewritten
    assert bot.StateFile(str(path)).load() == states[3]
    for state in states[4:]:
        assert store.save(state)                       # past compact_bytes: whole again
    assert json.loads(path.read_text())['n'] > 0
    assert bot.StateFile(str(path)).load() == states[-1]
    # The journal is made at its full size, zeros after its lines: each save writes in place.
    journal = tmp_path / 'bot.state.json.log'
    data = journal.read_bytes()
    end = len(data.rstrip(b'\0'))
    assert len(data) == store.compact_bytes and data[end - 1:end] == b'\n' and end < len(data)
    # A crash mid-write leaves a torn last line over the zeros: the last whole one counts.
    with open(journal, 'r+b') as handle:
        handle.seek(end)
        handle.write(b'{"version": 2, "n": 99, "pa')
    assert bot.StateFile(str(path)).load() == states[-1]
    assert len(journal.read_bytes()) == store.compact_bytes
    # A journal from before the last whole write (a crash between the two) is not read.
    log = (tmp_path / 'bot.state.json.log').read_text().splitlines()
    (tmp_path / 'bot.state.json.log').write_text('\n'.join(['{"journal": "older"}'] + log[1:]))
    assert bot.StateFile(str(path)).load()['n'] == json.loads(path.read_text())['n']
    # A stop writes the whole file: at rest the state is one file.
    store2 = bot.StateFile(str(path))
    assert store2.save(states[5]) and store2.save(states[6]) and store2.save(states[7], whole=True)
    assert {k: v for k, v in json.loads(path.read_text()).items() if k != 'journal'} == states[7]
    # 2.2.0 appended its journal lines, with no zeros after them: such a journal reads the same.
    generation = json.loads(path.read_text())['journal']
    journal.write_text(json.dumps({'journal': generation}) + '\n' + json.dumps(states[9]) + '\n')
    assert bot.StateFile(str(path)).load() == states[9]


def test_the_state_thread_compacts_the_journal_early(tmp_path: Path):
    """A save with early=True (the state thread's) rewrites the whole file once the journal is
    three quarters full; the Discord sender's saves (early=False) fill it to the end first, so
    the slower whole write seldom falls on the save before a post."""
    path = tmp_path / 'bot.state.json'
    for early, lines in ((False, 8), (True, 6)):  # lines of 113 bytes after a 45-byte head
        store = bot.StateFile(str(path))
        store.compact_bytes = 1000
        assert store.save({'version': 2, 'n': -1})            # whole: the journal starts
        written = []
        for n in range(12):
            assert store.save({'version': 2, 'n': n, 'pad': 'x' * 80}, early=early)
            written.append(json.loads(path.read_text())['n'])
        assert written.index(max(written)) == lines, (early, written)  # the first whole rewrite
        store._close_journal()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='RLIMIT_FSIZE, SIGXFSZ')
def test_a_disk_without_room_for_the_journal_ahead_still_takes_every_save(tmp_path: Path):
    """The journal is made at its full size (1 MB of zeros) when there is room. A disk that has
    none (here a file-size limit of 200 KB: EFBIG, as ENOSPC would be) takes every save anyway:
    the journal then grows line by line."""
    path = tmp_path / 'bot.state.json'
    script = f'''
import json, resource, signal, sys
sys.path.insert(0, {str(Path(bot.__file__).parent)!r})
import bybit_ws_notify as bot
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # EFBIG rather than a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
store = bot.StateFile(sys.argv[1])
print(json.dumps([store.save({{'version': 2, 'n': n}}) for n in range(5)]))
'''
    run = subprocess.run([sys.executable, '-c', script, str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert json.loads(run.stdout) == [True] * 5, run.stderr
    assert 'no room to make it 1000000 bytes ahead' in run.stderr
    assert bot.StateFile(str(path)).load() == {'version': 2, 'n': 4}
    assert len((tmp_path / 'bot.state.json.log').read_bytes().rstrip(b'\0')) == \
        len((tmp_path / 'bot.state.json.log').read_bytes()) < 1000


def test_a_journal_replaced_under_the_bot_is_noticed(tmp_path: Path):
    path = tmp_path / 'bot.state.json'
    store = bot.StateFile(str(path))
    assert store.save({'version': 2, 'n': 1}) and store.save({'version': 2, 'n': 2})
    (tmp_path / 'bot.state.json.log').unlink()        # removed: an append would go nowhere
    assert store.save({'version': 2, 'n': 3})          # noticed: the whole file is written
    assert bot.StateFile(str(path)).load() == {'version': 2, 'n': 3}


@pytest.fixture
def discord():
    with FakeDiscord() as fake:
        yield fake


def test_sender_posts_only_what_the_state_file_holds(discord):
    sender = bot.DiscordSender(discord.url, backlog=[{'embed': {'title': 'from the last run'}}])
    sender.start()
    try:
        # The backlog came from the state file: it goes at once.
        discord.wait_for(lambda es: [e['title'] for e in es] == ['from the last run'], 5)
        deadline = time.monotonic() + 5  # Discord has it; the sender marks it done just after
        while sender.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        sender.send({'title': 'new alert'})
        items, seq = sender.pending_state()
        assert [i['embed']['title'] for i in items] == ['new alert'] and seq == 1
        time.sleep(0.5)
        assert len(discord.embeds()) == 1              # not written yet: held back
        sender.mark_persisted({'outbox_seq': seq})
        discord.wait_for(lambda es: [e['title'] for e in es][-1:] == ['new alert'], 5)
        sender.send({'title': 'disk failed'})
        sender.mark_persisted(None)                    # a failed write releases the queue too
        discord.wait_for(lambda es: [e['title'] for e in es][-1:] == ['disk failed'], 5)
    finally:
        assert sender.stop(timeout_s=5)
    assert all(m['payload']['allowed_mentions'] == {'parse': []} for m in discord.messages)


def test_the_sender_saves_an_unsaved_alert_itself_before_posting_it(discord, tmp_path: Path):
    """With persist set (the script sets StateSaver.save_now), the sender does not wait for
    the state thread: it saves the alert itself, then posts it. No state thread runs here."""
    store = bot.StateFile(str(tmp_path / 'bot.state.json'))
    sender = bot.DiscordSender(discord.url)

    def snapshot() -> dict:
        outbox, seq = sender.pending_state()
        return {'version': 2, 'outbox': outbox, 'outbox_seq': seq}

    saver = bot.StateSaver(store, snapshot, on_saved=sender.mark_persisted)
    sender.persist = saver.save_now
    sender.start()
    try:
        sender.send({'title': 'new alert'})
        discord.wait_for(lambda es: [e['title'] for e in es] == ['new alert'], 5)
        # What the disk held when it was posted: the one save the sender made, with the alert.
        saved = bot.StateFile(store.path).load()
        assert [item['embed']['title'] for item in saved['outbox']] == ['new alert']
        assert saved['outbox_seq'] == 1
    finally:
        assert sender.stop(timeout_s=5)


def test_a_second_ctrl_c_ends_the_wait_for_a_post_in_flight(discord):
    # main() sets `abandoned` on a second Ctrl-C; stop() must return at once, not when the hung
    # post times out, so the last save runs before the process leaves.
    sender = bot.DiscordSender(discord.url)
    sender.start()
    discord.hang_next(1, 8)
    sender.send({'title': 'stuck'})
    sender.mark_persisted(None)
    threading.Timer(0.5, setattr, (sender, 'abandoned', True)).start()
    assert sender.stop(timeout_s=10) is False       # it is still queued: kept for the next start
    assert sender._thread.is_alive()                # returned while the post was still hanging


def test_the_webhook_poster_keeps_one_connection_and_replaces_one_the_server_closed(monkeypatch):
    """WebhookPoster: posts reuse one kept-alive connection; when the server has closed it while
    it was idle (as Discord's edge does), the next post goes over a new one instead of
    failing. Against a real HTTP/1.1 server on loopback that closes each connection after its
    third answer, without saying so."""
    import socket as socket_module
    for name in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY'):  # straight to the server
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    connections, bodies = [], []
    closed = threading.Event()
    server = socket_module.create_server(('127.0.0.1', 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(conn)
            reader = conn.makefile('rb')
            for _ in range(3):
                head = b''
                while not head.endswith(b'\r\n\r\n'):
                    line = reader.readline()
                    if not line:
                        break
                    head += line
                if not head:
                    break
                size = int(next(v for k, v in (h.split(b':', 1) for h in head.split(b'\r\n')[1:]
                                               if b':' in h) if k.lower() == b'content-length'))
                bodies.append(json.loads(reader.read(size)))
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')
            reader.close()
            conn.close()
            closed.set()

    threading.Thread(target=serve, daemon=True).start()
    try:
        poster = bot.WebhookPoster(f'http://127.0.0.1:{server.getsockname()[1]}/api/x', (5, 5),
                                   {'User-Agent': 'test'})
        for n in range(3):
            assert poster.post({'n': n}).status_code == 200
        assert closed.wait(10)         # the server has closed the idle connection
        answer = poster.post({'n': 3})
        assert answer.status_code == 200 and answer.json() == {}
        assert bodies == [{'n': n} for n in range(4)] and len(connections) == 2
        poster.idle_s = -1.0           # idle too long (a NAT may have dropped it): a new one
        assert poster.post({'n': 4}).status_code == 200 and len(connections) == 3
    finally:
        server.close()


def test_a_ca_bundle_that_cannot_be_read_is_one_error_and_tls_stays_verified(tmp_path: Path,
                                                                            caplog):
    bad = tmp_path / 'bundle.pem'
    bad.write_text('not a certificate')
    with caplog.at_level(logging.ERROR, logger='bybit_ws_notify'):
        context = bot.WebhookPoster._verifying(str(bad))
    assert context.verify_mode == bot.ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()['x509_ca'] > 0          # requests' own bundle, loaded
    assert [r.getMessage() for r in caplog.records] == [
        (f'CA bundle {bad} cannot be read (SSLError); TLS to Discord is verified against the '
         'default CA bundle of requests instead')]
