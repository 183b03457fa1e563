"""Fake Bybit V5 server for tests: public/private WebSocket streams plus signed REST.

Everything binds to 127.0.0.1 on ephemeral ports. The WebSocket side is a ``websockets``
asyncio server running on its own event loop in a daemon thread; the REST side is a
``ThreadingHTTPServer`` in another daemon thread. Every public method is meant to be called
from the (non-asyncio) test thread and is thread-safe.

Protocol shapes follow ``shared/docs/bybit_v5.md`` (sections 2-4 for WS, 7 for REST)::

    with FakeBybit() as bybit:
        env = bybit.env()                      # BYBIT_* variables for the script
        ...start the script with env...
        bybit.wait_subscribed("execution")
        bybit.add_execution(bybit.make_execution(side="Buy"))

A restarted instance (``stop()`` then ``start()``) binds the same ports again when it can,
so URLs handed to a client stay valid. Recorded history is kept across restarts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import http
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tracking_http import TrackingHTTPServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

HOST = "127.0.0.1"
PUBLIC_CATEGORIES = ("linear", "inverse", "spot", "option")
PRIVATE_PATH = "/v5/private"
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
INVALID_KEY_OR_SIGN = "error:invalid apikey or signature"

_SYMBOL = r"[A-Z0-9][A-Z0-9_-]*"
_PUBLIC_TOPIC = re.compile(
    r"^(?:orderbook\.(?:1|50|200|1000)|publicTrade|tickers|allLiquidation"
    r"|kline\.(?:1|3|5|15|30|60|120|240|360|720|D|W|M))\." + _SYMBOL + r"$"
)
# Option has its own book depths and no kline or allLiquidation topic (orderbook.mdx, kline.mdx).
_OPTION_TOPIC = re.compile(r"^(?:orderbook\.(?:25|100)|publicTrade|tickers)\." + _SYMBOL + r"$")
_PRIVATE_TOPIC = re.compile(
    r"^(?:(?:order|execution|execution\.fast)(?:\.(?:spot|linear|inverse|option))?"
    r"|position(?:\.(?:linear|inverse|option))?|wallet|greeks)$"
)
_KLINE_INTERVALS = {"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"}
OPTION_MAX_ARGS = 2000  # docs: "Options: at most 2000 args per connection"
OPTION_SYMBOL = "BTC-31DEC27-100000-C"  # USDC-settled, expiring on a Friday 08:00 UTC
# USD prices make_wallet_coins values a coin at unless told otherwise.
REFERENCE_USD_PRICES = {"USDT": "1", "USDC": "1", "USD": "1", "BTC": "95850", "ETH": "3400", "MNT": "0.8"}


def now_ms() -> int:
    """Local wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


def sign_ws_auth(api_secret: str, expires: int) -> str:
    """Signature for the private WS ``auth`` op: hex HMAC-SHA256 of ``GET/realtime{expires}``."""
    return hmac.new(api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


def sign_rest(api_secret: str, timestamp: str, api_key: str, recv_window: str, query: str) -> str:
    """Signature for a signed REST GET: hex HMAC-SHA256 of ts+key+recv_window+query."""
    payload = f"{timestamp}{api_key}{recv_window}{query}"
    return hmac.new(api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _private_base(topic: str) -> tuple[str, str | None]:
    """Split a private topic into (base, category): ``execution.linear`` -> (execution, linear)."""
    base = "execution.fast" if topic.startswith("execution.fast") else topic.split(".", 1)[0]
    rest = topic[len(base) + 1:]
    return base, (rest or None)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _iso_z(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_category(category: str, allowed: Iterable[str]) -> None:
    """ValueError unless ``category`` is one a factory can make (spot has no positions)."""
    if category not in allowed:
        raise ValueError(f"category {category!r} not in {tuple(allowed)}")


def _dec(value: Decimal) -> str:
    """A decimal string the way Bybit writes them: at most 8 places, no exponent, no trailing 0."""
    text = format(value.quantize(Decimal("0.00000001")).normalize(), "f")
    return "0" if text in ("-0", "") else text


def _wallet_coin_row(coin: str, balance: str, usd_value: str) -> dict[str, Any]:
    """One ``coin[]`` row of a UNIFIED wallet: ``balance`` in the coin, nothing locked or borrowed."""
    return {
        "coin": coin,
        "equity": balance,
        "usdValue": usd_value,
        "walletBalance": balance,
        "availableToWithdraw": "",
        "availableToBorrow": "",
        "borrowAmount": "0",
        "accruedInterest": "0",
        "totalOrderIM": "0",
        "totalPositionIM": "0",
        "totalPositionMM": "0",
        "unrealisedPnl": "0",
        "cumRealisedPnl": "0",
        "bonus": "0",
        "collateralSwitch": True,
        "marginCollateral": True,
        "locked": "0",
        "spotHedgingQty": "0",
        "spotBorrow": "0",
    }


def _wallet_account(coins: list[dict[str, Any]], total_usd: str) -> dict[str, Any]:
    """A UNIFIED account around ``coins`` whose USD totals are all ``total_usd`` (no margin in use)."""
    return {
        "accountIMRate": "0",
        "accountIMRateByMp": "0",
        "accountMMRate": "0",
        "accountMMRateByMp": "0",
        "totalEquity": total_usd,
        "totalWalletBalance": total_usd,
        "totalMarginBalance": total_usd,
        "totalAvailableBalance": total_usd,
        "totalPerpUPL": "0",
        "totalInitialMargin": "0",
        "totalInitialMarginByMp": "0",
        "totalMaintenanceMargin": "0",
        "totalMaintenanceMarginByMp": "0",
        "coin": coins,
        "accountLTV": "0",
        "accountType": "UNIFIED",
    }


class _ApiError(Exception):
    """A REST business error: answered with HTTP 200 and this retCode/retMsg."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class _Conn:
    """Server-side state of one WebSocket connection."""

    def __init__(self, ws: ServerConnection, kind: str, category: str | None) -> None:
        self.ws = ws
        self.kind = kind
        self.category = category
        self.conn_id = f"{uuid.uuid4().hex[:20]}-{random.randint(1, 99)}"
        self.authed = False
        self.subs: set[str] = set()


class _FaultyConnection(ServerConnection):
    """ServerConnection whose outgoing bytes can be swallowed (half-open simulation).

    While ``fake_silent()`` is true nothing is written: no JSON, no protocol pongs, no
    close frames. Only a TCP half-close requested by the protocol still goes out.
    """

    fake_silent: Callable[[], bool] | None = None

    def send_data(self) -> None:
        silent = self.fake_silent
        if silent is None or not silent():
            super().send_data()
            return
        for data in self.protocol.data_to_send():
            if not data and self.transport.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    self.transport.write_eof()


class _RestHandler(BaseHTTPRequestHandler):
    """Routes every HTTP method to FakeBybit._handle_rest."""

    server: TrackingHTTPServer
    protocol_version = "HTTP/1.0"
    timeout = 10

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._handle_rest(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle_rest(self, "POST")

    def do_PUT(self) -> None:
        self.server.owner._handle_rest(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.owner._handle_rest(self, "DELETE")

    def do_PATCH(self) -> None:
        self.server.owner._handle_rest(self, "PATCH")

    def do_HEAD(self) -> None:
        self.server.owner._handle_rest(self, "HEAD")

    def do_OPTIONS(self) -> None:
        self.server.owner._handle_rest(self, "OPTIONS")


class FakeBybit:
    """In-process fake of Bybit V5: WS public/private streams and the REST endpoints a notifier uses.

    Fault knobs (attributes, settable any time from the test thread): ``silent``,
    ``auth_reject``, ``invalid_symbols``, ``rest_rate_limit``, ``server_time_offset_ms`` (a
    skewed server clock: every server timestamp, execTime and auth/signature check follows it),
    ``rest_key_rejected``, ``reject_handshake_status``, ``rest_delay_s`` with
    ``rest_delay_paths`` (slow REST), ``ack_delay_s`` (each subscribe ack held); methods ``drop(kind)`` and ``fail_rest(path, ...)`` (REST
    errors: an HTTP status, a retCode, or a hang past the client's timeout).
    """

    def __init__(self, api_key: str = "test-key", api_secret: str = "test-secret-do-not-leak") -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self._lock = threading.RLock()

        # Faults.
        self.silent: set[str] = set()
        self.auth_reject = False
        self.invalid_symbols: set[str] = {"NOTASYMBOL"}
        self.rest_rate_limit = 0
        self.server_time_offset_ms = 0
        self.rest_key_rejected = False
        self.reject_handshake_status: int | None = None
        self.rest_delay_s = 0.0
        self.rest_delay_paths: set[str] | None = None  # None: every path
        self.ack_delay_s = 0.0
        self._rest_faults: list[dict[str, Any]] = []
        self._rest_stop = threading.Event()

        # Recording.
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.auth_attempts: list[dict[str, Any]] = []
        self.public_connects = 0
        self.private_connects = 0
        self.rest_requests: list[dict[str, Any]] = []
        self.rest_violations: list[str] = []

        # Data model served by REST.
        self.executions: list[dict[str, Any]] = []
        self.open_orders: list[dict[str, Any]] = []
        self.order_history: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.klines: list[dict[str, Any]] = []
        self.wallet: dict[str, Any] = self.make_wallet()
        created = datetime.now(timezone.utc) - timedelta(days=10)
        self.api_key_info: dict[str, Any] = {
            "id": "13770661",
            "note": "test",
            "apiKey": api_key,
            "readOnly": 1,
            "secret": "",
            "permissions": {
                "ContractTrade": [],
                "Spot": [],
                "Wallet": [],
                "Options": [],
                "Derivatives": [],
                "Exchange": [],
                "CopyTrading": [],
                "BlockTrade": [],
                "NFT": [],
                "Affiliate": [],
            },
            "ips": [],
            "type": 1,
            "deadlineDay": 80,
            "expiredAt": _iso_z(datetime.now(timezone.utc) + timedelta(days=80)),
            "createdAt": _iso_z(created),
            "unified": 0,
            "uta": 1,
            "userID": 24617703,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
        }

        # A position's seq grows with each update (the cross sequence, position.mdx).
        self._position_seq = itertools.count(random.randint(10**9, 10**10))

        # Runtime.
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws_thread: threading.Thread | None = None
        self._ws_stop: asyncio.Event | None = None
        self._ws_ready = threading.Event()
        self._ws_error: BaseException | None = None
        self._ws_port = 0
        self._http: TrackingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._rest_port = 0
        self._running = False

    # Lifecycle ##################################################################

    def start(self) -> FakeBybit:
        """Start the WS and REST servers (reusing the previous ports on a restart)."""
        if self._running:
            return self
        self._rest_stop.clear()
        self._http = self._bind_http(self._rest_port)
        self._rest_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-bybit-rest"
        )
        self._http_thread.start()

        self._ws_ready.clear()
        self._ws_error = None
        self._loop = asyncio.new_event_loop()
        self._ws_thread = threading.Thread(target=self._ws_thread_main, daemon=True, name="fake-bybit-ws")
        self._ws_thread.start()
        if not self._ws_ready.wait(10) or self._ws_error is not None:
            self._running = True
            self.stop()
            raise RuntimeError(f"FakeBybit WS server failed to start: {self._ws_error!r}")
        self._running = True
        return self

    def stop(self) -> None:
        """Stop both servers, abort live connections and join every thread. Idempotent."""
        if not self._running:
            return
        self._running = False
        loop, stop_event = self._loop, self._ws_stop
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:
                pass
        if self._ws_thread is not None:
            self._ws_thread.join(10)
        self._rest_stop.set()  # wakes delayed and hanging REST answers
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.close_active()
        if self._http_thread is not None:
            self._http_thread.join(10)
        self._ws_thread = self._http_thread = None
        self._http = None
        self._loop = None
        self._ws_stop = None
        with self._lock:
            self._conns.clear()

    def __enter__(self) -> FakeBybit:  # noqa: PYI034 (typing.Self needs 3.11)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._running

    # URLs #######################################################################

    @property
    def ws_base(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://{HOST}:{self._ws_port}"

    @property
    def private_url(self) -> str:
        """Private stream URL (``/v5/private``)."""
        return self.ws_base + PRIVATE_PATH

    def public_url_for(self, category: str = "linear") -> str:
        """Public stream URL for ``linear``, ``inverse``, ``spot`` or ``option``."""
        if category not in PUBLIC_CATEGORIES:
            raise ValueError(f"unsupported public category {category!r}")
        return f"{self.ws_base}/v5/public/{category}"

    @property
    def rest_url(self) -> str:
        """REST base URL ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self._rest_port}"

    def env(self, category: str = "linear") -> dict[str, str]:
        """Environment variables pointing a client at this fake."""
        return {
            "BYBIT_WS_PUBLIC_URL": self.public_url_for(category),
            "BYBIT_WS_PRIVATE_URL": self.private_url,
            "BYBIT_REST_URL": self.rest_url,
            "BYBIT_API_KEY": self.api_key,
            "BYBIT_API_SECRET": self.api_secret,
        }

    def server_time_ms(self) -> int:
        """The fake server's clock (local clock + ``server_time_offset_ms``)."""
        return now_ms() + self.server_time_offset_ms

    # Inspection / waiting #######################################################

    def connections(self, kind: str, category: str | None = None) -> int:
        """Number of live connections of ``kind`` ("public"/"private"), optionally one category."""
        with self._lock:
            return sum(1 for c in self._conns if c.kind == kind and (category is None or c.category == category))

    def subscriptions(self, kind: str | None = None, category: str | None = None) -> list[set[str]]:
        """Acknowledged topics of every live connection (one set per connection), optionally
        of one public category."""
        with self._lock:
            return [
                set(c.subs) for c in self._conns
                if (kind is None or c.kind == kind) and (category is None or c.category == category)
            ]

    def wait_subscribed(self, topic: str, timeout: float = 10) -> None:
        """Block until some live connection holds an acknowledged subscription to ``topic``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(topic in c.subs for c in self._conns):
                    return
            time.sleep(0.01)
        raise TimeoutError(f"no live subscription to {topic!r} after {timeout}s; have {self.subscriptions()}")

    def wait_connections(self, kind: str, n: int, timeout: float = 10) -> None:
        """Block until at least ``n`` live connections of ``kind`` exist."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connections(kind) >= n:
                return
            time.sleep(0.01)
        raise TimeoutError(f"expected {n} {kind} connections, have {self.connections(kind)} after {timeout}s")

    def rest_calls(self, path: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
        """Recorded REST requests (``rest_requests``) of ``path`` and ``category`` (query), if given."""
        with self._lock:
            return [
                r for r in self.rest_requests
                if (path is None or r["path"] == path) and (category is None or r["query"].get("category") == category)
            ]

    def received_ops(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Frames received from clients (optionally of one kind), without the kind tag."""
        with self._lock:
            return [m for k, m in self.received if kind is None or k == kind]

    # Pushing data ###############################################################

    def publish(self, topic: str, message: dict[str, Any], category: str | None = None) -> int:
        """Send ``message`` (JSON) to every connection subscribed to ``topic``; returns sockets sent to.

        Private connections must be authenticated. ``category`` limits public delivery to one
        public category (linear/inverse/spot/option).
        """
        text = json.dumps(message)
        return self._run(self._publish(topic, text, category))

    def publish_raw(self, kind: str, text: str) -> int:
        """Send raw text (may be invalid JSON) to every connection of ``kind``."""
        return self._run(self._publish_raw(kind, text))

    def push_public(
        self, topic: str, data: Any, *, type: str = "snapshot", category: str | None = None, **extra: Any
    ) -> int:
        """Publish ``{"topic","type","ts","data",**extra}`` to subscribers of a public topic."""
        message = {"topic": topic, "type": type, "ts": self.server_time_ms(), "data": data, **extra}
        return self.publish(topic, message, category=category)

    def push_private(self, topic: str, data: list[dict[str, Any]]) -> int:
        """Push ``{"id","topic","creationTime","data"}`` to private subscribers; returns sockets sent to.

        Subscribers of the all-in-one topic (``execution``) get every item; subscribers of a
        categorised topic (``execution.linear``) get the items whose ``category`` matches, with
        ``topic`` set to the topic they subscribed to.
        """
        return self._run(self._push_private(topic, copy.deepcopy(data)))

    def add_execution(self, item: dict[str, Any], push: bool = True) -> int:
        """Append to ``executions`` (REST) and, if ``push``, push it on topic ``execution``."""
        with self._lock:
            self.executions.append(item)
        if push and self._running:
            return self.push_private("execution", [item])
        return 0

    # Faults #####################################################################

    def drop(self, kind: str, category: str | None = None) -> int:
        """Abort every connection of ``kind`` without a close frame; returns how many."""
        return self._run(self._drop(kind, category))

    def fail_rest(
        self, path: str, times: int = 1, *, status: int | None = None, ret_code: int | None = None,
        hang_s: float = 0.0, category: str | None = None,
    ) -> None:
        """The next ``times`` GETs of ``path`` (of one ``category`` query, if given) fail: with
        HTTP ``status`` (403, 5xx; a short text or HTML body), with HTTP 200 and ``retCode``
        ``ret_code`` (10006 carries the X-Bapi-Limit-* headers), or by answering only after
        ``hang_s`` seconds (past the client's read timeout). Faults queue in the order given."""
        if (status is None) + (ret_code is None) + (not hang_s) != 2:
            raise ValueError("give exactly one of status, ret_code, hang_s")
        with self._lock:
            self._rest_faults.append(
                {"path": path, "left": times, "status": status, "ret_code": ret_code, "hang_s": hang_s,
                 "category": category}
            )

    def rest_fault_pending(self) -> bool:
        """True while some fault of ``fail_rest`` is still to be served."""
        with self._lock:
            return any(f["left"] > 0 for f in self._rest_faults)

    def _take_rest_fault(self, path: str, category: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            for fault in self._rest_faults:
                if fault["path"] == path and fault["left"] > 0 and fault["category"] in (None, category):
                    fault["left"] -= 1
                    return dict(fault)
        return None

    # Factories ##################################################################

    def make_execution(self, *, category: str = "linear", **overrides: Any) -> dict[str, Any]:
        """A ``Trade`` fill (WS/REST field set) of ``category`` with a fresh execId and execTime now.

        Defaults per category (the units are facts of the category, bybit_v5.md section 5):

        - ``linear``: BTCUSDT, 0.001 BTC, value, fee and PnL in USDT;
        - ``inverse``: BTCUSD, 100 USD contracts, value, fee and PnL in BTC;
        - ``spot``: BTCUSDT Limit, 0.001 BTC, no closedSize, execPnl or createType; a Buy pays
          its fee in BTC, a Sell (``side="Sell"``) in USDT;
        - ``option``: OPTION_SYMBOL, 0.1 BTC, premium and fee in USDC, with markIv, tradeIv,
          indexPrice and underlyingPrice; no createType.

        Explicit ``overrides`` always win.
        """
        _check_category(category, ("linear", "inverse", "spot", "option"))
        item: dict[str, Any] = {
            "category": category,
            "symbol": "BTCUSDT",
            "closedSize": "0",
            "execFee": "0.0527175",
            "execId": str(uuid.uuid4()),
            "execPrice": "95850.0",
            "execQty": "0.001",
            "execType": "Trade",
            "execValue": "95.85",
            "feeRate": "0.00055",
            "tradeIv": "",
            "markIv": "",
            "blockTradeId": "",
            "markPrice": "95851.2",
            "indexPrice": "",
            "underlyingPrice": "",
            "leavesQty": "0",
            "orderId": str(uuid.uuid4()),
            "orderLinkId": "",
            "orderPrice": "95900.0",
            "orderQty": "0.001",
            "orderType": "Market",
            "stopOrderType": "UNKNOWN",
            "side": "Buy",
            "execTime": str(self.server_time_ms()),
            "isLeverage": "0",
            "isMaker": False,
            "seq": random.randint(10**11, 10**12),
            "marketUnit": "",
            "execPnl": "0",
            "createType": "CreateByUser",
            "extraFees": "",
            "feeCurrency": "USDT",
        }
        if category == "inverse":
            item.update({
                "symbol": "BTCUSD", "execQty": "100", "orderQty": "100",
                "execValue": "0.0010433", "execFee": "0.00000057", "feeCurrency": "BTC",
            })
        elif category == "spot":
            # A spot buy pays its fee in the base coin, a sell in the quote coin.
            sell = overrides.get("side", "Buy") == "Sell"
            item.update({
                "orderType": "Limit", "orderPrice": "95850.0", "markPrice": "", "feeRate": "0.001",
                "execFee": "0.09585" if sell else "0.000001", "feeCurrency": "USDT" if sell else "BTC",
            })
            for absent in ("closedSize", "execPnl", "createType"):
                del item[absent]
        elif category == "option":
            item.update({
                "symbol": OPTION_SYMBOL, "execPrice": "2500", "execQty": "0.1", "execValue": "250",
                "orderPrice": "2500", "orderQty": "0.1", "orderType": "Limit", "feeRate": "0.0003",
                "execFee": "2.8755", "feeCurrency": "USDC", "markPrice": "2498.3", "markIv": "0.4896",
                "tradeIv": "0.4912", "indexPrice": "95850.12", "underlyingPrice": "95871.5",
            })
            del item["createType"]
        item.update(overrides)
        return item

    def make_order(self, *, category: str = "linear", **overrides: Any) -> dict[str, Any]:
        """A Limit order in status ``New`` (WS ``order`` / REST order field set) of ``category``.

        Defaults: ``linear`` BTCUSDT 0.001 BTC at 90000; ``inverse`` BTCUSD 100 USD contracts
        (leavesValue in BTC); ``spot`` BTCUSDT 0.001 BTC; ``option`` OPTION_SYMBOL 0.1 BTC at a
        2500 USDC premium. Spot and option orders have no createType (order.mdx). Explicit
        ``overrides`` always win.
        """
        _check_category(category, ("linear", "inverse", "spot", "option"))
        ts = str(self.server_time_ms())
        item: dict[str, Any] = {
            "category": category,
            "orderId": str(uuid.uuid4()),
            "orderLinkId": "",
            "blockTradeId": "",
            "symbol": "BTCUSDT",
            "price": "90000.0",
            "qty": "0.001",
            "side": "Buy",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": "New",
            "createType": "CreateByUser",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": "",
            "leavesQty": "0.001",
            "leavesValue": "90",
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "closedPnl": "0",
            "timeInForce": "GTC",
            "orderType": "Limit",
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "95850.0",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": ts,
            "updatedTime": ts,
            "feeCurrency": "",
            "cumFeeDetail": {},
            "rpiTakerAccess": False,
            "rpiMatchedQty": "0",
        }
        if category == "inverse":
            item.update({"symbol": "BTCUSD", "qty": "100", "leavesQty": "100", "leavesValue": "0.00111111"})
        elif category == "spot":
            item.update({"isLeverage": "0"})
            del item["createType"]
        elif category == "option":
            item.update({
                "symbol": OPTION_SYMBOL, "price": "2500", "qty": "0.1", "leavesQty": "0.1", "leavesValue": "250",
                "lastPriceOnCreated": "", "placeType": "price",
            })
            del item["createType"]
        item.update(overrides)
        return item

    def make_position(self, *, ws: bool = False, category: str = "linear", **overrides: Any) -> dict[str, Any]:
        """A one-way long position of ``category`` (there are no spot positions: ValueError).

        Defaults: ``linear`` BTCUSDT 0.01 BTC, value and PnL in USDT; ``inverse`` BTCUSD 100 USD
        contracts, value, margin and PnL in BTC; ``option`` OPTION_SYMBOL 0.1 BTC bought at 2500
        USDC, with the option-only greeks delta, gamma, vega and theta (position.mdx).

        REST shape by default (``avgPrice``); ``ws=True`` gives the WS shape (``entryPrice``).
        Explicit ``overrides`` always win.
        """
        _check_category(category, ("linear", "inverse", "option"))
        ts = str(self.server_time_ms())
        item: dict[str, Any] = {
            "category": category,
            "positionIdx": 0,
            "tradeMode": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "size": "0.01",
            "avgPrice": "95000.0",
            "leverage": "10",
            "breakEvenPrice": "95104.5",
            "positionValue": "950",
            "positionBalance": "0",
            "markPrice": "95850.0",
            "positionIM": "95.5",
            "positionIMByMp": "95.5",
            "positionMM": "4.8",
            "positionMMByMp": "4.8",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": "8.5",
            "curRealisedPnl": "-0.52",
            "cumRealisedPnl": "-0.52",
            "sessionAvgPrice": "",
            "createdTime": ts,
            "updatedTime": ts,
            "tpslMode": "Full",
            "liqPrice": "86000.0",
            "bustPrice": "",
            "positionStatus": "Normal",
            "adlRankIndicator": 2,
            "autoAddMargin": 0,
            "leverageSysUpdatedTime": "",
            "mmrSysUpdatedTime": "",
            "seq": next(self._position_seq),
            "isReduceOnly": False,
        }
        if category == "inverse":
            item.update({
                "riskLimitValue": "150", "symbol": "BTCUSD", "size": "100", "breakEvenPrice": "95052.3",
                "positionValue": "0.00105263", "positionIM": "0.00010526", "positionIMByMp": "0.00010433",
                "positionMM": "0.00000526", "positionMMByMp": "0.00000522", "unrealisedPnl": "0.00000933",
                "curRealisedPnl": "-0.00000058", "cumRealisedPnl": "-0.00000058", "liqPrice": "86500.0",
            })
        elif category == "option":
            item.update({
                "riskId": 0, "riskLimitValue": "", "symbol": OPTION_SYMBOL, "size": "0.1", "avgPrice": "2500",
                "leverage": "", "breakEvenPrice": "", "positionValue": "249.83", "markPrice": "2498.3",
                "positionIM": "0", "positionIMByMp": "0", "positionMM": "0", "positionMMByMp": "0",
                "unrealisedPnl": "-0.17", "curRealisedPnl": "-2.8755", "cumRealisedPnl": "-2.8755",
                "tpslMode": "", "liqPrice": "", "adlRankIndicator": 0,
                "delta": "0.0452", "gamma": "0.0000021", "vega": "5.2311", "theta": "-4.8772",
            })
        if ws:
            item["entryPrice"] = item.pop("avgPrice")
        item.update(overrides)
        return item

    def make_wallet(self, coin: str = "USDT", wallet_balance: str = "1000") -> dict[str, Any]:
        """A UNIFIED account dict (``result.list[0]`` / WS ``wallet`` data item) holding one coin,
        valued one to one in USD (use make_wallet_coins for several coins or a non-USD coin)."""
        return _wallet_account([_wallet_coin_row(coin, wallet_balance, wallet_balance)], wallet_balance)

    def make_wallet_coins(
        self, balances: dict[str, str], *, prices: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A UNIFIED account dict holding several coins, e.g. ``{"USDT": "1000", "BTC": "0.5"}``.

        One ``coin[]`` row per entry (equity and walletBalance in that coin, usdValue in USD at
        ``prices`` or REFERENCE_USD_PRICES; ValueError for a coin with no price). The account
        totals (totalEquity, totalWalletBalance, ...) are the USD sum, as on Bybit.
        """
        price_of = {**REFERENCE_USD_PRICES, **(prices or {})}
        rows: list[dict[str, Any]] = []
        total = Decimal(0)
        for coin, balance in balances.items():
            if coin not in price_of:
                raise ValueError(f"no USD price for {coin!r}: pass prices={{{coin!r}: ...}}")
            usd = Decimal(balance) * Decimal(price_of[coin])
            total += usd
            rows.append(_wallet_coin_row(coin, balance, _dec(usd)))
        return _wallet_account(rows, _dec(total))

    def make_kline(self, **overrides: Any) -> dict[str, Any]:
        """A closed 1-minute BTCUSDT kline item (WS ``kline`` data shape) for the last full minute."""
        start = (self.server_time_ms() // 60_000 - 1) * 60_000
        item: dict[str, Any] = {
            "start": start,
            "end": start + 59_999,
            "interval": "1",
            "open": "95800.0",
            "close": "95850.0",
            "high": "95900.0",
            "low": "95750.0",
            "volume": "12.345",
            "turnover": "1183210.5",
            "confirm": True,
            "timestamp": start + 59_990,
        }
        item.update(overrides)
        return item

    # WebSocket server (runs on self._loop) ######################################

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        loop = self._loop
        if not self._running or loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError("FakeBybit is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _ws_thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._ws_main())
        except Exception as exc:
            self._ws_error = exc  # surfaced by start()
            self._ws_ready.set()
            raise
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _ws_main(self) -> None:
        self._ws_stop = asyncio.Event()
        kwargs: dict[str, Any] = {
            "process_request": self._process_request,
            "compression": None,
            "ping_interval": None,
            "close_timeout": 1,
            "create_connection": _FaultyConnection,
        }
        try:
            server = await serve(self._ws_handler, HOST, self._ws_port, **kwargs)
        except OSError:
            server = await serve(self._ws_handler, HOST, 0, **kwargs)
        self._ws_port = server.sockets[0].getsockname()[1]
        self._ws_ready.set()
        try:
            await self._ws_stop.wait()
        finally:
            with self._lock:
                conns = list(self._conns)
            for conn in conns:
                conn.ws.transport.abort()
            server.close()
            await server.wait_closed()

    @staticmethod
    def _route(path: str) -> tuple[str, str | None] | None:
        if path == PRIVATE_PATH:
            return "private", None
        for category in PUBLIC_CATEGORIES:
            if path == f"/v5/public/{category}":
                return "public", category
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        status = self.reject_handshake_status
        if status:
            return connection.respond(status, "Service Unavailable\n")
        if self._route(urlsplit(request.path).path) is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _ws_handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        route = self._route(urlsplit(ws.request.path).path)
        assert route is not None
        kind, category = route
        conn = _Conn(ws, kind, category)
        if isinstance(ws, _FaultyConnection):
            ws.fake_silent = lambda: kind in self.silent
        with self._lock:
            self._conns.add(conn)
            if kind == "public":
                self.public_connects += 1
            else:
                self.private_connects += 1
        try:
            async for raw in ws:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                await self._on_frame(conn, text)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)

    async def _send(self, conn: _Conn, obj: dict[str, Any]) -> bool:
        return await self._send_text(conn, json.dumps(obj))

    async def _send_text(self, conn: _Conn, text: str) -> bool:
        if conn.kind in self.silent:
            return False
        try:
            await conn.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _on_frame(self, conn: _Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            with self._lock:
                self.received.append((conn.kind, {"_raw": text}))
            return
        with self._lock:
            self.received.append((conn.kind, msg))
        if conn.kind in self.silent:
            return
        op = msg.get("op")
        if op == "ping":
            await self._on_ping(conn, msg)
        elif op == "auth":
            await self._on_auth(conn, msg)
        elif op in ("subscribe", "unsubscribe"):
            await self._on_subscribe(conn, msg, op)
        else:
            reply: dict[str, Any] = {"success": False, "ret_msg": f"error:unknown op {op!r}", "conn_id": conn.conn_id}
            if "req_id" in msg:
                reply["req_id"] = msg["req_id"]
            reply["op"] = op
            await self._send(conn, reply)

    async def _on_ping(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if conn.kind == "private":
            reply: dict[str, Any] = {}
            if "req_id" in msg:
                reply["req_id"] = msg["req_id"]
            reply.update({"op": "pong", "args": [str(self.server_time_ms())], "conn_id": conn.conn_id})
        elif conn.category == "spot":
            reply = {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id, "op": "ping"}
        elif conn.category == "option":
            # The option/spread pong (ws_pong_public_option_spread.json): no conn_id, no req_id.
            reply = {"args": [str(self.server_time_ms())], "op": "pong"}
        else:
            reply = {
                "success": True,
                "ret_msg": "pong",
                "conn_id": conn.conn_id,
                "req_id": msg.get("req_id", ""),
                "op": "ping",
            }
        await self._send(conn, reply)

    def _check_auth(self, args: Any) -> tuple[bool, str]:
        if self.auth_reject:
            return False, INVALID_KEY_OR_SIGN
        if not isinstance(args, list) or len(args) != 3:
            return False, "Params Error"
        key, expires, signature = args
        if isinstance(expires, bool) or not isinstance(expires, int):
            return False, "Params Error"
        if expires <= self.server_time_ms():
            return False, "Params Error"
        if not isinstance(key, str) or not isinstance(signature, str):
            return False, INVALID_KEY_OR_SIGN
        if not hmac.compare_digest(key, self.api_key):
            return False, INVALID_KEY_OR_SIGN
        if not hmac.compare_digest(signature, sign_ws_auth(self.api_secret, expires)):
            return False, INVALID_KEY_OR_SIGN
        return True, ""

    async def _on_auth(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if conn.kind != "private":
            reply = {"success": False, "ret_msg": "error:handler not found", "conn_id": conn.conn_id, "op": "auth"}
            await self._send(conn, reply)
            return
        ok, reason = self._check_auth(msg.get("args"))
        with self._lock:
            self.auth_attempts.append(
                {"ok": ok, "time": time.time(), "reason": reason, "conn_id": conn.conn_id, "args": msg.get("args")}
            )
        if ok:
            conn.authed = True
        reply = {"success": ok, "ret_msg": reason, "op": "auth", "conn_id": conn.conn_id}
        if "req_id" in msg:
            reply["req_id"] = msg["req_id"]
        await self._send(conn, reply)

    def _bad_topic(self, conn: _Conn, topics: list[Any]) -> str | None:
        """Return the ret_msg for an invalid subscribe request, or None if it is valid."""
        if conn.kind == "public" and conn.category == "spot" and len(topics) > 10:
            return "error:args size must be less than or equal to 10"
        shape = _PRIVATE_TOPIC if conn.kind == "private" else _PUBLIC_TOPIC
        if conn.category == "option":
            shape = _OPTION_TOPIC
        for topic in topics:
            if not isinstance(topic, str):
                return f"error:handler not found,topic:{topic}"
            if any(bad in topic for bad in self.invalid_symbols) or not shape.match(topic):
                return f"error:handler not found,topic:{topic}"
        if conn.kind == "private":
            # Docs: all-in-one (order) and categorised (order.linear) topics cannot share a request.
            bases: dict[str, set[bool]] = {}
            for topic in topics:
                base, category = _private_base(topic)
                bases.setdefault(base, set()).add(category is None)
                if len(bases[base]) > 1:
                    return f"error:all-in-one and categorised topics cannot be in one request,topic:{topic}"
        return None

    async def _on_subscribe(self, conn: _Conn, msg: dict[str, Any], op: str) -> None:
        if conn.category == "option":
            await self._on_option_subscribe(conn, msg.get("args"), op)
            return
        req_id = msg.get("req_id", "")
        args = msg.get("args")
        if self.ack_delay_s:  # a connection's requests are answered in order, each this late
            await asyncio.sleep(self.ack_delay_s)

        def reply(success: bool, ret_msg: str) -> dict[str, Any]:
            if conn.kind == "private":
                return {"success": success, "ret_msg": ret_msg, "op": op, "conn_id": conn.conn_id}
            return {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id, "req_id": req_id, "op": op}

        if conn.kind == "private" and not conn.authed:
            await self._send(conn, reply(False, "Request not authorized"))
            return
        if not isinstance(args, list) or not args:
            await self._send(conn, reply(False, "Params Error"))
            return
        if op == "unsubscribe":
            with self._lock:
                conn.subs.difference_update(a for a in args if isinstance(a, str))
            ok_msg = "unsubscribe" if conn.category == "spot" else ""
            await self._send(conn, reply(True, ok_msg))
            return
        error = self._bad_topic(conn, args)
        if error is None:
            seen: set[str] = set()
            for topic in args:
                if topic in conn.subs or topic in seen:
                    error = f"error:already subscribed,topic:{topic}"
                    break
                seen.add(topic)
        if error is not None:
            await self._send(conn, reply(False, error))
            return
        ok_msg = "subscribe" if conn.category == "spot" else ""
        await self._send(conn, reply(True, ok_msg))
        with self._lock:
            conn.subs.update(args)

    async def _on_option_subscribe(self, conn: _Conn, args: Any, op: str) -> None:
        """Option path: a ``COMMAND_RESP`` ack listing topics one by one
        (ws_subscribe_response_public_option_spread.json).

        The docs show only a success. Assumed here: each topic succeeds or fails on its own
        (invalid, duplicate, or past OPTION_MAX_ARGS per connection), ``success`` is false when
        any failed, and ``req_id`` is not echoed (the doc example has none).
        """
        topics = args if isinstance(args, list) else []
        ok: list[str] = []
        failed: list[Any] = []
        with self._lock:
            held = set(conn.subs)
        for topic in topics:
            if op == "unsubscribe":
                (ok if isinstance(topic, str) else failed).append(topic)
            elif self._bad_topic(conn, [topic]) is not None or topic in held or len(held) >= OPTION_MAX_ARGS:
                failed.append(topic)
            else:
                ok.append(topic)
                held.add(topic)
        if op == "unsubscribe":
            with self._lock:
                conn.subs.difference_update(ok)
        reply = {
            "success": bool(topics) and not failed,
            "conn_id": conn.conn_id,
            "data": {"failTopics": failed, "successTopics": ok},
            "type": "COMMAND_RESP",
        }
        await self._send(conn, reply)
        if op == "subscribe":
            with self._lock:
                conn.subs.update(ok)  # after the ack, as on the other paths

    def _live(self) -> list[_Conn]:
        with self._lock:
            return list(self._conns)

    async def _publish(self, topic: str, text: str, category: str | None) -> int:
        sent = 0
        for conn in self._live():
            if topic not in conn.subs or (conn.kind == "private" and not conn.authed):
                continue
            if category is not None and conn.category != category:
                continue
            if await self._send_text(conn, text):
                sent += 1
        return sent

    async def _publish_raw(self, kind: str, text: str) -> int:
        sent = 0
        for conn in self._live():
            if conn.kind == kind and await self._send_text(conn, text):
                sent += 1
        return sent

    async def _push_private(self, topic: str, data: list[dict[str, Any]]) -> int:
        base, pushed_category = _private_base(topic)
        sent = 0
        for conn in self._live():
            if conn.kind != "private" or not conn.authed:
                continue
            delivered = False
            for sub in sorted(conn.subs):
                sub_base, sub_category = _private_base(sub)
                if sub_base != base:
                    continue
                if sub_category is None:
                    items = data
                elif pushed_category not in (None, sub_category):
                    items = []
                else:
                    items = [d for d in data if d.get("category") == sub_category]
                if not items:
                    continue
                message: dict[str, Any] = {"topic": sub, "creationTime": self.server_time_ms(), "data": items}
                if base != "execution.fast":
                    message = {"id": str(uuid.uuid4()), **message}
                if await self._send(conn, message):
                    delivered = True
            sent += delivered
        return sent

    async def _drop(self, kind: str, category: str | None) -> int:
        dropped = 0
        for conn in self._live():
            if conn.kind == kind and (category is None or conn.category == category):
                conn.ws.transport.abort()
                dropped += 1
        return dropped

    # REST server ################################################################

    def _bind_http(self, port: int) -> TrackingHTTPServer:
        try:
            return TrackingHTTPServer((HOST, port), _RestHandler, self, "fake-bybit-rest-req")
        except OSError:
            if port == 0:
                raise
            return TrackingHTTPServer((HOST, 0), _RestHandler, self, "fake-bybit-rest-req")

    def _envelope(self, code: int, msg: str, result: Any) -> dict[str, Any]:
        return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": self.server_time_ms()}

    @staticmethod
    def _write(
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.end_headers()
            if not head:
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle_rest(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        path, raw_query = split.path, split.query
        length = _int(h.headers.get("Content-Length"), 0)
        body = h.rfile.read(length) if length > 0 else b""
        chunked = "chunked" in (h.headers.get("Transfer-Encoding") or "").lower()
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        with self._lock:
            self.rest_requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "raw_query": raw_query,
                    "headers": dict(h.headers.items()),
                    "body": body.decode("utf-8", "replace"),
                    "time": time.time(),
                }
            )
        if method != "GET":
            with self._lock:
                self.rest_violations.append(f"{method} {path}: only GET is allowed")
            self._write(h, 405, b'{"message":"Method Not Allowed"}', headers={"Allow": "GET"}, head=method == "HEAD")
            return
        if length > 0 or chunked:
            # Docs (error.mdx "HTTP Code"): a GET carrying a body is answered 403.
            with self._lock:
                self.rest_violations.append(f"GET {path}: request has a body ({length} bytes)")
            self._write(h, 403, b"403 Forbidden", content_type="text/plain")
            return

        if self.rest_delay_s and (self.rest_delay_paths is None or path in self.rest_delay_paths):
            self._rest_stop.wait(self.rest_delay_s)
        fault = self._take_rest_fault(path, query.get("category"))
        if fault is not None and fault["hang_s"]:
            self._rest_stop.wait(fault["hang_s"])  # the client has given up by now
        elif fault is not None and fault["status"]:
            code = fault["status"]
            text = (
                "403 Forbidden" if code == 403 else
                f"<html><head><title>{code} {http.HTTPStatus(code).phrase}</title></head>"
                f"<body><center><h1>{code} {http.HTTPStatus(code).phrase}</h1></center><hr>"
                "<center>openresty</center></body></html>"
            )
            self._write(h, code, text.encode(), content_type="text/html")
            return
        elif fault is not None:
            headers = {}
            if fault["ret_code"] == 10006:
                headers = {"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "0",
                           "X-Bapi-Limit-Reset-Timestamp": str(self.server_time_ms() + 200)}
            envelope = self._envelope(fault["ret_code"], "Too many visits!" if fault["ret_code"] == 10006
                                      else "injected error", {})
            self._write(h, 200, json.dumps(envelope).encode(), headers=headers)
            return

        routes: dict[str, tuple[bool, Callable[[dict[str, str]], Any]]] = {
            "/v5/market/time": (False, self._rest_time),
            "/v5/market/kline": (False, self._rest_kline),
            "/v5/user/query-api": (True, lambda q: copy.deepcopy(self.api_key_info)),
            "/v5/execution/list": (True, self._rest_execution_list),
            "/v5/order/realtime": (True, self._rest_order_realtime),
            "/v5/order/history": (True, self._rest_order_history),
            "/v5/position/list": (True, self._rest_position_list),
            "/v5/account/wallet-balance": (True, self._rest_wallet_balance),
        }
        route = routes.get(path)
        if route is None:
            self._write(h, 404, b'{"message":"Not Found"}')
            return
        signed, handler = route
        headers: dict[str, str] = {}
        try:
            if signed:
                headers = self._check_signed(h, raw_query)
            result = handler(query)
            envelope = self._envelope(0, "OK", result)
        except _ApiError as err:
            envelope = self._envelope(err.code, err.msg, {})
            if err.code == 10006:
                headers = {
                    "X-Bapi-Limit": "50",
                    "X-Bapi-Limit-Status": "0",
                    "X-Bapi-Limit-Reset-Timestamp": str(self.server_time_ms() + 300),
                }
        self._write(h, 200, json.dumps(envelope).encode(), headers=headers)

    def _check_signed(self, h: BaseHTTPRequestHandler, raw_query: str) -> dict[str, str]:
        with self._lock:
            limited = self.rest_rate_limit > 0
            if limited:
                self.rest_rate_limit -= 1
        if limited:
            raise _ApiError(10006, "Too many visits!")
        key = h.headers.get("X-BAPI-API-KEY") or ""
        timestamp = h.headers.get("X-BAPI-TIMESTAMP") or ""
        recv_window_raw = h.headers.get("X-BAPI-RECV-WINDOW")
        signature = h.headers.get("X-BAPI-SIGN") or ""
        if self.rest_key_rejected or not key or not hmac.compare_digest(key, self.api_key):
            raise _ApiError(10003, "API key is invalid.")
        recv_window = _int(recv_window_raw, -1) if recv_window_raw is not None else 5000
        ts = _int(timestamp, -1)
        server = self.server_time_ms()
        if recv_window <= 0 or ts < 0 or not (server - recv_window <= ts < server + 1000):
            raise _ApiError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{server}],recv_window[{recv_window_raw}]",
            )
        origin = f"{timestamp}{key}{recv_window_raw or ''}{raw_query}"
        expected = sign_rest(self.api_secret, timestamp, key, recv_window_raw or "", raw_query)
        if not hmac.compare_digest(signature, expected):
            raise _ApiError(10004, f"error sign! origin_string[{origin}]")
        return {
            "X-Bapi-Limit": "50",
            "X-Bapi-Limit-Status": "49",
            "X-Bapi-Limit-Reset-Timestamp": str(self.server_time_ms()),
        }

    # REST endpoint implementations ##############################################

    @staticmethod
    def _category(q: dict[str, str], allowed: Iterable[str]) -> str:
        category = q.get("category", "")
        if not category:
            raise _ApiError(10001, "params error: category is required")
        if category not in allowed:
            raise _ApiError(10001, f"params error: Illegal category {category}")
        return category

    @staticmethod
    def _limit(q: dict[str, str], default: int, maximum: int) -> int:
        if "limit" not in q:
            return default
        limit = _int(q["limit"], -1)
        if not 1 <= limit <= maximum:
            raise _ApiError(10001, f"params error: limit must be in [1, {maximum}]")
        return limit

    def _window(self, q: dict[str, str]) -> tuple[int, int]:
        start_raw, end_raw = q.get("startTime"), q.get("endTime")
        start = _int(start_raw, -1) if start_raw else None
        end = _int(end_raw, -1) if end_raw else None
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise _ApiError(10001, "params error: startTime/endTime must be epoch milliseconds")
        if start is None and end is None:
            end = self.server_time_ms()
            return end - WEEK_MS, end
        if end is None:
            assert start is not None
            return start, start + WEEK_MS
        if start is None:
            return end - WEEK_MS, end
        if end < start or end - start > WEEK_MS:
            raise _ApiError(10001, "params error: endTime - startTime must be within 7 days")
        return start, end

    @staticmethod
    def _encode_cursor(key: tuple[Any, ...]) -> str:
        token = base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")
        # Real cursors come back percent-encoded inside the JSON; mimic that.
        return quote(f"page:{token}", safe="")

    @staticmethod
    def _decode_cursor(cursor: str) -> tuple[Any, ...]:
        value = cursor
        for _ in range(3):
            if value.startswith("page:"):
                break
            value = unquote(value)
        if not value.startswith("page:"):
            raise _ApiError(10001, "params error: invalid cursor")
        token = value[len("page:"):]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError as exc:
            raise _ApiError(10001, "params error: invalid cursor") from exc
        return tuple(decoded)

    def _paginate(
        self,
        items: list[dict[str, Any]],
        key: Callable[[dict[str, Any]], tuple[Any, ...]],
        q: dict[str, str],
        limit: int,
    ) -> tuple[list[dict[str, Any]], str]:
        """Sort ``items`` descending by ``key`` and return one page plus the next cursor ("" at the end)."""
        ordered = sorted(items, key=key, reverse=True)
        if q.get("cursor"):
            after = self._decode_cursor(q["cursor"])
            ordered = [it for it in ordered if key(it) < after]
        page = ordered[:limit]
        next_cursor = self._encode_cursor(key(page[-1])) if len(ordered) > limit else ""
        return copy.deepcopy(page), next_cursor

    @staticmethod
    def _match(item: dict[str, Any], q: dict[str, str], fields: Iterable[str]) -> bool:
        for field in fields:
            if q.get(field) and str(item.get(field, "")) != q[field]:
                return False
        symbol = str(item.get("symbol", ""))
        if q.get("baseCoin") and not symbol.startswith(q["baseCoin"]):
            return False
        return not (q.get("settleCoin") and not symbol.endswith(q["settleCoin"]))

    @staticmethod
    def _rest_rows(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Strip ``category`` from REST rows (copies): Bybit puts it only on the result envelope,
        while the WS pushes, made from the same stored items, carry it on every item."""
        for row in page:
            row.pop("category", None)
        return page

    def _snapshot(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            return list(items)

    def _rest_time(self, q: dict[str, str]) -> dict[str, str]:
        ms = self.server_time_ms()
        return {"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000 + random.randint(0, 999_999))}

    def _rest_execution_list(self, q: dict[str, str]) -> dict[str, Any]:
        category = self._category(q, ("linear", "inverse", "spot", "option"))
        limit = self._limit(q, 50, 100)
        start, end = self._window(q)
        items = [
            e
            for e in self._snapshot(self.executions)
            if e.get("category", "linear") == category
            and start <= _int(e.get("execTime")) <= end
            and self._match(e, q, ("symbol", "orderId", "orderLinkId", "execType"))
        ]

        def key(e: dict[str, Any]) -> tuple[Any, ...]:
            tie = f"{e.get('execId', '')}{e.get('orderId', '')}{e.get('leavesQty', '')}"
            return (_int(e.get("execTime")), tie)

        page, next_cursor = self._paginate(items, key, q, limit)
        return {"nextPageCursor": next_cursor, "category": category, "list": self._rest_rows(page)}

    @staticmethod
    def _order_key(o: dict[str, Any]) -> tuple[Any, ...]:
        return (_int(o.get("createdTime")), str(o.get("orderId", "")))

    def _rest_order_realtime(self, q: dict[str, str]) -> dict[str, Any]:
        category = self._category(q, ("linear", "inverse", "spot", "option"))
        if category == "linear" and not (q.get("symbol") or q.get("baseCoin") or q.get("settleCoin")):
            raise _ApiError(10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        limit = self._limit(q, 20, 50)
        if q.get("openOnly") == "1":
            open_statuses = {"New", "PartiallyFilled", "Untriggered"}
            source = [o for o in self._snapshot(self.order_history) if o.get("orderStatus") not in open_statuses]
        else:
            source = self._snapshot(self.open_orders)
        items = [
            o
            for o in source
            if o.get("category", "linear") == category and self._match(o, q, ("symbol", "orderId", "orderLinkId"))
        ]
        page, next_cursor = self._paginate(items, self._order_key, q, limit)
        return {"list": self._rest_rows(page), "nextPageCursor": next_cursor, "category": category}

    def _rest_order_history(self, q: dict[str, str]) -> dict[str, Any]:
        category = self._category(q, ("linear", "inverse", "spot", "option"))
        limit = self._limit(q, 20, 50)
        by_id = bool(q.get("orderId") or q.get("orderLinkId"))
        start, end = (0, 2**62) if by_id else self._window(q)
        items = [
            o
            for o in self._snapshot(self.order_history)
            if o.get("category", "linear") == category
            and start <= _int(o.get("createdTime")) <= end
            and self._match(o, q, ("symbol", "orderId", "orderLinkId", "orderStatus"))
        ]
        page, next_cursor = self._paginate(items, self._order_key, q, limit)
        return {"list": self._rest_rows(page), "nextPageCursor": next_cursor, "category": category}

    def _rest_position_list(self, q: dict[str, str]) -> dict[str, Any]:
        category = self._category(q, ("linear", "inverse", "option"))
        if category == "linear" and not (q.get("symbol") or q.get("settleCoin")):
            raise _ApiError(10001, "Missing some parameters that must be filled in, symbol or settleCoin")
        limit = self._limit(q, 20, 200)
        # Without a symbol only open positions come back: linear by settleCoin, inverse, and
        # option (all of them, or of one baseCoin, which is "for option only"; position.mdx).
        only_open = not q.get("symbol")

        def is_open(p: dict[str, Any]) -> bool:
            try:
                return float(p.get("size") or 0) > 0
            except ValueError:
                return False

        items = [
            p
            for p in self._snapshot(self.positions)
            if p.get("category", "linear") == category
            and self._match(p, q, ("symbol",))
            and (not only_open or is_open(p))
        ]

        def key(p: dict[str, Any]) -> tuple[Any, ...]:
            return (str(p.get("symbol", "")), _int(p.get("positionIdx")))

        page, next_cursor = self._paginate(items, key, q, limit)
        return {"list": self._rest_rows(page), "nextPageCursor": next_cursor, "category": category}

    def _rest_wallet_balance(self, q: dict[str, str]) -> dict[str, Any]:
        if q.get("accountType") != "UNIFIED":
            raise _ApiError(10001, "accountType only support UNIFIED.")
        with self._lock:
            wallet = copy.deepcopy(self.wallet)
        if not wallet:
            return {"list": []}
        if q.get("coin"):
            wanted = {c.strip() for c in q["coin"].split(",") if c.strip()}
            wallet["coin"] = [c for c in wallet.get("coin", []) if c.get("coin") in wanted]
        return {"list": [wallet]}

    def _rest_kline(self, q: dict[str, str]) -> dict[str, Any]:
        category = q.get("category") or "linear"
        if category not in ("linear", "inverse", "spot"):
            raise _ApiError(10001, f"params error: Illegal category {category}")
        symbol, interval = q.get("symbol", ""), q.get("interval", "")
        if not symbol or not interval:
            raise _ApiError(10001, "params error: symbol and interval are required")
        if interval not in _KLINE_INTERVALS:
            raise _ApiError(10001, "params error: invalid interval")
        limit = self._limit(q, 200, 1000)
        start = _int(q.get("start"), 0) if q.get("start") else 0
        end = _int(q.get("end"), 2**62) if q.get("end") else 2**62
        items = [
            k
            for k in self._snapshot(self.klines)
            if k.get("symbol", symbol) == symbol
            and str(k.get("interval", interval)) == interval
            and k.get("category", category) == category
            and start <= _int(k.get("start")) <= end
        ]
        items.sort(key=lambda k: _int(k.get("start")), reverse=True)
        rows = [
            [str(k.get("start")), k.get("open"), k.get("high"), k.get("low"), k.get("close"), k.get("volume"),
             k.get("turnover")]
            for k in items[:limit]
        ]
        return {"category": category, "symbol": symbol, "list": rows}
