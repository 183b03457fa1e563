"""Security: TLS is verified, the key's permissions and expiry are read, the bot only sends GETs."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import http.server
import json
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_no_secrets
from selfsigned import localhost_cert
from test_e2e import clean, started, wait_title
from websockets.sync.server import serve


@pytest.fixture
def self_signed_cert(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a certificate for localhost that no CA signed, and the
    certificate's file (a CA bundle that trusts it)."""
    made = localhost_cert(tmp_path)
    if made is None:
        pytest.skip('openssl is needed to make a self-signed certificate')
    return made


@pytest.fixture
def self_signed(self_signed_cert: tuple[ssl.SSLContext, Path]) -> ssl.SSLContext:
    return self_signed_cert[0]


@pytest.fixture
def tls_ws_url(self_signed: ssl.SSLContext) -> Iterator[tuple[str, list]]:
    handshakes: list = []

    def handler(connection) -> None:
        handshakes.append(connection.request.path)
        for _ in connection:
            pass

    with serve(handler, 'localhost', 0, ssl=self_signed) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f'wss://localhost:{server.socket.getsockname()[1]}/v5/public/linear', handshakes
        server.shutdown()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type, host: str, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A threading HTTP server for handler on host (over TLS with tls), until the block ends;
    yields its port."""
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@pytest.fixture
def tls_rest_url(self_signed: ssl.SSLContext) -> Iterator[tuple[str, list]]:
    hits: list = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"retCode":0,"result":{}}')

    with serving(Handler, 'localhost', self_signed) as port:
        yield f'https://localhost:{port}', hits


@pytest.fixture
def forward_proxy() -> Iterator[tuple[str, list]]:
    """An HTTP forward proxy on loopback: it relays each POST and records the URL it was asked
    for (a client talking to a proxy names the whole URL)."""
    seen: list = []
    auths: list = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            auths.append(self.headers.get('Proxy-Authorization'))
            target = urllib.parse.urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            upstream.request('POST', f'{target.path}?{target.query}', body=body,
                             headers={'Content-Type': self.headers.get('Content-Type', '')})
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for name, value in reply.getheaders():
                if name.lower() not in ('connection', 'content-length', 'transfer-encoding'):
                    self.send_header(name, value)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler, '127.0.0.1') as port:
        yield f'http://127.0.0.1:{port}', seen, auths


@pytest.fixture
def tls_webhook(self_signed: ssl.SSLContext) -> Iterator[tuple[str, list]]:
    """A Discord webhook over TLS (HTTP/1.1, kept alive): it records each POST's path and
    answers 200 as Discord does with ?wait=true."""
    posts: list = []

    class Handler(QuietHandler):
        protocol_version = 'HTTP/1.1'

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
            posts.append((self.path, json.loads(body)))
            reply = b'{"id":"1","type":0}'
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    with serving(Handler, 'localhost', self_signed) as port:
        yield f'https://localhost:{port}/api/webhooks/123/tls-token-xyz', posts


@pytest.fixture
def connect_proxy() -> Iterator[tuple[str, list]]:
    """An HTTP proxy that only tunnels (CONNECT), as a proxy in front of https does; it records
    each CONNECT's target."""
    tunnels: list = []

    class Handler(QuietHandler):
        def do_CONNECT(self) -> None:
            tunnels.append((self.path, self.headers.get('Proxy-Authorization')))
            host, _, port = self.path.rpartition(':')
            upstream = socket.create_connection((host, int(port)), timeout=10)
            self.send_response(200, 'Connection established')
            self.end_headers()
            ends = [self.connection, upstream]
            try:
                while True:
                    for end in select.select(ends, (), (), 10)[0]:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is self.connection else self.connection).sendall(data)
            except OSError:
                return
            finally:
                upstream.close()

    with serving(Handler, '127.0.0.1') as port:
        yield f'http://127.0.0.1:{port}', tunnels


@pytest.mark.parametrize('case', ['untrusted', 'another host name', 'untrusted, in a tunnel'])
def test_discord_tls_is_verified(bybit, discord, run_bot, tls_webhook, connect_proxy,
                                 self_signed_cert, case):
    """A webhook whose certificate no CA signed, or that names another host than the URL's, is
    never posted to, directly or through a tunnelling proxy: one line names the failure, and
    the alerts stay queued."""
    url, posts = tls_webhook
    env = {'STOP_DRAIN_S': '1'}
    if case == 'another host name':   # the certificate is trusted, but it names localhost
        url = url.replace('//localhost:', '//127.0.0.1:')
        env['REQUESTS_CA_BUNDLE'] = str(self_signed_cert[1])
    if case == 'untrusted, in a tunnel':
        env.update(HTTPS_PROXY=connect_proxy[0])
    bot = run_bot(DISCORD_WEBHOOK_URL=url, **env)
    bot.wait_log(r'Discord unreachable \(SSLCertVerificationError\)', timeout=20)
    assert posts == []
    assert bool(connect_proxy[1]) is (case == 'untrusted, in a tunnel')
    assert 'tls-token-xyz' not in bot.output and 'Traceback' not in bot.output
    assert bot.stop() == 0


def test_discord_over_tls_through_a_tunnelling_proxy(bybit, discord, run_bot, tls_webhook,
                                                     connect_proxy, self_signed_cert):
    """HTTPS_PROXY with an https webhook: a CONNECT tunnel, and TLS with the webhook inside it,
    verified against the bundle REQUESTS_CA_BUNDLE names; every alert over one connection."""
    url, posts = tls_webhook
    proxy, tunnels = connect_proxy
    proxy = proxy.replace('http://', 'http://trader:pr0xy-s3cret@')
    bot = run_bot(DISCORD_WEBHOOK_URL=url, HTTPS_PROXY=proxy,
                  REQUESTS_CA_BUNDLE=str(self_signed_cert[1]))
    deadline = time.monotonic() + 20
    while not any(body.get('embeds', [{}])[0].get('title') == 'bybit-ws-notify started'
                  for _, body in posts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(body['embeds'][0].get('title') == 'bybit-ws-notify started' for _, body in posts)
    assert all(path.startswith('/api/v10/webhooks/123/tls-token-xyz?') for path, _ in posts)
    assert bot.stop() == 0                  # its stop alert is posted too
    assert len(posts) >= 2 and posts[-1][1]['embeds'][0]['title'] == 'bybit-ws-notify stopped'
    assert all(body['allowed_mentions'] == {'parse': []} for _, body in posts)
    # one tunnel, kept alive for every post, with the proxy's credentials
    assert tunnels == [(url.split('/')[2], 'Basic ' + base64.b64encode(b'trader:pr0xy-s3cret').decode())]
    assert 'tls-token-xyz' not in bot.output and 'pr0xy-s3cret' not in bot.output


def test_discord_posts_take_the_proxy_the_environment_names(bybit, discord, run_bot,
                                                            forward_proxy):
    """The sender reads requests' environment (HTTP(S)_PROXY, NO_PROXY) once at start rather
    than at every post: a proxy named there is used, and a host NO_PROXY names goes direct."""
    proxy, seen, auths = forward_proxy
    webhook = discord.url.replace('127.0.0.1', 'localhost')   # the fakes of Bybit: no proxy
    bot = run_bot(DISCORD_WEBHOOK_URL=webhook, NO_PROXY='127.0.0.1',
                  HTTP_PROXY=proxy.replace('http://', 'http://trader:pr0xy-s3cret@'))
    started(bybit, discord, bot)
    assert seen and all(url.startswith(webhook.split('/api/')[0] + '/api/v10/webhooks/')
                        for url in seen)
    assert set(auths) == {'Basic ' + base64.b64encode(b'trader:pr0xy-s3cret').decode()}
    assert bot.stop() == 0
    assert 'pr0xy-s3cret' not in bot.output
    seen.clear()
    before = len(discord.embeds())
    bot = run_bot(DISCORD_WEBHOOK_URL=webhook, HTTP_PROXY=proxy, NO_PROXY='127.0.0.1,localhost')
    discord.wait_for(lambda embeds: len(embeds) > before, 15)   # its startup alert
    assert bot.stop() == 0
    assert seen == []
    clean(discord)


def test_a_proxy_url_that_cannot_be_used_is_one_error_and_the_alerts_are_kept(bybit, discord,
                                                                              run_bot):
    webhook = discord.url.replace('127.0.0.1', 'localhost')   # the fakes of Bybit: no proxy
    bot = run_bot(DISCORD_WEBHOOK_URL=webhook, NO_PROXY='127.0.0.1', STOP_DRAIN_S='1',
                  HTTP_PROXY='http://trader:pr0xy-s3cret@proxy.example:notaport')
    bot.wait_log(r'Discord unreachable \(InvalidProxyURL\)', timeout=20)
    assert bot.count_log('is not a usable URL') == 1
    assert bot.stop() == 0
    assert discord.embeds() == [] and 'Traceback' not in bot.output
    assert 'pr0xy-s3cret' not in bot.output
    state = json.loads(Path(bot.env['STATE_FILE']).read_text())
    assert any(item['embed']['title'] == 'bybit-ws-notify started' for item in state['outbox'])


def test_websocket_tls_is_verified(bybit, discord, run_bot, tls_ws_url):
    url, handshakes = tls_ws_url
    bot = run_bot(BYBIT_API_KEY=None, BYBIT_API_SECRET=None, BYBIT_WS_PUBLIC_URL=url)
    line = bot.wait_log(r'public \w+ stream down', timeout=15)
    assert 'CERTIFICATE_VERIFY_FAILED' in line or 'SSLCertVerificationError' in line
    assert handshakes == []          # no websocket upgrade ever reached the untrusted server


def test_rest_tls_is_verified(bybit, discord, run_bot, tls_rest_url):
    url, hits = tls_rest_url
    bot = run_bot(BYBIT_REST_URL=url)
    line = bot.wait_log('could not read the account at startup', timeout=15)
    assert 'SSLError' in line
    assert hits == []
    assert_no_secrets(bot.output, bybit.api_secret, discord.token)


def test_a_missing_ca_bundle_in_the_environment_is_one_warning_and_tls_stays_verified(
        bybit, discord, run_bot, tls_rest_url, tmp_path):
    """REQUESTS_CA_BUNDLE naming a file that is not there made every https call raise an OSError
    that is none of requests' errors (a traceback at startup, lost alerts later). Now: one
    warning naming it, then the default bundle: the self-signed server is still refused."""
    url, hits = tls_rest_url
    missing = str(tmp_path / 'no-such-bundle.pem')
    bot = run_bot(BYBIT_REST_URL=url, REQUESTS_CA_BUNDLE=missing)
    line = bot.wait_log('could not read the account at startup', timeout=15)
    assert 'SSLError' in line and hits == []
    assert f'REQUESTS_CA_BUNDLE={missing}: no such file or folder' in bot.output
    wait_title(discord, 'bybit-ws-notify started')     # and it goes on
    assert 'Traceback' not in bot.output
    assert bot.stop() == 0


def test_key_that_can_trade_warns_and_expiry_is_alerted(bybit, discord, run_bot):
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5, hours=1)
    bybit.api_key_info.update(
        readOnly=0, expiredAt=expires.strftime('%Y-%m-%dT%H:%M:%SZ'), deadlineDay=5,
        permissions=dict(bybit.api_key_info['permissions'], ContractTrade=['Order', 'Position'],
                         Wallet=['AccountTransfer', 'Withdraw']))
    bot = run_bot()
    started(bybit, discord, bot)
    bot.wait_log('API key: it can trade')
    bot.wait_log('API key: it can withdraw funds')
    embed = wait_title(discord, r'^API key expires in 5 day\(s\)')
    assert '90 days' in embed['description']
    startup = wait_title(discord, 'bybit-ws-notify started')
    key_field = next(f['value'] for f in startup['fields'] if f['name'] == 'API key')
    assert 'can trade' in key_field and 'expires in 5 day(s)' in key_field
    clean(discord)


def test_only_get_requests_reach_the_rest_api(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.reject_handshake_status = 503
    bybit.drop('private')          # recovery reads everything back over REST
    bybit.add_execution(bybit.make_execution(), push=False)
    wait_title(discord, 'Private stream down')
    bybit.reject_handshake_status = None
    wait_title(discord, 'Private stream restored', timeout=15)
    paths = {r['path'] for r in bybit.rest_requests}
    assert {'/v5/user/query-api', '/v5/execution/list', '/v5/order/realtime',
            '/v5/position/list', '/v5/account/wallet-balance'} <= paths
    assert {r['method'] for r in bybit.rest_requests} == {'GET'}
    assert bybit.rest_violations == []
    assert not any('dcp' in topic for subs in bybit.subscriptions() for topic in subs)
