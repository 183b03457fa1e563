#!/usr/bin/env python3
"""bybit_ws_notify.py: Bybit V5 account and market alerts, delivered to a Discord channel.

Every order, fill, position and balance change on a Bybit account (linear, inverse, spot and
option, each in its own units), and every closed candle of the symbols and periods it watches,
becomes a Discord message within a second. Built to run for months under nohup, tmux or systemd:
it reconnects, backfills what it missed over REST, keeps undelivered alerts in a state file, and
never prints the API secret or the webhook token.

Run:    python3 bybit_ws_notify.py [--check [--send-test]] [--help] [--version] (README: Quick start)
Needs:  Python 3.9+, websocket-client, requests.
Config: edit the Settings block below, or export the same names as environment variables.
Docs:   README.md (every setting, what the alerts look like, systemd unit, troubleshooting).

Sections: Settings (the block above, then one table: _SPEC), Helpers, BybitWS (the account
journal and typed Event, signed REST, one connection per stream, auth, heartbeat, reconnect,
recovery per category), Discord (queue, sender thread, limits), Formatters (pure: event -> embed),
Main (the alert policy, the state file, wiring, the command line and the --check self-check).
"""
from __future__ import annotations

import base64
import bisect
import collections
import datetime as dt
import errno
import hashlib
import hmac
import http.client
import json
import logging
import logging.handlers
import math
import os
import queue
import random
import re
import select
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar, NamedTuple

try:
    import requests
    import websocket
    websocket.create_connection  # noqa: B018 (the PyPI package "websocket" is another library)
except (ImportError, AttributeError) as exc:
    _missing = 'requests' if getattr(exc, 'name', '') == 'requests' else 'websocket-client'
    sys.exit(f'bybit_ws_notify: the Python package {_missing} is missing: run '
             f'"python3 -m pip install -r requirements.txt" (in the venv of the README\'s quick start)')

__version__ = '2.4.0'

# Settings ##########################################################################################
# A trader edits this block and nothing else. An environment variable of the same name overrides
# each value; an empty one (NAME=) counts as not set. Booleans take true/false, yes/no, on/off, 1/0.
# `python bybit_ws_notify.py --help` lists every setting with its current value.

# Discord
DISCORD_NOTIFY      = False      # True: post alerts to Discord. False: print them to the console
DISCORD_WEBHOOK_URL = ''         # https://discord.com/api/webhooks/<id>/<token>  (keep it secret)

# Bybit account
BYBIT_API_KEY    = ''            # a read-only key. Empty: public market data only (kline alerts)
BYBIT_API_SECRET = ''            # its secret
BYBIT_IS_TESTNET = False         # True: testnet, False: mainnet
BYBIT_DEMO       = False         # True: Bybit demo trading (its own keys and private host)
BYBIT_SYMBOL     = 'BTCUSD'      # candle symbols, comma-separated; spot:ETHUSDT names the category
BYBIT_CATEGORY   = ''            # inverse / linear / spot of unprefixed symbols. Empty: derived
BYBIT_CATEGORIES = ''            # account alerts of: linear,inverse,spot,option. Empty: all four

# Alerts
BYBIT_ORDER_NOTIFY     = True    # order status changes (new, filled, cancelled, rejected...)
BYBIT_EXECUTION_NOTIFY = True    # fills, grouped per order
BYBIT_POSITION_NOTIFY  = True    # position opened, increased, reduced, closed, flipped
BYBIT_WALLET_NOTIFY    = True    # balance of every coin that changes, one alert per burst
BYBIT_OHLCV_NOTIFY     = True    # one alert per closed candle of each symbol and period
BYBIT_PERIOD           = '1'     # candle periods, comma-separated: 1 3 5 15 30 60 120 240 360 720
                                 # (minutes), D, W, M

# Endpoints: empty means derived from testnet/demo/category. Set them for regional hosts.
BYBIT_WS_PUBLIC_URL  = ''        # e.g. wss://stream.bybit.com/v5/public/linear
BYBIT_WS_PRIVATE_URL = ''        # e.g. wss://stream.bybit.com/v5/private
BYBIT_REST_URL       = ''        # e.g. https://api.bybit.com

# Reliability
STATE_FILE            = ''       # empty: bybit_ws_notify.state.json beside this script
DOWN_ALERT_S          = 60       # one alert when a stream has been down this long
PING_INTERVAL_S       = 20       # Bybit asks for a ping every 20 s
WATCHDOG_S            = 45       # reconnect when nothing (data or pong) arrived for this long
RECONNECT_MAX_S       = 60       # longest wait between reconnect attempts (backoff from 1 s)
EXEC_COALESCE_S       = 1.0      # fills of one order within this window become one alert
DISCORD_BAN_COOLDOWN_S = 900     # first pause after Discord bans our IP; doubles each time
DISCORD_RETRY_MAX_S   = 30       # longest wait between retries while Discord is unreachable
REST_TIMEOUT_S        = 10       # how long a Bybit REST answer may take; then it is retried later
DISCORD_TIMEOUT_S     = 10       # how long Discord may take to answer a post; then it is retried
STOP_DRAIN_S          = 10       # at a stop, how long queued alerts may take to reach Discord
LOG_LEVEL             = 'INFO'   # DEBUG, INFO, WARNING, ERROR
LOG_FILE              = ''       # empty: log to stderr only. Else also here, rotated at 10 MB

# Helpers ###########################################################################################

log = logging.getLogger('bybit_ws_notify')
UTC = dt.timezone.utc  # dt.UTC needs Python 3.11; this file runs on 3.9+

PERIODS = ('1', '3', '5', '15', '30', '60', '120', '240', '360', '720', 'D', 'W', 'M')
PERIOD_MS = {**{p: int(p) * 60_000 for p in PERIODS if p.isdigit()},
             'D': 86_400_000, 'W': 7 * 86_400_000}
CATEGORIES = ('linear', 'inverse', 'spot', 'option')   # the account's product types
CANDLE_CATEGORIES = ('linear', 'inverse', 'spot')      # Bybit has no option kline
PRIVATE_TOPICS = ('order', 'execution', 'position', 'wallet', 'greeks')
_TRUE, _FALSE = ('true', 'yes', 'on', '1'), ('false', 'no', 'off', '0')
_WEBHOOK_PATH = re.compile(r'^/api/(?:v(\d+)/)?webhooks/(\d+)/([\w-]+)/?$')
_DISCORD_HOSTS = ('discord.com', 'discordapp.com', 'ptb.discord.com', 'canary.discord.com')
_LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')
_INVERSE_SYMBOL = re.compile(r'^([A-Z0-9]+)USD(?:[FGHJKMNQUVXZ]\d\d)?$')
_DATED_SYMBOL = re.compile(r'^([A-Z0-9]+?)(USDT|USDC)?-\d{1,2}[A-Z]{3}\d{2}$')
# BTC-27DEC26-100000-C: base, expiry, strike, Call/Put; a -USDT suffix settles in USDT, else USDC
# (docs/v5/market/instrument.mdx, symbol of option instruments)
_OPTION_SYMBOL = re.compile(r'^([A-Z0-9]+)-(\d{1,2}[A-Z]{3}\d{2})-(\d+(?:\.\d+)?)-([CP])(?:-(USDT|USDC))?$')
_SPOT_QUOTES = ('USDT', 'USDC', 'USDE', 'USD1', 'BTC', 'ETH', 'EUR', 'BRL', 'PLN', 'TRY', 'DAI', 'MNT')
LOG_FILE_MAX_BYTES, LOG_FILE_BACKUPS = 10_000_000, 5


class SettingError(ValueError):
    """A setting the user can fix; the message names it and says what it accepts."""


class Settings(NamedTuple):
    """The validated settings, with derived category, endpoints and state file. The fields are
    those of _SPEC, in its order (a test holds them together)."""
    discord_notify: bool
    webhook_url: str
    api_key: str
    api_secret: str
    is_testnet: bool
    demo: bool
    symbols: tuple       # Market(category, symbol) of each candle symbol, in the order written
    category: str        # the first symbol's category
    categories: tuple    # the account categories alerted
    order_notify: bool
    execution_notify: bool
    position_notify: bool
    wallet_notify: bool
    ohlcv_notify: bool
    periods: tuple
    public_url: str
    private_url: str
    rest_url: str
    state_file: str
    down_alert_s: float
    ping_interval_s: float
    watchdog_s: float
    reconnect_max_s: float
    exec_coalesce_s: float
    ban_cooldown_s: float
    retry_max_s: float
    rest_timeout_s: float
    discord_timeout_s: float
    drain_s: float
    log_level: str
    log_file: str
    public_urls: dict    # derived: the public stream URL of each category with candle symbols

    @property
    def has_keys(self) -> bool:
        return bool(self.api_key)

    @property
    def symbol(self) -> str:
        """The first candle symbol: data and get_orderbooks() of BybitWS follow it."""
        return self.symbols[0].symbol

    @property
    def period(self) -> str:
        return self.periods[0]


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingError(f'{name}={value!r}: accepts {_BOOL_WORDS}')


_BOOL_WORDS = ', '.join(f'{t}/{f}' for t, f in zip(_TRUE, _FALSE))


def _as_text(name: str, value: Any) -> str:
    return str(value).strip()


def _number(low: float, high: float) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (low <= number <= high):
            raise SettingError(f'{name}={value!r}: accepts a number from {low:g} to {high:g}')
        return number
    return parse


def _as_symbol(name: str, value: Any) -> str:
    symbol = str(value).strip().upper()
    if not re.fullmatch(r'[A-Z0-9-]{3,40}', symbol):
        raise SettingError(f'{name}={value!r}: accepts a Bybit symbol such as BTCUSD, BTCUSDT or '
                           'ETHPERP')
    return symbol


def _list(text: Any) -> list:
    """The entries of a comma-separated setting, stripped, empty ones and repeats left out."""
    entries: list = []
    for entry in str(text).split(','):
        if entry.strip() and entry.strip() not in entries:
            entries.append(entry.strip())
    return entries


def _no_option_candles(name: str, value: Any) -> None:
    raise SettingError(f'{name}={value!r}: Bybit has no option kline, so options cannot have '
                       'candle alerts (their account alerts come with BYBIT_CATEGORIES)')


def _as_symbols(name: str, value: Any) -> tuple:
    """BYBIT_SYMBOL: 'BTCUSDT, spot:ETHUSDT' -> (('', 'BTCUSDT'), ('spot', 'ETHUSDT')); the
    category of an entry without a prefix is settled in load_settings."""
    entries = []
    for entry in _list(value):
        prefix, _, symbol = entry.rpartition(':')
        prefix = prefix.strip().lower()
        if prefix == 'option' or _OPTION_SYMBOL.match(symbol.strip().upper()):
            _no_option_candles(name, entry)
        if prefix and prefix not in CANDLE_CATEGORIES:
            raise SettingError(f'{name}={entry!r}: the prefix accepts linear:, inverse: or spot:')
        pair = (prefix, _as_symbol(name, symbol))
        if pair not in entries:
            entries.append(pair)
    if not entries:
        raise SettingError(f'{name}={value!r}: accepts one or more symbols, comma-separated')
    return tuple(entries)


def _as_category(name: str, value: Any) -> str:
    category = str(value).strip().lower()
    if category == 'option':
        _no_option_candles(name, value)
    if category and category not in CANDLE_CATEGORIES:
        raise SettingError(f'{name}={category!r}: accepts inverse, linear, spot or empty')
    return category


def _as_categories(name: str, value: Any) -> tuple:
    wanted = [entry.lower() for entry in _list(value)] or list(CATEGORIES)
    for category in wanted:
        if category not in CATEGORIES:
            raise SettingError(f'{name}={value!r}: {category!r} is not a category; accepts a '
                               f'comma-separated subset of {",".join(CATEGORIES)}, or empty for all')
    return tuple(c for c in CATEGORIES if c in wanted)


def _as_period(name: str, value: Any) -> str:
    text = str(value).strip()
    period = text.upper() if text.isalpha() else text
    if period not in PERIODS:
        raise SettingError(f'{name}={value!r}: accepts {" ".join(PERIODS)}')
    return period


def _as_periods(name: str, value: Any) -> tuple:
    periods = tuple(dict.fromkeys(_as_period(name, entry) for entry in _list(value)))
    if not periods:
        raise SettingError(f'{name}={value!r}: accepts one or more of {" ".join(PERIODS)}, '
                           'comma-separated')
    return periods


def _as_level(name: str, value: Any) -> str:
    level = str(value).strip().upper()
    if level not in ('DEBUG', 'INFO', 'WARNING', 'ERROR'):
        raise SettingError(f'{name}={value!r}: accepts DEBUG, INFO, WARNING, ERROR')
    return level


class _Setting(NamedTuple):
    """One setting: its name (the constant above and the environment variable), the Settings
    field it fills, how its text is read and checked, what --help and the README say of it,
    and whether its value is a secret that --help masks."""
    name: str
    field: str
    parse: Callable[[str, Any], Any]
    help: str
    secret: bool = False


# Each setting once: this table drives reading the environment, checking, --help and the README's
# settings table (tests/readme.py). Defaults are the constants above; checks that involve several
# settings are in load_settings.
_SPEC = (
    _Setting('DISCORD_NOTIFY', 'discord_notify', _as_bool,
             '`true`: post alerts to Discord. `false`: print them to the console.'),
    _Setting('DISCORD_WEBHOOK_URL', 'webhook_url', _as_text,
             'The webhook URL (see [Create the Discord webhook](#create-the-discord-webhook)). '
             'Required when `DISCORD_NOTIFY` is true. Keep it secret: anyone holding it can post '
             'to your channel.', secret=True),
    _Setting('BYBIT_API_KEY', 'api_key', _as_text,
             'A **read-only** API key. Empty: public-only mode (candle alerts).', secret=True),
    _Setting('BYBIT_API_SECRET', 'api_secret', _as_text,
             'Its secret. Set both or neither.', secret=True),
    _Setting('BYBIT_IS_TESTNET', 'is_testnet', _as_bool,
             'Use testnet (`stream-testnet.bybit.com`, `api-testnet.bybit.com`) with a testnet '
             'key.'),
    _Setting('BYBIT_DEMO', 'demo', _as_bool,
             'Use demo trading on mainnet: private stream `stream-demo.bybit.com`, REST '
             '`api-demo.bybit.com`, public data from mainnet, with a demo key. Not with '
             '`BYBIT_IS_TESTNET`.'),
    _Setting('BYBIT_SYMBOL', 'symbols', _as_symbols,
             'The candle symbols, comma-separated: `BTCUSDT`, or `BTCUSDT,ETHUSDT,spot:SOLUSDT`. '
             'A `linear:`, `inverse:` or `spot:` prefix names the category of one entry. The '
             'first symbol is the one `BybitWS.data` follows.'),
    _Setting('BYBIT_CATEGORY', 'category', _as_category,
             '`inverse`, `linear` or `spot`: the category of the symbols written without a '
             'prefix. Empty: derived from each symbol (`…USD` inverse; `…USDT`, `…USDC`, '
             '`…PERP` linear). Spot must be named (`spot:BTCUSDT`).'),
    _Setting('BYBIT_CATEGORIES', 'categories', _as_categories,
             'The account categories whose orders, fills and positions are alerted, a '
             'comma-separated subset of `linear,inverse,spot,option`. Empty: all four. The '
             'Unified wallet is shared by every category, so balance alerts are not filtered; '
             'candles follow `BYBIT_SYMBOL` whatever their category.'),
    _Setting('BYBIT_ORDER_NOTIFY', 'order_notify', _as_bool, 'Alert on order status changes.'),
    _Setting('BYBIT_EXECUTION_NOTIFY', 'execution_notify', _as_bool,
             'Alert on fills (grouped per order).'),
    _Setting('BYBIT_POSITION_NOTIFY', 'position_notify', _as_bool,
             'Alert on position changes (linear, inverse and option; spot has no positions).'),
    _Setting('BYBIT_WALLET_NOTIFY', 'wallet_notify', _as_bool,
             'Alert when wallet balances change: one alert per burst, listing every coin that '
             'changed.'),
    _Setting('BYBIT_OHLCV_NOTIFY', 'ohlcv_notify', _as_bool,
             'Alert on each closed candle of each symbol and period.'),
    _Setting('BYBIT_PERIOD', 'periods', _as_periods,
             'Candle periods, comma-separated: `1 3 5 15 30 60 120 240 360 720` (minutes), `D`, '
             '`W`, `M`. Each symbol gets one alert per closed candle of each period.'),
    _Setting('BYBIT_WS_PUBLIC_URL', 'public_url', _as_text,
             'Override the public stream URL of one category (regional hosts such as '
             '`wss://stream.bybit.tr/v5/public/linear`); the other categories\' URLs replace its '
             'last path segment. Empty: derived.'),
    _Setting('BYBIT_WS_PRIVATE_URL', 'private_url', _as_text,
             'Override the private stream URL. Empty: derived.'),
    _Setting('BYBIT_REST_URL', 'rest_url', _as_text,
             'Override the REST base URL (e.g. `https://api.bybit.nl`). Empty: derived.'),
    _Setting('STATE_FILE', 'state_file', _as_text,
             'Where the bot keeps its memory. Empty: `bybit_ws_notify.state.json` beside the '
             'script.'),
    _Setting('DOWN_ALERT_S', 'down_alert_s', _number(1, 86400),
             'One alert when a stream has been down this many seconds.'),
    _Setting('PING_INTERVAL_S', 'ping_interval_s', _number(0.2, 60),
             'Seconds between `{"op":"ping"}` messages (Bybit recommends 20).'),
    _Setting('WATCHDOG_S', 'watchdog_s', _number(0.5, 600),
             'Reconnect when nothing (data or pong) has arrived for this long.'),
    _Setting('RECONNECT_MAX_S', 'reconnect_max_s', _number(0.1, 600),
             'Longest wait between reconnect attempts of a stream (the backoff doubles from '
             '1 s, with jitter, up to this).'),
    _Setting('EXEC_COALESCE_S', 'exec_coalesce_s', _number(0, 10),
             'Fills of one order arriving within this window become one alert.'),
    _Setting('DISCORD_BAN_COOLDOWN_S', 'ban_cooldown_s', _number(1, 86400),
             'First pause when Discord bans the IP (a 429 with no rate-limit headers); doubles '
             'with each further ban, up to 6 h, and starts over after an hour without one.'),
    _Setting('DISCORD_RETRY_MAX_S', 'retry_max_s', _number(0.5, 600),
             'Longest wait between retries while Discord is unreachable (5xx, timeouts); the '
             'wait doubles from 1 s up to this.'),
    _Setting('REST_TIMEOUT_S', 'rest_timeout_s', _number(1, 60),
             'Seconds a Bybit REST answer may take. A read that takes longer is abandoned and '
             'retried later; recovery windows stay open until it succeeds.'),
    _Setting('DISCORD_TIMEOUT_S', 'discord_timeout_s', _number(1, 60),
             'Seconds Discord may take to answer a post. A post that takes longer is retried '
             '(Discord has no idempotency key: a late answer can mean a duplicate).'),
    _Setting('STOP_DRAIN_S', 'drain_s', _number(1, 120),
             'At a stop, how long queued alerts may take to reach Discord before the rest are '
             'kept in the state file. A stop takes at most this plus about 2 s: keep systemd\'s '
             '`TimeoutStopSec` above it.'),
    _Setting('LOG_LEVEL', 'log_level', _as_level, '`DEBUG`, `INFO`, `WARNING` or `ERROR`.'),
    _Setting('LOG_FILE', 'log_file', _as_text,
             'Empty: logs go to stderr only. A path: also to this file, rotated at 10 MB with 5 '
             'old files kept (`LOG_FILE.1` … `.5`).'),
)
_SETTING_NAMES = tuple(row.name for row in _SPEC)


def _raw_settings(env: Any) -> dict:
    """The settings block, with non-empty environment variables of the same names laid over it:
    `NAME=` (as systemd EnvironmentFile lines are written) means "not set"."""
    raw = {}
    for name in _SETTING_NAMES:
        value = env.get(name)
        raw[name] = globals()[name] if value is None or not value.strip() else value
    return raw


def _check_url(name: str, url: str, schemes: tuple) -> str:
    """Endpoint overrides: TLS always, except plain ws/http to this machine (tests, local proxies)."""
    parts = urllib.parse.urlsplit(url)
    secure, plain = schemes
    if parts.scheme == plain and parts.hostname in _LOOPBACK_HOSTS:
        return url
    if parts.scheme != secure or not parts.hostname:
        raise SettingError(f'{name}={url!r}: accepts a {secure}:// URL '
                           f'({plain}:// only to 127.0.0.1/localhost)')
    return url


def mask_url(text: str) -> str:
    """A URL fit to show: webhook tokens, and any word of 12+ characters with a letter in it (a
    token pasted in the wrong place), become ***; numeric ids stay, for diagnosis."""
    return re.sub(r'(?<![\w-])(?=[\w-]*[A-Za-z])[\w-]{12,}', '***', redact_webhook(text))


def _webhook_problem(url: str) -> str:
    """What is wrong with a string that should be a Discord webhook URL, in words."""
    text = url.strip()
    if text[:1] in '\'"' or text[-1:] in '\'"':
        return 'it is wrapped in quotes: remove them (an environment file keeps them as part of the value)'
    if re.search(r'\s', text):
        return 'it contains a space or line break: paste it again as one line'
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme:
        return 'it has no scheme: it must start with https://'
    if '/channels/' in parts.path:
        return ('this is a link to a channel, not a webhook URL: Server Settings → Integrations → '
                'Webhooks → Copy Webhook URL')
    if parts.hostname not in _DISCORD_HOSTS + _LOOPBACK_HOSTS:
        return f'{parts.hostname or "no host"} is not a Discord host (discord.com)'
    if parts.scheme != 'https' and parts.hostname in _DISCORD_HOSTS:
        return 'it must start with https://'
    if not _WEBHOOK_PATH.match(parts.path):
        return 'the path is not /api/webhooks/<id>/<token> (a copy cut short?)'
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        return 'its port is not a number from 0 to 65535'
    return 'not a webhook URL'


def parse_webhook_url(url: str) -> tuple:
    """(id, token) of a Discord webhook URL, or SettingError saying what is wrong. The token never
    reaches a message."""
    parts = urllib.parse.urlsplit(url.strip())
    match = _WEBHOOK_PATH.match(parts.path)
    loopback = parts.scheme in ('http', 'https') and parts.hostname in _LOOPBACK_HOSTS
    discord = parts.scheme == 'https' and parts.hostname in _DISCORD_HOSTS
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        match = None
    if not match or not (loopback or discord) or url.strip() != url.strip().strip('\'"'):
        raise SettingError(f'DISCORD_WEBHOOK_URL={mask_url(url.strip())}: {_webhook_problem(url)}; '
                           'accepts a Discord webhook URL, https://discord.com/api/webhooks/<id>/<token>')
    return match.group(2), match.group(3)


def redact_webhook(text: str) -> str:
    """Replace any webhook token in text with ***, keeping the webhook id for diagnosis."""
    return re.sub(r'(/webhooks/\d+/)[\w-]+', r'\1***', text)


class OptionSymbol(NamedTuple):
    """An option symbol's parts: BTC-27DEC26-100000-C is a BTC Call, strike 100000, expiring on
    27 Dec 2026, settled in USDC (a -USDT suffix: in USDT)."""
    base: str
    expiry: dt.date
    strike: str
    kind: str      # Call or Put
    settle: str

    def __str__(self) -> str:
        return f"{self.base} {self.kind} {self.strike}, expires {self.expiry.strftime('%d %b %Y')}"


def parse_option(symbol: str) -> OptionSymbol | None:
    """The parts of an option symbol, or None when symbol is not one."""
    match = _OPTION_SYMBOL.match(symbol or '')
    if not match:
        return None
    try:
        expiry = dt.datetime.strptime(match.group(2).title(), '%d%b%y').date()
    except ValueError:
        return None
    return OptionSymbol(match.group(1), expiry, match.group(3),
                        'Call' if match.group(4) == 'C' else 'Put', match.group(5) or 'USDC')


def split_symbol(symbol: str) -> tuple:
    """(base coin, quote coin) of a Bybit symbol: BTCUSDT, BTCPERP, BTCUSD, BTCUSDH25, BTC-26DEC25,
    and an option's (base coin, settle coin): BTC-27DEC26-100000-C."""
    option = parse_option(symbol)
    if option:
        return option.base, option.settle
    dated = _DATED_SYMBOL.match(symbol)
    if dated:
        return dated.group(1), dated.group(2) or 'USDC'
    if symbol.endswith('PERP'):
        return symbol[:-4], 'USDC'
    for quote in _SPOT_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[:-len(quote)], quote
    inverse = _INVERSE_SYMBOL.match(symbol)
    if inverse:
        return inverse.group(1), 'USD'
    return symbol, ''


def derive_category(symbol: str) -> str | None:
    """The category a symbol's name implies: ...USD inverse; ...USDT/...USDC/...PERP linear;
    BASE-DDMMMYY-STRIKE-C|P option. A spot symbol looks like a linear one: spot is never implied."""
    if parse_option(symbol):
        return 'option'
    if _INVERSE_SYMBOL.match(symbol):
        return 'inverse'
    if symbol.endswith(('USDT', 'USDC', 'PERP')) or _DATED_SYMBOL.match(symbol):
        return 'linear'
    return None


def settle_coin(category: str, symbol: str) -> str:
    """The coin that margins and PnL settle in: the base coin for inverse, else the quote coin."""
    base, quote = split_symbol(symbol)
    return base if category == 'inverse' else quote


class Units(NamedTuple):
    """What the numbers of a category mean: qty unit, and the coin of value, fee and PnL."""
    qty: str
    value: str


class Market(NamedTuple):
    """One candle symbol and its category."""
    category: str
    symbol: str

    def __str__(self) -> str:
        return f'{self.category}:{self.symbol}'


def units_for(category: str, symbol: str) -> Units:
    # Inverse qty is in USD contracts with fee/PnL in the coin; linear and spot qty is in the coin
    # with value in the quote (docs/v5/market/open-interest.mdx, /v5/position/list example); an
    # option's qty is in its base coin, its value in the settle coin (USDC, or USDT for -USDT).
    base, quote = split_symbol(symbol)
    if category == 'inverse':
        return Units(qty='USD', value=base)
    return Units(qty=base, value=quote or 'USDT')


def public_url_for(url: str, category: str, first: str = '') -> str:
    """A category's public stream URL from another one's, by replacing the last path segment
    (wss://stream.bybit.com/v5/public/linear -> .../v5/public/spot). A URL whose last segment
    names no category (a proxy's own path) is taken as written for `first`, the first symbol's."""
    parts = urllib.parse.urlsplit(url)
    if parts.path.rstrip('/').rpartition('/')[2] not in CATEGORIES and category == first:
        return url
    path = parts.path.rstrip('/').rpartition('/')[0] + '/' + category
    return urllib.parse.urlunsplit(parts._replace(path=path))


def default_urls(category: str, is_testnet: bool, demo: bool) -> tuple:
    """(public ws, private ws, rest) for an environment (docs/v5/websocket/wss-authentication.mdx)."""
    stream = 'stream-testnet.bybit.com' if is_testnet else 'stream.bybit.com'
    rest = 'api-testnet.bybit.com' if is_testnet else 'api.bybit.com'
    private_host = stream
    if demo:  # demo trading: private stream and REST on their own hosts; public data is mainnet's
        private_host, rest = 'stream-demo.bybit.com', 'api-demo.bybit.com'
    return (f'wss://{stream}/v5/public/{category}', f'wss://{private_host}/v5/private',
            f'https://{rest}')


def load_settings(env: Any = None) -> Settings:
    """Read, check and complete the settings. Raises SettingError naming the bad one."""
    raw = _raw_settings(os.environ if env is None else env)
    v = {row.field: row.parse(row.name, raw[row.name]) for row in _SPEC}

    markets = []
    for prefix, symbol in v['symbols']:
        category, implied = prefix or v['category'], derive_category(symbol)
        named = f'{prefix}:{symbol}' if prefix else symbol
        where = f'its prefix {prefix}' if prefix else f'BYBIT_CATEGORY={category!r}'
        if not category:
            if implied is None:
                raise SettingError(f'BYBIT_SYMBOL={named!r} does not imply a category: write it '
                                   f'spot:{symbol} (or linear:, inverse:), or set BYBIT_CATEGORY')
            category = implied
        elif (category == 'spot' and implied == 'inverse') or (
                category != 'spot' and implied != category):
            raise SettingError(f'BYBIT_SYMBOL={named!r} does not fit {where}: inverse symbols '
                               'end in USD, linear ones in USDT, USDC or PERP')
        if Market(category, symbol) not in markets:
            markets.append(Market(category, symbol))
    v['symbols'], v['category'] = tuple(markets), markets[0].category

    key, secret = v['api_key'], v['api_secret']
    if bool(key) != bool(secret):
        missing = 'BYBIT_API_SECRET' if key else 'BYBIT_API_KEY'
        raise SettingError(f'{missing} is empty: set both BYBIT_API_KEY and BYBIT_API_SECRET, '
                           'or neither for public-only alerts')
    if v['demo'] and v['is_testnet']:
        raise SettingError('BYBIT_DEMO and BYBIT_IS_TESTNET are both true: demo trading runs on '
                           'mainnet (docs/faq.mdx), set one of them')

    if v['discord_notify'] and not v['webhook_url']:
        raise SettingError('DISCORD_NOTIFY is true but DISCORD_WEBHOOK_URL is empty: set the '
                           'webhook URL, or DISCORD_NOTIFY=false to print alerts to the console')
    if v['webhook_url']:
        parse_webhook_url(v['webhook_url'])

    public, private, rest = default_urls(v['category'], v['is_testnet'], v['demo'])
    v['public_url'] = _check_url('BYBIT_WS_PUBLIC_URL', v['public_url'] or public, ('wss', 'ws'))
    v['public_urls'] = {market.category: public_url_for(v['public_url'], market.category,
                                                        v['category']) for market in markets}
    v['public_url'] = v['public_urls'][v['category']]
    v['private_url'] = _check_url('BYBIT_WS_PRIVATE_URL', v['private_url'] or private,
                                  ('wss', 'ws'))
    v['rest_url'] = _check_url('BYBIT_REST_URL', v['rest_url'] or rest, ('https', 'http')).rstrip('/')

    v['state_file'] = v['state_file'] or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'bybit_ws_notify.state.json')
    for name, path in (('STATE_FILE', v['state_file']), ('LOG_FILE', v['log_file'])):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise SettingError(f'{name}={path!r}: its folder does not exist')

    if v['watchdog_s'] <= v['ping_interval_s']:
        raise SettingError(f'WATCHDOG_S={v["watchdog_s"]:g}: accepts a number larger than '
                           f'PING_INTERVAL_S={v["ping_interval_s"]:g}')
    if not v['ohlcv_notify'] and not (key and any(v[f'{name}_notify'] for name in ACCOUNT_ALERTS)):
        raise SettingError('nothing to watch: BYBIT_OHLCV_NOTIFY is false and there are no '
                           'account alerts (they need BYBIT_API_KEY and a BYBIT_*_NOTIFY=true)')
    v['position_notify'] = v['position_notify'] and v['categories'] != ('spot',)
    return Settings(**v)


ACCOUNT_ALERTS = ('order', 'execution', 'position', 'wallet')


def setting_warnings(cfg: Settings) -> list:
    """Settings that are valid but probably not what the user meant: one line each."""
    warnings = []
    if cfg.webhook_url and not cfg.discord_notify:
        warnings.append('DISCORD_WEBHOOK_URL is set but DISCORD_NOTIFY is false: alerts go to the '
                        'console, not to Discord (set DISCORD_NOTIFY=true to post them)')
    return warnings


def shown_value(row: _Setting, value: Any) -> str:
    """A setting's value as --help shows it: secrets masked, the rest as typed."""
    text = str(value)
    if row.secret and text:
        if row.name == 'DISCORD_WEBHOOK_URL':
            return mask_url(text)
        # The key's first characters tell which key it is; of the secret nothing is shown.
        return f'{text[:4]}*** (set)' if row.name == 'BYBIT_API_KEY' else '*** (set)'
    return repr(text) if text == '' else text


_secrets: list = []


def register_secret(value: str) -> None:
    """Never let this string reach a log line, an alert or a traceback."""
    if value and len(value) >= 4 and value not in _secrets:
        _secrets.append(value)


def redact(text: str) -> str:
    """text with every registered secret and webhook token replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, '***')
    return redact_webhook(text)


class _RedactingFormatter(logging.Formatter):
    """Formats the whole record, traceback included, then redacts it: exceptions from requests and
    websocket-client quote URLs, and a URL can carry the webhook token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _silence_stream(stream: Any) -> None:
    """Point a dead stdout/stderr (a closed pipe or terminal) at /dev/null, so later writes and
    the interpreter's final flush cannot fail (docs.python.org, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class _StderrHandler(logging.StreamHandler):
    """A log handler that outlives its reader: when stderr is a closed pipe (the `| tee` of a
    tmux session killed by Ctrl-C) the log goes nowhere instead of raising in every thread."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            _silence_stream(self.stream)
            return
        super().handleError(record)


def setup_logging(level: str = 'INFO', log_file: str = '') -> None:
    """Logs to stderr and, with LOG_FILE, also to a rotating file that outlives the terminal."""
    formatter = _RedactingFormatter('%(asctime)s %(levelname)s %(message)s')
    handlers: list = [_StderrHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding='utf-8'))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    for noisy in ('urllib3', 'websocket', 'requests'):  # urllib3 DEBUG prints the webhook path
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def excepthook(args: threading.ExceptHookArgs) -> None:
        log.error('thread %s died', args.thread.name if args.thread else '?',
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
    threading.excepthook = excepthook
    sys.excepthook = lambda *exc: log.critical('uncaught exception', exc_info=exc)


class _LogThrottle:
    """At most one line per key per interval, so a storm of bad frames is a line a minute."""

    def __init__(self, interval_s: float = 60.0):
        self.interval_s = interval_s
        self._last: dict = {}
        self._suppressed: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, level: int, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] += 1
                return
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += f' ({skipped} more like this in the last {self.interval_s:.0f} s)'
        log.log(level, msg, *args)


log_throttled = _LogThrottle()


def now_ms() -> int:
    return int(time.time() * 1000)


def trim(value: Any, limit: int = 300) -> str:
    """A frame or value cut to a size fit for one log line."""
    text = value.decode('utf-8', 'replace') if isinstance(value, (bytes, bytearray)) else str(value)
    return text if len(text) <= limit else f'{text[:limit]}... ({len(text)} chars)'


def dec(value: Any) -> Decimal | None:
    """Bybit's decimal strings as Decimal; None for '', None and anything not a finite number."""
    if value is None or value == '' or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def fmt_num(value: Any, places: int | None = None) -> str:
    """A number as plain text without exponent or trailing zeros; '-' when missing."""
    number = value if isinstance(value, Decimal) else dec(value)
    if number is None:
        return '-'
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places))
    text = format(number, 'f')
    if '.' in text:
        text = text.rstrip('0').rstrip('.')
    return '0' if text in ('-0', '') else text


def fmt_time_ms(value: Any) -> str:
    """Epoch milliseconds as 'YYYY-MM-DD HH:MM:SS UTC'."""
    try:
        moment = dt.datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return '-'
    return moment.strftime('%Y-%m-%d %H:%M:%S UTC')


def iso_ms(value: Any) -> str | None:
    """Epoch milliseconds as ISO 8601 for an embed timestamp."""
    try:
        return dt.datetime.fromtimestamp(int(value) / 1000, tz=UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def escape_md(value: Any) -> str:
    """Free text (orderLinkId, Bybit error text) made inert for Discord markdown and mentions."""
    text = ''.join(ch for ch in str(value) if ch.isprintable() or ch == ' ')
    text = re.sub(r'([\\*_`~|>#\[\]()-])', r'\\\1', text)
    return re.sub(r'@(everyone|here|[!&]?\d)', '@\u200b\\1', text)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f'{seconds} s'
    if seconds < 7200:
        return f'{seconds // 60} min {seconds % 60} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60} min'


class BoundedSet:
    """A set that forgets its oldest members beyond maxlen; insertion order is kept."""

    def __init__(self, maxlen: int, items: Iterable = ()):
        self.maxlen = maxlen
        self._items: collections.OrderedDict = collections.OrderedDict()
        for item in items:
            self.add(item)

    def add(self, item: Any) -> bool:
        """Add item; False when it was already there."""
        if item in self._items:
            return False
        self._items[item] = None
        if len(self._items) > self.maxlen:
            self._items.popitem(last=False)
        return True

    def __contains__(self, item: Any) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list:
        return list(self._items)

# BybitWS ###########################################################################################

OPEN_ORDER_STATUSES = ('New', 'PartiallyFilled', 'Untriggered')
KEY_REJECTED_CODES = (10003, 10004, 10007, 10010, 33004, -2015)  # docs/v5/error.mdx
# Final for one category: "Permission denied" (a key without Options access, say) and "Request
# parameter error" (docs/v5/error.mdx). Retrying cannot help; the category is not read again.
CATEGORY_REFUSED_CODES = (10005, 10001)
BACKFILL_MARGIN_MS = 10_000
REST_WINDOW_MS = 7 * 86_400_000          # /v5/execution/list serves at most 7 days per query
EXEC_HISTORY_MS = 730 * 86_400_000       # ... and 2 years back ("Get Execution (2 years)")
CLOCK_RESYNC_S = 3600.0                  # re-measure the clock at a reconnect at most hourly
MAX_FRAME_BYTES = 8 * 1024 * 1024
_LEGACY_TOPICS = (  # the first version's inverse /realtime topics and their V5 names
    (re.compile(r'^trade\.(.+)$'), r'publicTrade.\1'),
    (re.compile(r'^instrument_info\.\w+\.(.+)$'), r'tickers.\1'),
    (re.compile(r'^orderBook_200\.\w+\.(.+)$'), r'orderbook.200.\1'),
    (re.compile(r'^orderBookL2_25\.(.+)$'), r'orderbook.50.\1'),
    (re.compile(r'^klineV2\.(\w+)\.(.+)$'), r'kline.\1.\2'),
)


# Bybit's order lifecycle (docs/v5/enum.mdx, orderStatus): a conditional order waits Untriggered and
# is Triggered; an order lives as New, then PartiallyFilled; every other status closes it for good.
ORDER_STAGES = {'Untriggered': 0, 'Triggered': 1, 'New': 2, 'PartiallyFilled': 3}
CLOSED_STAGE = len(ORDER_STAGES)


def _positive_int(value: Any) -> int | None:
    number = dec(value)
    return int(number) if number is not None and number > 0 else None


def update_version(kind: str, item: dict) -> list:
    """What "newer" means for an update, as [tag, time_ms]: an order's [orderStatus, updatedTime],
    a position's [seq, updatedTime], a wallet account's [None, creationTime]. Missing parts are
    None and are not compared."""
    if kind == 'order':
        return [item.get('orderStatus'), _positive_int(item.get('updatedTime'))]
    if kind == 'position':
        return [_positive_int(item.get('seq')), _positive_int(item.get('updatedTime'))]
    return [None, _positive_int(item.get('updatedTime') or item.get('creationTime'))]


def is_older(kind: str, known: list, version: list) -> bool:
    """True when an update (its version) is older than the version already known."""
    tag, time_ms = version
    known_tag, known_ms = known
    if kind == 'order':
        stage = ORDER_STAGES.get(tag, CLOSED_STAGE)
        known_stage = ORDER_STAGES.get(known_tag, CLOSED_STAGE)
        if stage < known_stage or (stage == known_stage == CLOSED_STAGE and tag != known_tag):
            return True  # a status already passed, or a second way of closing: never applied
        if stage != known_stage:
            return False
    elif kind == 'position' and tag and known_tag:
        return tag < known_tag  # seq is the cross sequence of the symbol (position.mdx)
    return bool(time_ms and known_ms and time_ms < known_ms)


class LatestKnown:
    """The newest version known of each order, position or wallet account, for the most recent
    `maxlen` keys. Bybit's FAQ (docs/faq.mdx, "How can I ensure I am using up-to-date data?") warns
    that REST and, rarely, the websocket push old data, and a REST resync can be read before a live
    update arrives: an update older than what is known is neither applied nor alerted. BybitWS's
    local state and Notifier each keep one, so the rule lives here only."""

    def __init__(self, kind: str, maxlen: int, known: Any = None):
        self.kind, self.maxlen = kind, maxlen
        self._known: collections.OrderedDict = collections.OrderedDict()
        for key, version in (known.items() if isinstance(known, dict) else ()):
            if isinstance(version, str):  # a state file of 2.0.0 kept the order status only
                version = [version, None]
            if isinstance(version, list) and len(version) == 2:
                self._known[str(key)] = version
        while len(self._known) > maxlen:
            self._known.popitem(last=False)

    def get(self, key: str) -> list | None:
        return self._known.get(key)

    def offer(self, key: str, item: dict) -> bool:
        """Record item's version under key unless it is older than the known one; False if so."""
        version = update_version(self.kind, item)
        known = self._known.get(key)
        if known is not None:
            if is_older(self.kind, known, version):
                return False
            version = [version[0] if version[0] is not None else known[0],
                       version[1] if version[1] is not None else known[1]]
        self._known[key] = version
        self._known.move_to_end(key)
        if len(self._known) > self.maxlen:
            self._known.popitem(last=False)
        return True

    def items(self) -> dict:
        return {key: list(version) for key, version in self._known.items()}


class Event(NamedTuple):
    """One thing that happened, on its way from a stream or a REST read to the callbacks and the
    alert policy: its kind (order, execution, position, wallet, kline, trade, ticker, orderbook),
    the category and symbol it belongs to (a wallet belongs to neither: the Unified wallet is
    shared), the topic it came on, Bybit's items as sent, and its source: live (the stream),
    recovered (a REST read after a disconnect) or baseline (a REST read at a first start). For
    orders, `before` holds the status each one had before it (None: an order not seen before)."""
    kind: str
    category: str
    symbol: str
    topic: str
    items: list
    source: str = 'live'
    before: tuple = ()


ORDER_MEMORY, EXEC_MEMORY, POSITION_MEMORY = 2000, 5000, 500
OPEN_ORDER_MEMORY, CANDLE_MEMORY, COIN_MEMORY = 2000, 2000, 200
MAX_GAPS = 20
STATE_VERSION = 2
KEY_FIELDS = ('orderId', 'orderLinkId', 'symbol', 'category', 'side', 'orderType', 'orderStatus',
              'price', 'qty', 'cumExecQty', 'triggerPrice', 'stopOrderType', 'updatedTime')


def position_key(category: str, position: dict) -> str:
    return f"{category}:{position.get('symbol')}:{int(dec(position.get('positionIdx')) or 0)}"


def _bounded(mapping: dict, limit: int) -> dict:
    while len(mapping) > limit:
        del mapping[next(iter(mapping))]
    return mapping


class AccountJournal:
    """Everything the bot knows of the account, in one place under one lock: the fills seen (by
    execId) and the newest fill time, the fill windows still owed a REST recovery, each order's
    and position's newest version (LatestKnown: older updates are refused), the open orders and
    positions, and what the alert policy last told the trader (positions, balances per coin, the
    last closed candle per symbol and period). BybitWS writes what arrives; the alert policy reads
    it and records what it alerted; the state thread saves it. Every part is bounded."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Held from an account item's arrival until the alert policy has it (queued, or grouped
        # and so left out of a save): a state save never catches an item seen but not yet alerted.
        # Its order: batch, then the policy's lock, then `lock`.
        self.batch = threading.RLock()
        self.categories: tuple = ()            # the account categories the last run watched
        self.exec_ids = BoundedSet(EXEC_MEMORY)
        self.exec_times: dict = {}             # execId -> execTime, for the state file's cut
        self.exec_watermark_ms: int | None = None  # execTime of the newest fill seen
        # Recovery windows per category, [start_ms, end_ms] on Bybit's clock, fixed when the
        # private stream went down (end None until it is back); each is dropped only once read.
        self.gaps: dict = {}
        self.orders = LatestKnown('order', ORDER_MEMORY)
        self.open_orders: dict = {}            # orderId -> its last update, while open
        self.positions = LatestKnown('position', POSITION_MEMORY)
        self.open_positions: dict = {}         # position_key of each one with a size
        self.wallets = LatestKnown('wallet', 20)
        self.position_views: dict = {}         # position_key -> the view last alerted
        self.balances: dict = {}               # coin -> walletBalance last alerted
        self.wallet_complete = False           # balances hold a whole wallet read over REST
        self.candles: dict = {}                # 'category:symbol:interval' -> start alerted
        self.key_expiry_alerted = ''

    # -- what arrives --------------------------------------------------------------------------

    def ingest(self, kind: str, items: list, *, category: str = '', source: str = 'live',
               topic: str = '') -> list:
        """Events for the items not seen before and not older than what is known, one per
        (category, symbol). category: the category of REST rows (Bybit's rows carry none: it is
        the query's) and of public frames (the stream's)."""
        before: list = []
        if category and kind != 'wallet':  # the query's category, before anything is stored
            for item in items:
                if not item.get('category'):
                    item['category'] = category
        with self.lock:
            if kind == 'execution':
                fresh = [fill for fill in items if self._new_fill(fill)]
            elif kind in ('order', 'position', 'wallet'):
                fresh = [item for item in items if self._newer(kind, item, category, before)]
            else:
                fresh = items
        groups: dict = {}
        for index, item in enumerate(fresh):
            if kind == 'wallet':
                where = ('', '')
            else:
                where = (item.get('category') or category, str(item.get('symbol') or ''))
            group = groups.setdefault(where, ([], []))
            group[0].append(item)
            group[1].append(before[index] if before else None)
        return [Event(kind, cat, symbol, topic, group_items,
                      source, tuple(prior) if kind == 'order' else ())
                for (cat, symbol), (group_items, prior) in groups.items()]

    def _new_fill(self, fill: dict) -> bool:
        exec_ms = int(dec(fill.get('execTime')) or 0)  # parsed before the fill is marked seen
        exec_id = fill['execId']
        if exec_ms > self.exec_times.get(exec_id, exec_ms):
            self.exec_times[exec_id] = exec_ms  # a time only guessed at a load: now Bybit's
        if not self.exec_ids.add(exec_id):
            return False
        if exec_ms:  # an unreadable execTime: no time, so the state file keeps the id
            self.exec_times[exec_id] = exec_ms
            _bounded(self.exec_times, EXEC_MEMORY)
        if self.exec_watermark_ms is None or exec_ms > self.exec_watermark_ms:
            self.exec_watermark_ms = exec_ms
        return True

    def _newer(self, kind: str, item: dict, category: str, before: list) -> bool:
        if kind == 'order':
            key = item['orderId']
            known = self.orders.get(key)
            if not self.orders.offer(key, item):
                return False
            before.append(known[0] if known else None)
            if item.get('orderStatus') in OPEN_ORDER_STATUSES:
                self.open_orders.pop(key, None)
                self.open_orders[key] = item
                _bounded(self.open_orders, OPEN_ORDER_MEMORY)
            else:
                self.open_orders.pop(key, None)
            return True
        if kind == 'position':
            key = position_key(item.get('category') or category, item)
            if not self.positions.offer(key, item):
                return False
            before.append(None)
            self.open_positions.pop(key, None)  # per slot: a hedge-mode side of its own
            if dec(item.get('size')):
                self.open_positions[key] = None
                _bounded(self.open_positions, POSITION_MEMORY)
            return True
        before.append(None)
        return self.wallets.offer(str(item.get('accountType')), item)

    # -- recovery windows ----------------------------------------------------------------------

    def open_gap(self, categories: Iterable, margin_ms: int, start_ms: int | None = None) -> None:
        """The private stream is down (or not up yet): in each category, fills from the newest
        one seen on (less margin_ms), or from start_ms, are owed a backfill. Live fills later do
        not move it."""
        with self.lock:
            if self.exec_watermark_ms is None:
                return  # nothing seen yet: nothing to miss
            start = (self.exec_watermark_ms if start_ms is None else start_ms) - margin_ms
            for category in categories:
                gaps = self.gaps.get(category, [])
                if any(gap[1] is None for gap in gaps):
                    continue  # this outage's gap is open already
                # New lists, never edits: the REST worker may be reading an older gap now.
                if gaps and start <= gaps[-1][1]:  # no fill since the last unrecovered gap
                    gaps = gaps[:-1] + [[gaps[-1][0], None]]
                else:
                    gaps = gaps + [[start, None]]
                if len(gaps) > MAX_GAPS:  # failing for days: bounded, at the cost of re-reading
                    gaps = [[gaps[0][0], gaps[1][1]]] + gaps[2:]
                self.gaps[category] = gaps

    def close_gaps(self, end_ms: int) -> None:
        """The stream is back: from here fills arrive live, so each open gap ends at end_ms."""
        with self.lock:
            for gaps in self.gaps.values():
                for gap in gaps:
                    if gap[1] is None:
                        gap[1] = end_ms

    def closed_gaps(self, category: str) -> list:
        with self.lock:
            return [gap for gap in self.gaps.get(category, ()) if gap[1] is not None]

    def gap_read(self, category: str, gap: list, up_to_ms: int | None = None) -> None:
        """Part of a gap is read (up to up_to_ms), or all of it (None): a failure resumes after."""
        with self.lock:
            if up_to_ms is not None:
                gap[0] = up_to_ms + 1
            else:
                self.gaps[category] = [g for g in self.gaps.get(category, ()) if g is not gap]

    def clear_gaps(self) -> None:
        with self.lock:
            self.gaps.clear()

    def owed_fills(self) -> str:
        """The fill windows still owed, in words, for a log line; '' when none."""
        with self.lock:
            gaps = [gap for cat_gaps in self.gaps.values() for gap in cat_gaps]
            if not gaps:
                return ''
            start = min(gap[0] for gap in gaps)
            end = None if any(gap[1] is None for gap in gaps) else max(gap[1] for gap in gaps)
            cats = ', '.join(sorted(cat for cat, cat_gaps in self.gaps.items() if cat_gaps))
        return (f'fills {fmt_time_ms(start)} to {fmt_time_ms(end) if end else "now"} ({cats})')

    def unrecovered_since_ms(self) -> int | None:
        """The start of the oldest fill gap not yet backfilled (Bybit's clock), or None: a saved
        watermark must never pass it, or a restart would not recover it either."""
        with self.lock:
            return min((gap[0] for gaps in self.gaps.values() for gap in gaps), default=None)

    # -- the state file ------------------------------------------------------------------------

    def snapshot(self, pending_fills: Iterable = (), watermark_ms: int | None = None) -> dict:
        """The journal's part of the state file. pending_fills: fills received but not alerted
        yet (being grouped): they stay owed, so they are left out and the watermark kept before
        them. watermark_ms: where a later run starts when fills are not watched."""
        with self.lock:
            pending = list(pending_fills)
            skip = {fill['execId'] for fill in pending}
            watermark = self.exec_watermark_ms if watermark_ms is None else watermark_ms
            if watermark is not None:
                for fill in pending:
                    watermark = min(watermark, int(dec(fill.get('execTime')) or watermark) - 1)
                gap_ms = self.unrecovered_since_ms()
                if gap_ms is not None and watermark_ms is None:
                    watermark = min(watermark, gap_ms)
            # A restart reads fills back from the watermark less the margin: only the ids of
            # fills from then on can come again, so only they are saved (a small file, a quick
            # write before each alert), however many the memory holds for the live stream.
            cut = -math.inf if watermark is None else watermark - BACKFILL_MARGIN_MS
            times = self.exec_times
            ids = [[i, times[i]] if i in times else i for i in self.exec_ids.items()
                   if i not in skip and times.get(i, cut) >= cut]
            return {
                'fills': {'watermark_ms': watermark, 'ids': ids},  # [execId, execTime] or execId
                'orders': {'versions': self.orders.items(),
                           'open': {oid: {k: o[k] for k in KEY_FIELDS if k in o}
                                    for oid, o in self.open_orders.items()}},
                'positions': {'versions': self.positions.items(),
                              'open': list(self.open_positions),
                              'views': dict(self.position_views)},
                'wallet': {'versions': self.wallets.items(), 'balances': dict(self.balances),
                           'complete': self.wallet_complete},
                'candles': dict(self.candles),
                'key_expiry_alerted': self.key_expiry_alerted,
            }

    @classmethod
    def from_state(cls, state: dict | None, category: str = 'linear',
                   period: str = '1') -> AccountJournal:
        """A journal from a state file: this release's (version 2), or 2.0.0's and 2.1.0's
        (version 1, one category: `category`, and one candle period: `period`), without loss.
        Junk in a hand-edited file is skipped item by item."""
        journal = cls()
        state = state if isinstance(state, dict) else {}
        if state.get('version') == 1:
            state = _state_from_v1(state, category, period)
        fills, orders = _part(state, 'fills'), _part(state, 'orders')
        positions, wallet = _part(state, 'positions'), _part(state, 'wallet')
        watermark = fills.get('watermark_ms')
        journal.exec_watermark_ms = watermark if isinstance(watermark, int) and watermark > 0 \
            else None
        for entry in _state_get(fills, 'ids', list, []):
            exec_id, exec_ms = (entry, journal.exec_watermark_ms) if isinstance(entry, str) else \
                (entry + [None, None])[:2] if isinstance(entry, list) else (None, None)
            if isinstance(exec_id, str) and journal.exec_ids.add(exec_id) and \
                    isinstance(exec_ms, int) and exec_ms > 0:
                # 2.0.0 and 2.1.0 saved no times: the watermark's, until Bybit sends it again
                journal.exec_times[exec_id] = exec_ms
        journal.orders = LatestKnown('order', ORDER_MEMORY, _part(orders, 'versions'))
        journal.open_orders = _bounded({oid: o for oid, o in _part(orders, 'open').items()
                                        if isinstance(o, dict)}, OPEN_ORDER_MEMORY)
        journal.positions = LatestKnown('position', POSITION_MEMORY, _part(positions, 'versions'))
        for key in _state_get(positions, 'open', list, []):
            if isinstance(key, str) and key.count(':') == 2:
                journal.open_positions[key] = None
        _bounded(journal.open_positions, POSITION_MEMORY)
        journal.position_views = _bounded(
            {key: view for key, view in _part(positions, 'views').items()
             if isinstance(view, dict) and POSITION_KEYS <= view.keys()}, POSITION_MEMORY)
        journal.wallets = LatestKnown('wallet', 20, _part(wallet, 'versions'))
        journal.balances = _bounded({coin: text for coin, text in _part(wallet, 'balances').items()
                                     if isinstance(text, str)}, COIN_MEMORY)
        journal.wallet_complete = wallet.get('complete') is True
        journal.candles = _bounded({key: start for key, start in _part(state, 'candles').items()
                                    if isinstance(start, int)}, CANDLE_MEMORY)
        journal.key_expiry_alerted = _state_get(state, 'key_expiry_alerted', str, '')
        journal.categories = tuple(c for c in CATEGORIES
                                   if c in _state_get(state, 'categories', list, []))
        return journal


def _part(state: dict, key: str) -> dict:
    return _state_get(state, key, dict, {})


def _state_get(state: dict, key: str, kind: type, default: Any) -> Any:
    value = state.get(key, default)
    return value if isinstance(value, kind) else default


def _state_from_v1(state: dict, category: str, period: str) -> dict:
    """A state file of 2.0.0 or 2.1.0 in this release's shape. It knew one symbol (its 'symbol')
    of one category, one candle period, positions keyed 'SYMBOL:idx' and the settle coin's
    balance with its version under the coin's name."""
    versions = _part(state, 'versions')
    positions = {f'{category}:{key}': view for key, view in _part(state, 'positions').items()}
    wallet_versions = [v for v in _part(versions, 'wallet').values()
                       if isinstance(v, list) and len(v) == 2]
    newest = max(wallet_versions, key=lambda v: v[1] or 0, default=None)
    last_start = _state_get(state, 'kline_last_start', int, 0)
    symbol = _state_get(state, 'symbol', str, '')
    return {
        'fills': {'watermark_ms': state.get('exec_watermark_ms'),
                  'ids': _state_get(state, 'exec_ids', list, [])},
        'orders': {'versions': _part(state, 'orders'), 'open': _part(state, 'open_orders')},
        'positions': {
            'versions': {f'{category}:{key}': v for key, v in _part(versions, 'position').items()},
            'open': [key for key, view in positions.items()
                     if isinstance(view, dict) and view.get('size') not in (None, '0')],
            'views': positions},
        'wallet': {'versions': {'UNIFIED': newest} if newest else {},
                   'balances': _part(state, 'wallet')},
        'candles': {f'{category}:{symbol}:{period}': last_start} if symbol and last_start else {},
        'key_expiry_alerted': state.get('key_expiry_alerted', ''),
        'categories': [category],  # it watched the account events of its symbol's category only
    }


class BybitError(Exception):
    """A REST call that failed: Bybit's retCode (or an HTTP/network cause) and its message."""

    def __init__(self, code: Any, message: str, path: str = ''):
        self.code, self.message, self.path = code, message, path
        super().__init__(f'{path}: {code} {message}' if path else f'{code} {message}')

    @property
    def key_rejected(self) -> bool:
        return self.code in KEY_REJECTED_CODES

    @property
    def category_refused(self) -> bool:
        return self.code in CATEGORY_REFUSED_CODES


class _Signer:
    """The API key, its secret and Bybit's clock as measured: it signs REST requests and the
    private stream's auth, so both use the one clock correction (docs/v5/guide.mdx,
    "Authentication"; docs/v5/websocket/wss-authentication.mdx)."""

    def __init__(self, api_key: str = '', api_secret: str = '', clock_offset_ms: int = 0):
        self.api_key = api_key or ''
        self._secret = (api_secret or '').encode()
        register_secret(api_secret or '')
        self.clock_offset_ms = clock_offset_ms
        self.measured_at: float | None = None  # time.monotonic() of the last measurement

    def now_ms(self) -> int:
        """Bybit's clock: every signature, REST time window and first watermark uses it."""
        return now_ms() + self.clock_offset_ms

    def rest_headers(self, query: str, recv_window_ms: int) -> dict:
        stamp, window = str(self.now_ms()), str(recv_window_ms)
        payload = (stamp + self.api_key + window + query).encode()
        return {'X-BAPI-API-KEY': self.api_key, 'X-BAPI-TIMESTAMP': stamp,
                'X-BAPI-RECV-WINDOW': window, 'X-BAPI-SIGN-TYPE': '2',
                'X-BAPI-SIGN': hmac.new(self._secret, payload, hashlib.sha256).hexdigest()}

    def ws_auth(self) -> dict:
        """The private stream's auth request; it expires 10 s ahead (+1 s fails under lag)."""
        expires = self.now_ms() + 10_000
        signature = hmac.new(self._secret, f'GET/realtime{expires}'.encode(),
                             hashlib.sha256).hexdigest()
        return {'req_id': 'auth', 'op': 'auth', 'args': [self.api_key, expires, signature]}


class _Backoff:
    """Capped exponential backoff: base, 2 x base, 4 x base ... up to cap, each wait scaled by a
    random factor from `jitter` (low, high) so that many clients do not retry in step; None: exact.
    One helper for reconnects, REST recovery retries, Discord retries and Discord IP bans."""

    def __init__(self, base_s: float, cap_s: float, jitter: tuple | None = (0.5, 1.0)):
        self.base_s, self.cap_s, self.jitter = base_s, cap_s, jitter
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return delay * random.uniform(*self.jitter) if self.jitter else delay

    def reset(self) -> None:
        self.attempt = 0


def tls_verify() -> str | bool:
    """What requests verifies TLS against: the bundle REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE)
    names, else its default (True). A named file that is missing would make every https call
    fail with an OSError outside requests' own errors: one warning, and the default bundle of
    requests (certifi) is named instead, so TLS is still verified."""
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        path = os.environ.get(name)
        if not path:
            continue
        if os.path.exists(path):
            return path
        log_throttled(logging.WARNING, f'ca-{name}', '%s=%s: no such file or folder; TLS is '
                      'verified against the default CA bundle of requests instead', name,
                      trim(path, 200))
        return requests.certs.where()
    return True


class BybitRest:
    """Signed GET requests to Bybit's V5 REST API (docs/v5/guide.mdx, "Authentication").

    Only GET exists here: the bot reads the account and never changes it. It corrects for clock
    skew (measured from /v5/market/time, and again when Bybit answers 10002), waits out the 10006
    rate limit, and after an HTTP 403 sends nothing for 10 minutes, as Bybit asks. close() makes
    every later call, and any rate-limit wait in progress, end at once.
    """

    ip_ban_s = 600.0  # "403, access too frequent": stop and wait at least 10 min (rate-limit.mdx)

    def __init__(self, base_url: str, api_key: str = '', api_secret: str = '',
                 recv_window_ms: int = 5000, timeout: tuple = (5, 10), *,
                 signer: _Signer | None = None):
        # (connect, read) seconds, as requests takes them
        self.base_url = base_url.rstrip('/')
        self.signer = signer or _Signer(api_key, api_secret)
        self.recv_window_ms = recv_window_ms
        self.timeout = timeout
        self.blocked_until = 0.0                      # time.monotonic() until which 403 holds us
        self.closed = threading.Event()
        # requests does not promise that one Session may serve threads at once: each call takes
        # an idle one (the last used, its connection still open) or makes one, and gives it back.
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._verify = tls_verify()  # TLS is always verified

    def server_now_ms(self) -> int:
        """Bybit's clock as measured: every REST time window and the first watermark use it."""
        return self.signer.now_ms()

    @property
    def clock_offset_ms(self) -> int:
        return self.signer.clock_offset_ms

    @property
    def clock_measured_at(self) -> float | None:
        return self.signer.measured_at

    def close(self) -> None:
        """Stop: calls not yet sent raise BybitError('stopped'); a rate-limit wait ends now."""
        self.closed.set()

    def get(self, path: str, params: dict | None = None, *, signed: bool = True) -> dict:
        """GET path and return its `result`; raises BybitError on any failure."""
        # The query is signed exactly as sent. Values are passed as Bybit gives them (the cursor
        # arrives already percent-encoded), as the official SDK does.
        query = '&'.join(f'{k}={v}' for k, v in (params or {}).items() if v not in (None, ''))
        url = f'{self.base_url}{path}' + (f'?{query}' if query else '')
        clock_fixed = False
        for attempt in range(5):
            if self.closed.is_set():
                raise BybitError('stopped', 'the bot is stopping', path)
            blocked_s = self.blocked_until - time.monotonic()
            if blocked_s > 0:
                raise BybitError(403, f'not sent: HTTP 403 pause, {duration(blocked_s)} left', path)
            headers = self.signer.rest_headers(query, self.recv_window_ms) if signed else {}
            started = time.monotonic()
            session = self._session()
            try:
                # verify given per call: requests lets the environment override the session's
                resp = session.get(url, headers=headers, timeout=self.timeout,
                                   verify=session.verify)
            except requests.RequestException as exc:
                raise BybitError('network', network_error(exc, self.base_url, self.timeout),
                                 path) from None
            finally:
                self._idle.put(session)
            log.debug('REST GET %s%s: HTTP %d in %.2f s', path, f'?{trim(query, 200)}' if query
                      else '', resp.status_code, time.monotonic() - started)
            if resp.status_code == 403:
                self.blocked_until = time.monotonic() + self.ip_ban_s
                raise BybitError(403, 'HTTP 403: too many requests from this IP or a restricted '
                                 f'region; pausing REST for {duration(self.ip_ban_s)}', path)
            if resp.status_code != 200:
                raise BybitError(resp.status_code, f'HTTP {resp.status_code}'
                                 f'{body_hint(resp.text)}', path)
            try:
                body = resp.json()
                code = body.get('retCode')
            except (ValueError, AttributeError):
                raise BybitError('http', f'not a JSON envelope{body_hint(resp.text)}',
                                 path) from None
            if code == 0:
                return body.get('result') or {}
            if code == 10002 and signed and not clock_fixed:
                clock_fixed = True
                self.sync_clock()
                continue
            if code == 10006 and attempt < 4:
                reset = dec(resp.headers.get('X-Bapi-Limit-Reset-Timestamp'))
                wait_s = min(max((float(reset) - self.server_now_ms()) / 1000 if reset else 1.0,
                                 0.2), 10.0)
                log_throttled(logging.WARNING, 'rest-10006',
                              'Bybit REST rate limit (10006 Too many visits) on %s: waiting %.1f s',
                              path, wait_s)
                self.closed.wait(wait_s)
                continue
            raise BybitError(code, trim(str(body.get('retMsg', '')), 200), path)
        raise BybitError(10006, 'still rate limited after 5 tries', path)

    def _session(self) -> requests.Session:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            session = requests.Session()
            session.verify = self._verify
            session.headers['User-Agent'] = f'bybit-ws-notify/{__version__}'
            return session

    def get_many(self, calls: list) -> list:
        """Several reads at once, each (function, *args) with this client first; their results in
        order, or the first error raised. Bybit's read endpoints allow 50 requests a second per
        UID each and 600 per 5 s per IP (docs/v5/rate-limit/rate-limit.mdx): a start-up's
        handful at once is far inside both."""
        results: list = [None] * len(calls)
        errors: list = []

        def run(index: int, fn: Callable, *args: Any) -> None:
            try:
                results[index] = fn(self, *args)
            except BaseException as exc:  # noqa: BLE001 (raised again in the caller's thread)
                errors.append((index, exc))

        threads = [threading.Thread(target=run, args=(i, *call), name=f'rest-{i}', daemon=True)
                   for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise min(errors, key=lambda error: error[0])[1]
        return results

    def get_all(self, path: str, params: dict, *, limit: int, max_pages: int = 50) -> list:
        """Every row of a paged list endpoint, following nextPageCursor."""
        rows: list = []
        cursor = ''
        for _ in range(max_pages):
            page = self.get(path, {**params, 'limit': limit, 'cursor': cursor})
            rows.extend(page.get('list') or [])
            cursor = page.get('nextPageCursor') or ''
            if not cursor:
                return rows
        log.warning('%s: stopped after %d pages of %d rows', path, max_pages, limit)
        return rows

    def sync_clock(self) -> int:
        """Measure this machine's clock against GET /v5/market/time and sign with the offset."""
        sent = now_ms()
        result = self.get('/v5/market/time', signed=False)
        received = now_ms()
        server_ms = int(result.get('timeNano') or 0) // 1_000_000 or int(result['timeSecond']) * 1000
        self.signer.clock_offset_ms = server_ms - (sent + received) // 2
        self.signer.measured_at = time.monotonic()
        # Below a second the offset is noise (and within Bybit's recv_window); above, say so.
        level = logging.WARNING if abs(self.clock_offset_ms) >= 1000 else logging.DEBUG
        log.log(level, 'clock skew: this machine is %d ms %s Bybit; signing with that correction '
                '(keep NTP running)', abs(self.clock_offset_ms),
                'behind' if self.clock_offset_ms > 0 else 'ahead of')
        return self.clock_offset_ms


def network_error(exc: BaseException, url: str, timeout: tuple = ()) -> str:
    """A failed connection in a few words that name the host and say what failed (DNS, TCP,
    TLS, timeout), for one log line; requests nests the cause deep inside a long message."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    port = parts.port or {'https': 443, 'wss': 443, 'http': 80, 'ws': 80}.get(parts.scheme, '')
    where = f'{host}:{port}' if port else host
    text = redact(str(exc))
    errno_text = re.findall(r'\[Errno -?\d+\] ([^)"\'\]]+)', text)
    cause = trim(errno_text[-1].strip() if errno_text else text, 120)
    kind = type(exc).__name__
    chain = (exc, exc.__cause__, exc.__context__)
    if any(isinstance(e, socket.gaierror) for e in chain) or 'AddressException' in kind or \
            'resolve' in text or 'NameResolution' in text:
        return f'cannot resolve {host} (DNS: {cause})'
    if isinstance(exc, requests.exceptions.SSLError) or 'SSL' in kind or 'CERTIFICATE' in text:
        reason = re.search(r'(CERTIFICATE_VERIFY_FAILED[^)"\']*|certificate verify failed[^)"\']*)',
                           text)
        return f'TLS with {where} failed ({kind}: {trim(reason.group(1) if reason else cause, 120)})'
    if isinstance(exc, requests.exceptions.ConnectTimeout) or 'connect timeout' in text:
        return f'{where} did not accept a connection within {timeout[0] if timeout else "?"} s'
    if isinstance(exc, (requests.exceptions.ReadTimeout, socket.timeout)) or 'timed out' in text:
        return f'{where} did not answer within {timeout[-1] if timeout else "?"} s'
    if isinstance(exc, (ConnectionRefusedError, requests.exceptions.ConnectionError, OSError)):
        return f'cannot connect to {where} ({cause})'
    return f'{where}: {kind}: {cause}'


def body_hint(text: str, limit: int = 120) -> str:
    """': <the readable part of an error body>', or '' : an HTML error page is reduced to its
    title or its words, so a cut line keeps what it says rather than its markup."""
    title = re.search(r'<title[^>]*>(.*?)</title>', text or '', re.IGNORECASE | re.DOTALL)
    words = title.group(1) if title else re.sub(r'<[^>]+>', ' ', text or '')
    words = ' '.join(redact(words).split())
    return f': {trim(words, limit)}' if words else ''


class _Stream:
    """One websocket connection, the private one or the public one of a category, and the state
    that belongs to it."""

    def __init__(self, kind: str, url: str, topics: list, category: str = ''):
        self.kind, self.url, self.topics, self.category = kind, url, list(topics), category
        self.name = kind if kind == 'private' else f'public {category}'
        self.ws: websocket.WebSocket | None = None
        self.reader: _FrameReader | None = None  # the connection's fast reader, if it has one
        self.last_recv = self.last_ping = self.opened_at = 0.0
        self.authed = self.ready = False
        self.pending: collections.OrderedDict = collections.OrderedDict()  # req_id -> topics
        self.req_seq = 0
        self.ever_up = False
        self.down_since: float | None = time.monotonic()
        self.down_wall_ms = now_ms()
        self.down_reported = False
        self.auth_rejected = False
        self.clock_checked = False
        self.backoff = _Backoff(1.0, 60.0)
        self.routes: dict = {}        # topic -> handler, learned on first sight
        self.books: dict = {}         # orderbook topic -> the _Book it keeps
        self.last_candle: dict = {}   # kline topic -> start of the newest confirmed candle

    def status(self, event: str, **extra: Any) -> dict:
        return {'event': event, 'stream': self.kind, 'category': self.category, **extra}


class _Book:
    """One order book, best levels first, with the sort keys that keep it in order."""
    __slots__ = ('ask_keys', 'asks', 'bid_keys', 'bids', 'ready')

    def __init__(self) -> None:
        self.bid_keys: list = []
        self.ask_keys: list = []
        self.bids: list = []
        self.asks: list = []
        self.ready = False


def parse_markets(entries: Iterable, category: str | None = None) -> list:
    """Market(category, symbol) of 'BTCUSDT', 'spot:ETHUSDT' or ('spot', 'ETHUSDT') entries; a
    symbol without a category gets `category`, else the one its name implies, else linear."""
    markets: list = []
    for entry in entries:
        if isinstance(entry, (tuple, list)):
            cat, symbol = entry
        else:
            cat, _, symbol = str(entry).rpartition(':')
        symbol = str(symbol).strip().upper()
        cat = (cat or category or derive_category(symbol) or 'linear').strip().lower()
        if Market(cat, symbol) not in markets:
            markets.append(Market(cat, symbol))
    return markets


def settle_params(category: str) -> list:
    """The extra query that lists a category's open orders or positions: linear needs symbol,
    baseCoin or settleCoin (docs/v5/order/open-order.mdx, docs/v5/position/position.mdx), so it
    is asked once per settle coin; inverse, spot and option orders, and inverse and option
    positions, are listed by category alone (option: "baseCoin ... For option only")."""
    if category == 'linear':
        return [{'settleCoin': coin} for coin in ('USDT', 'USDC')]
    return [{}]


def list_open_positions(rest: BybitRest, category: str, extras: list | None = None) -> list:
    """Every open position of a category (GET /v5/position/list; without a symbol it lists only
    positions with a size), or of the settle_params `extras` given. REST calls the entry price
    avgPrice, the websocket entryPrice."""
    rows: list = []
    for extra in settle_params(category) if extras is None else extras:
        rows += rest.get_all('/v5/position/list', {'category': category, **extra}, limit=200,
                             max_pages=10)
    for row in rows:
        row.setdefault('entryPrice', row.get('avgPrice', ''))
    return rows


def account_topics(categories: Iterable,
                   names: Iterable = ('order', 'execution', 'position', 'wallet')) -> list:
    """The private topics of the account categories: the all-in-one topics (order) for all four,
    the categorised ones (order.linear) for a subset, which Bybit then filters for us
    (docs/v5/websocket/private/order.mdx); position has no spot, wallet no category."""
    categories = [c for c in CATEGORIES if c in categories]
    topics: list = []
    for name in names:
        if name == 'wallet' or categories == list(CATEGORIES):
            topics.append(name)
        else:
            topics += [f'{name}.{c}' for c in categories if name != 'position' or c != 'spot']
    return topics


SUBSCRIBE_CHUNK = 10  # args per subscribe request: spot's limit (docs/v5/ws/connect.mdx, Args limits)
PUBLIC_ARGS_CHARS = 21_000  # ... and the args of one public connection, in characters
# The first version's callback names for each kind of event
LEGACY_CALLBACKS = {'trade': 'trade', 'ticker': 'instrument', 'orderbook': 'orderbook',
                    'kline': 'ohlcv', 'order': 'order', 'execution': 'execution',
                    'position': 'position', 'wallet': 'wallet'}


def translate_topic(topic: str) -> str:
    """A V5 topic name for a first-version topic name, with a warning; V5 names pass unchanged."""
    for pattern, replacement in _LEGACY_TOPICS:
        if pattern.match(topic):
            new = pattern.sub(replacement, topic)
            log.warning('topic %r is from the retired inverse /realtime API; using %r', topic, new)
            return new
    return topic


def is_private_topic(topic: str) -> bool:
    return topic.split('.', 1)[0] in PRIVATE_TOPICS


def _parse_levels(levels: Any, sign: float) -> list:
    """Order-book levels [[price, size], ...] as (sort key, price, size); ValueError if malformed."""
    parsed = []
    for level in levels:
        if type(level) is not list or len(level) != 2:
            raise ValueError(f'order-book level {trim(level, 60)} is not [price, size]')
        price, size = float(level[0]), float(level[1])
        if not (0.0 < price < math.inf and 0.0 <= size < math.inf):
            raise ValueError(f'order-book level {trim(level, 60)} is out of range')
        parsed.append((sign * price, price, size))
    return parsed


def _items(data: Any, key: str, topic: str) -> list:
    """The dicts of a frame's data list that carry `key`; the others are logged and left out, so
    one malformed item does not cost the good ones their alert."""
    if type(data) is not list:
        raise ValueError(f'{topic}: data is not a list')
    good = [item for item in data if type(item) is dict and
            isinstance(item.get(key), (str, int)) and item[key] != '']
    if len(good) < len(data):
        log_throttled(logging.WARNING, f'items-{topic}', '%s: ignored %d item(s) without %s: %s',
                      trim(topic, 40), len(data) - len(good), key, trim(json.dumps(data), 200))
    return good


def _apply_levels(keys: list, levels: list, updates: list) -> None:
    # V5 delta rules (docs/v5/websocket/public/orderbook.mdx): size 0 deletes the level, an unknown
    # price inserts it, a known one is updated. keys stay sorted, so levels stay best-first.
    for key, price, size in updates:
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            if size == 0.0:
                del keys[i]
                del levels[i]
            else:
                levels[i] = (price, size)
        elif size != 0.0:
            keys.insert(i, key)
            levels.insert(i, (price, size))


class _AlertsFirst:
    """One process has one GIL, and an alert on its way outranks market data.

    A public stream's fast reader that serves frames from its buffer holds the GIL between its
    yields, and every thread on the alert path (private stream, policy, state file, Discord
    sender) waits for it at each handoff. make_way() opens a short window in which the public
    fast readers sleep until it ends, after the frame in hand: the alert path then runs as on an
    idle machine, and the market data waits in the socket (nothing is lost). The window opens
    when a private frame arrives, when a public reader sees one waiting in the private socket
    at its yield (before the private thread has the GIL to read it), and at each Discord post.
    A public stream still reads a frame per window at least, whatever the private traffic.
    Off (window_s 0) unless set: the script sets it; BybitWS alone stays tuned for throughput.
    tests/bench.py, latency, 2026-12-01, alert p99 under a kline flood: 4.3-5.6 ms when the
    readers only paused 50 us a frame in the window and did not look at the private socket,
    3.3-3.8 ms as here; with three public streams flooded 6.7-7.5 and 3.9-4.6 ms. The msgs/s
    read stayed within the run-to-run spread."""

    window_s = 0.0
    until = 0.0  # time.perf_counter() until which the public readers step aside
    private: ClassVar[list] = []  # the private streams' sockets, which public readers look at
    _poll: Any = None             # a select.poll of them, where the system has poll
    _watch_lock = threading.Lock()

    @classmethod
    def make_way(cls) -> None:
        if cls.window_s:
            cls.until = time.perf_counter() + cls.window_s

    @classmethod
    def watch(cls, sock: Any, on: bool) -> None:
        """A private socket to look at (on) or not any more. A frame waiting in it is seen by a
        public reader at its next yield, before the private thread has the GIL to read it.
        Closed sockets are dropped on the way."""
        if not cls.window_s or not isinstance(sock, socket.socket):
            return
        with cls._watch_lock:
            socks = [s for s in cls.private if s is not sock and s.fileno() >= 0]
            socks += [sock] if on and sock.fileno() >= 0 else []
            poller = select.poll() if hasattr(select, 'poll') else None
            for s in socks if poller is not None else ():
                poller.register(s, select.POLLIN)
            cls.private, cls._poll = socks, poller

    @classmethod
    def check(cls) -> None:
        """At a public reader's yield: open the window if a private frame is waiting."""
        try:
            if cls._poll is not None:  # poll: no limit on the descriptor's number
                waiting = any(event & select.POLLIN for _, event in cls._poll.poll(0))
            else:
                waiting = bool(select.select(cls.private, (), (), 0)[0])
        except (OSError, ValueError, RuntimeError):  # closed meanwhile; another reader polling
            return
        if waiting:
            cls.make_way()


def readable(sock: socket.socket) -> bool | None:
    """Whether a socket has something to read (data or its end) right now; None if it is
    closed. poll where the system has it: select takes descriptors below 1024 only."""
    try:
        if hasattr(select, 'poll'):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select((sock,), (), (), 0)[0])
    except (OSError, ValueError):
        return None


class _FrameReader:
    """Reads the frames of a connected websocket-client socket in large chunks.

    websocket-client reads each frame with several small socket reads (header, length, payload):
    on a busy public stream that is the largest cost of the receive thread (tests/bench.py,
    profile). This reader takes what the socket holds, up to chunk_bytes a read, and cuts the
    frames out of it itself. Only the common frame, a final unmasked text or binary frame, is
    handled here alone. Every other frame (ping, pong, close, fragments, masked frames, reserved
    bits, unknown opcodes) becomes websocket-client's own ABNF and goes through its validation,
    continuation and ping/close handling, so both readers return the same frames and raise the
    same errors (tests/test_frames.py compares them on random streams). No compression is ever
    negotiated, so a frame with RSV bits is refused by websocket-client's check, as before.

    It uses websocket-client's public surface only: ws.sock, websocket.recv, ABNF, ws.cont_frame,
    ws.pong, ws.send_close. The connection must have been made with skip_utf8_validation=True (as
    BybitWS does): then neither reader checks UTF-8. An unexpected error inside the reader turns
    it off for the rest of the process; that connection is reconnected, and every later one reads
    with websocket-client's recv_data.
    """

    chunk_bytes = 65_536              # below malloc's mmap threshold: cheap to allocate each read
    max_frame_bytes = 64 * 1024 * 1024  # a declared length beyond this is refused, not allocated
    # How long the thread may serve frames from its buffer before it lets go of the GIL once
    # (time.sleep(0)). A reader that never waits on the socket keeps the GIL for whole switch
    # intervals (5 ms), and each thread of the alert path waits for it: alert p99 ~200 ms under a
    # flood without this yield (tests/bench.py, latency). Shorter favours other threads, longer
    # the messages a second (1 ms: 1.3x FLOOR; 0.3 ms: alert p99 7 ms under a flood).
    yield_s = 0.001
    # A busy public stream, once subscribed, may be read at most every gather_s: when its socket
    # is empty, the reader sleeps out the rest of gather_s since its last read, so the frames
    # that arrive meanwhile are taken with one wake-up (set by BybitWS.public_gather_s).
    gather_s = 0.0
    disabled = False

    def __init__(self, ws: websocket.WebSocket, yield_s: float | None = None,
                 steps_aside: bool = False):
        self._ws = ws
        self._steps_aside = steps_aside  # a public stream's: _AlertsFirst
        if yield_s is not None:
            self.yield_s = yield_s
        self._sock = ws.sock
        self._buf = b''
        self._pos = 0
        self._fragmented = False       # a fragmented message is being assembled
        self._held_since = time.perf_counter()  # when the thread last let go of the GIL
        self._read_at = -math.inf      # when the socket was last read
        self._taken = 0                # bytes read since _counted_since (for _gather)
        self._counted_since = time.perf_counter()
        self.stop: threading.Event | None = None  # ends a gather's sleep (BybitWS.close)

    @classmethod
    def for_connection(cls, ws: websocket.WebSocket, yield_s: float | None = None,
                       steps_aside: bool = False) -> Callable[[], tuple]:
        """The fastest recv_data for this connection: this reader's, or websocket-client's."""
        if cls.disabled or not isinstance(ws.sock, socket.socket) or \
                not hasattr(ws, 'cont_frame'):
            return ws.recv_data
        return cls(ws, yield_s, steps_aside).recv_data

    def recv_data(self) -> tuple:
        """(opcode, payload) of the next data or close frame, as ws.recv_data() returns it."""
        try:
            while True:
                buf, pos = self._buf, self._pos
                avail = len(buf) - pos
                if avail >= 2:
                    b0, b1 = buf[pos], buf[pos + 1]
                    if b1 < 126:  # unmasked, length in the first byte
                        start, length, mask = pos + 2, b1, None
                    elif b1 == 126 and avail >= 4:
                        start, length, mask = pos + 4, buf[pos + 2] << 8 | buf[pos + 3], None
                    else:
                        start, length, mask = self._header(buf, pos, avail)
                    if not start:  # the header is not all here: length is its size
                        self._more(pos + length)
                        continue
                    stop = start + length
                    if stop <= len(buf):
                        self._pos = stop
                        now = time.perf_counter()
                        if now - self._held_since > self.yield_s:
                            self._held_since = now
                            if self._steps_aside and _AlertsFirst.private:
                                _AlertsFirst.check()  # a private frame waiting?
                            time.sleep(0)  # let the alert path's threads have the GIL
                        if now < _AlertsFirst.until and self._steps_aside:
                            time.sleep(_AlertsFirst.until - now)  # an alert is on its way
                            self._held_since = time.perf_counter()
                        if (b0 == 0x81 or b0 == 0x82) and mask is None and not self._fragmented:
                            return b0 & 0x0F, buf[start:stop]
                        result = self._other(b0, buf[start:stop], mask)
                        if result is not None:
                            return result
                        continue
                    self._more(stop)
                else:
                    self._more(pos + 2)
        except (websocket.WebSocketException, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 (a bug here must not cost more than a reconnect)
            _FrameReader.disabled = True
            log.error('websocket frame reader failed (%s: %s): using websocket-client\'s own '
                      'reader from now on', type(exc).__name__, trim(exc, 120))
            raise websocket.WebSocketProtocolException(f'frame reader: {exc}') from None

    def _header(self, buf: bytes, pos: int, avail: int) -> tuple:
        """(payload start, length, mask key) of a frame with a 64-bit length or a mask, or
        (0, header size, None) when the header is not all here yet."""
        b1 = buf[pos + 1]
        size = b1 & 0x7F
        head = 2 + (2 if size == 126 else 8 if size == 127 else 0) + (4 if b1 & 0x80 else 0)
        if avail < head:
            return 0, head, None
        if size == 126:
            size = int.from_bytes(buf[pos + 2:pos + 4], 'big')
        elif size == 127:
            size = int.from_bytes(buf[pos + 2:pos + 10], 'big')
        if size > self.max_frame_bytes:
            raise websocket.WebSocketProtocolException(f'frame of {size} bytes is too large')
        mask = buf[pos + head - 4:pos + head] if b1 & 0x80 else None
        return pos + head, size, mask

    def _more(self, need: int) -> None:
        """Read until the buffer holds `need` bytes (counted from its start, the read position
        being the start of the next frame). Drops what was read before."""
        parts = [self._buf[self._pos:]]
        need -= self._pos
        have = len(parts[0])
        while have < need:
            if self.gather_s:
                self._gather()
            chunk = websocket.recv(self._sock, self.chunk_bytes)
            # a socket read lets go of the GIL anyway
            self._held_since = self._read_at = time.perf_counter()
            self._taken += len(chunk)
            parts.append(chunk)
            have += len(chunk)
        self._buf, self._pos = b''.join(parts), 0

    def _gather(self) -> None:
        """Before a read: if the socket is empty and was read less than gather_s ago, sleep out
        the rest. A stream with data waiting is read at once, and a quiet one too (its last read
        is long past): only the wake-ups of a busy stream are merged, and its frames wait up to
        gather_s in the socket (nothing is lost). Not when what would come during the sleep, at
        the rate read since the last decision, might not fit in the socket's receive buffer:
        then the sender would be held back, so such a stream is read as it comes."""
        now = time.perf_counter()
        wait = self._read_at + self.gather_s - now
        if wait <= 0:
            return
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted, not yet taken
            return
        if readable(sock) is not False:  # data waiting; or closed, and the read says so
            return
        try:
            room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            return
        elapsed = now - self._counted_since
        rate = self._taken / elapsed if elapsed > 0 else math.inf
        self._taken, self._counted_since = 0, now
        if rate * self.gather_s >= room:
            return
        if self.stop is not None:
            self.stop.wait(wait)
        else:
            time.sleep(wait)

    def _other(self, b0: int, payload: bytes, mask: bytes | None) -> tuple | None:
        """Any frame but the common one, handled as websocket-client's recv_data_frame does."""
        abnf = websocket.ABNF
        frame = abnf(b0 >> 7 & 1, b0 >> 6 & 1, b0 >> 5 & 1, b0 >> 4 & 1, b0 & 0x0F,
                     1 if mask else 0, abnf.mask(mask, payload) if mask else payload)
        frame.validate(True)
        ws, opcode = self._ws, frame.opcode
        if opcode in (abnf.OPCODE_TEXT, abnf.OPCODE_BINARY, abnf.OPCODE_CONT):
            ws.cont_frame.validate(frame)
            ws.cont_frame.add(frame)
            self._fragmented = not frame.fin
            if ws.cont_frame.is_fire(frame):
                opcode, frame = ws.cont_frame.extract(frame)
                return opcode, frame.data
            return None
        if opcode == abnf.OPCODE_CLOSE:
            ws.send_close()
            return opcode, frame.data
        if opcode == abnf.OPCODE_PING:
            if len(frame.data) >= 126:
                raise websocket.WebSocketProtocolException('Ping message is too long')
            ws.pong(frame.data)
        return None


class BybitWS:
    """Bybit V5 websocket client for a whole account: the public stream of each category with
    market topics, and, with keys, the private stream that carries every category.

    `BybitWS(key, secret, is_testnet, symbol, channel, callback)` watches one symbol, as the first
    version did; `symbols=['BTCUSDT', 'spot:ETHUSDT', ...]` watches several, across categories.
    Each connection authenticates (private), subscribes in requests of at most 10 topics and
    checks every ack, sends {"op":"ping"} every ping_interval_s, and is reconnected with capped
    exponential backoff and jitter when it drops or stays silent for watchdog_s. After each
    private (re)connect the fills, orders and positions missed in each category, and the wallet,
    are read back over signed REST GETs. Account memory lives in one AccountJournal (`journal`),
    which refuses updates older than what it holds. `data` keeps the first version's keys for the
    first symbol; `get_orderbooks(symbol)` returns a copy of any symbol's book.

    Callbacks, keyed trade, instrument, orderbook, ohlcv, position, execution, order, wallet (and
    status for connection events), are called as fn(ws, data), and each item carries its
    category and symbol; `event` is called as fn(ws, Event) with the typed event. One that raises
    is logged, and the stream goes on.
    """

    auth_retry_s = 300.0
    ack_timeout_s = 15.0
    backoff_base_s, backoff_cap_s = 1.0, 60.0

    def __init__(self, api_key: str, api_secret: str, is_testnet: bool = False,
                 symbol: str = 'BTCUSD', channel: list = [], callback: dict = {}, *,  # noqa: B006
                 symbols: Iterable | None = None, categories: Iterable | None = None,
                 category: str | None = None, public_url: str | dict | None = None,
                 private_url: str | None = None, rest_url: str | None = None,
                 demo: bool = False, period: str = '1', ping_interval_s: float = 20.0,
                 watchdog_s: float = 45.0, down_alert_s: float = 60.0, autostart: bool = True,
                 fast_reader: bool = False, journal: AccountJournal | None = None):
        self.markets = parse_markets(symbols or [symbol], category)
        self.symbol, self.category = self.markets[0].symbol, self.markets[0].category
        self.categories = tuple(c for c in CATEGORIES if c in (categories or CATEGORIES))
        # fast_reader: read frames in large chunks (_FrameReader): more messages a second for
        # less CPU. It lets go of the GIL every reader_yield_s while it serves frames from its
        # buffer, so other threads (the alert path) are not starved (tests/bench.py). Off by
        # default for compatibility; the notifier turns it on, with a shorter yield.
        self.fast_reader = fast_reader
        self.reader_yield_s = _FrameReader.yield_s
        # With fast_reader, a subscribed public stream whose frames come often is read at most
        # every public_gather_s, so one wake-up takes all that came meanwhile; its frames then
        # wait up to that long. Off by default: the notifier sets it (tests/bench.py, account).
        self.public_gather_s = 0.0
        self.period = str(period)
        self.callback = dict(callback or {})
        # The kinds the `event` callback is given (None: every kind). The notifier takes only
        # account events and candles: tickers, trades and books are then not even built for it
        # (tests/bench.py, account: 11% of the script's CPU under 3,000 tickers a second).
        self.event_kinds: frozenset | None = None
        self.ping_interval_s, self.watchdog_s = ping_interval_s, watchdog_s
        self.down_alert_s = down_alert_s
        self.signer = _Signer(api_key, api_secret)
        self.journal = journal or AccountJournal()
        self._lock = self.journal.lock  # one lock for the account memory and `data`
        self._stop = threading.Event()
        self._book = _Book()                # the first symbol's, behind data['board_snapshot']
        self._books: dict = {}              # Market -> _Book
        self._data_suffix = f'.{self.symbol}'
        self.data: dict = {
            'connection': False,
            'last_price': 0,
            'timestamp': {},
            'ohlcv': collections.deque(maxlen=1000),
            'execution': collections.deque(maxlen=200),
            'instrument': {},
            'board_snapshot': {'asks': self._book.asks, 'bids': self._book.bids},
            'position': {},
            'my_execution': collections.deque(maxlen=50),
            'my_order': collections.deque(maxlen=50),
            'my_open_order': self.journal.open_orders,
            'wallet': {},
        }
        self._resync_due: set = set()        # (step, category) re-reads still owed
        self._refused: set = set()           # categories Bybit refuses to list for this key
        self._retry_pending = False
        self._recovery_backoff = _Backoff(5.0, 300.0, jitter=None)
        self._auth_event = threading.Event()
        self._auth_result: str | None = None
        self._tasks: queue.Queue = queue.Queue()
        self._threads: list = []
        self._handlers = {
            'orderbook': self._on_orderbook, 'publicTrade': self._on_trade,
            'tickers': self._on_ticker, 'kline': self._on_kline, 'order': self._on_order,
            'execution': self._on_execution, 'position': self._on_position,
            'wallet': self._on_wallet,
        }

        _, private, rest = default_urls(self.category, is_testnet, demo)
        self.rest = BybitRest(rest_url or rest, signer=self.signer)
        self._streams: list = []
        by_category: dict = {}
        private_topics = []
        for cat, topic in self._channels(channel):
            if cat:
                by_category.setdefault(cat, []).append(topic)
            else:
                private_topics.append(topic)
        for cat, topics in by_category.items():
            if isinstance(public_url, dict):
                url = public_url.get(cat) or default_urls(cat, is_testnet, demo)[0]
            elif public_url:
                url = public_url_for(public_url, cat, self.category)
            else:
                url = default_urls(cat, is_testnet, demo)[0]
            st = _Stream('public', url, topics, cat)
            self._keep_books(st)
            self._streams.append(st)
            if sum(len(t) for t in topics) > PUBLIC_ARGS_CHARS:
                log.warning('%s stream: its topics pass the 21,000 characters Bybit allows per '
                            'connection; some may be refused', st.name)
        if private_topics and self.signer.api_key:
            self._streams.append(_Stream('private', private_url or private, private_topics))
        elif private_topics:
            log.info('no API key: private topics %s are not subscribed', ', '.join(private_topics))
        if autostart:
            self.start()

    # -- public API ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the connections (each in its own thread) plus the heartbeat and REST worker."""
        targets = [(self._run_stream, (st,), f'bybit-{st.name.replace(" ", "-")}')
                   for st in self._streams]
        targets += [(self._heartbeat, (), 'bybit-heartbeat'), (self._work, (), 'bybit-rest')]
        for target, args, name in targets:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop every thread and close every connection, waiting at most timeout_s in all. A REST
        call in flight is abandoned (its thread is a daemon) rather than waited for."""
        self._stop.set()
        self.rest.close()
        self._tasks.put(None)
        for st in self._streams:
            self._abort(st.ws)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(deadline - time.monotonic(), 0.01))
        self.data['connection'] = False

    def get_orderbooks(self, symbol: str | None = None) -> dict:
        """A consistent copy of an order book, best levels first: {'bids': [...], 'asks': [...]}
        with each level a (price, size) pair. symbol: 'BTCUSDT' or 'spot:BTCUSDT'; None: the
        first symbol. A symbol without a book kept gives empty sides."""
        book = self._book
        if symbol is not None:
            market = parse_markets([symbol])[0]
            book = self._books.get(market) if ':' in str(symbol) else next(
                (b for m, b in self._books.items() if m.symbol == market.symbol), None)
        with self._lock:
            return {'bids': list(book.bids), 'asks': list(book.asks)} if book else \
                {'bids': [], 'asks': []}

    def open_orders(self) -> dict:
        """A copy of the open orders (data['my_open_order']), taken under the lock."""
        with self._lock:
            return dict(self.journal.open_orders)

    @property
    def topics(self) -> list:
        """Every topic subscribed (or being subscribed), public and private."""
        return [t for st in self._streams for t in st.topics]

    def unrecovered_since_ms(self) -> int | None:
        return self.journal.unrecovered_since_ms()

    def wait_authenticated(self, timeout: float) -> str | None:
        """'ok' or 'rejected' for the first private auth, None if no answer came in time."""
        self._auth_event.wait(timeout)
        return self._auth_result

    @property
    def watches_fills(self) -> bool:
        """True when a private stream carries executions: only then are fills owed a backfill."""
        return bool(self._covered('execution'))

    def seed(self, exec_watermark_ms: int | None = None, exec_ids: Iterable = (),
             open_orders: dict | None = None, position_symbols: Iterable = (),
             first_start: bool = False, new_categories: Iterable = ()) -> None:
        """Restore what a previous run knew (into the journal), so that the first connect
        backfills what it missed: every fill after the watermark (Bybit's clock) is recovered.
        On a first start the watermark is the start itself: a fill from before it is not news,
        so no margin; so it is for new_categories, which the last run did not watch. A journal
        loaded from the state file needs no arguments but these two."""
        journal = self.journal
        with self._lock:
            if exec_watermark_ms is not None:
                journal.exec_watermark_ms = exec_watermark_ms
            for exec_id in exec_ids:
                journal.exec_ids.add(exec_id)
            journal.ingest('order', list((open_orders or {}).values()))
            for symbol in position_symbols:
                journal.open_positions[position_key(self.category, {'symbol': symbol})] = None
            journal.gaps.clear()
            covered = self._covered('execution')
            new = [c for c in covered if c in new_categories]
            journal.open_gap([c for c in covered if c not in new],
                             0 if first_start else BACKFILL_MARGIN_MS)
            journal.open_gap(new, 0, start_ms=self.rest.server_now_ms())

    # -- connections ---------------------------------------------------------------------------

    def _channels(self, channel: list) -> list:
        """(category, topic) for each topic; '' for private ones. A public topic's category is
        its prefix (spot:kline.1.BTCUSDT), else that of the symbol it names."""
        if not channel:
            channel = [topic for m in self.markets for topic in self._default_topics(m)]
            channel += account_topics(self.categories, ('position', 'execution', 'order', 'wallet'))
        known = {m.symbol: m.category for m in reversed(self.markets)}
        topics: list = []
        for entry in channel:
            prefix, _, topic = str(entry).rpartition(':')
            topic = translate_topic(topic)
            if topic.startswith('dcp'):  # Disconnection Protect cancels all orders when we drop
                log.error('topic %r refused: a read-only notifier must never subscribe to dcp', topic)
                continue
            if is_private_topic(topic):
                pair = ('', topic)
            else:
                pair = (prefix.lower() or known.get(topic.rpartition('.')[2], self.category), topic)
            if pair not in topics:
                topics.append(pair)
        return topics

    def _default_topics(self, market: Market) -> list:
        """The first version's topics for a symbol: trades, ticker, the 200-level book, candles.
        An option has a 25- or 100-level book, no kline, and its trades by base coin
        (docs/v5/websocket/public/orderbook.mdx, trade.mdx)."""
        cat, symbol = market
        if cat == 'option':
            return [f'option:publicTrade.{split_symbol(symbol)[0]}', f'option:tickers.{symbol}',
                    f'option:orderbook.100.{symbol}']
        return [f'{cat}:{name}.{symbol}' for name in
                ('publicTrade', 'tickers', 'orderbook.200', f'kline.{self.period}')]

    def _keep_books(self, st: _Stream) -> None:
        """Each symbol's book follows its deepest depth: a depth-1 feed must not cut it."""
        depths: dict = {}
        for topic in st.topics:
            if topic.startswith('orderbook.'):
                symbol = topic.rpartition('.')[2]
                depth = int('0' + re.sub(r'\D', '', topic.split('.')[1]))
                if depth > depths.get(symbol, (0, ''))[0]:
                    depths[symbol] = (depth, topic)
        for symbol, (_, topic) in depths.items():
            market = Market(st.category, symbol)
            book = self._book if market == self.markets[0] else _Book()
            self._books[market] = st.books[topic] = book

    def _run_stream(self, st: _Stream) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            reason = 'closed'
            log.debug('%s stream: connecting to %s', st.name, st.url)
            try:
                ws = websocket.create_connection(
                    st.url, timeout=10, enable_multithread=True, skip_utf8_validation=True)
            except websocket.WebSocketBadStatusException as exc:
                text = str(exc).split(' -+-+- ')[0]  # a bad handshake status quotes every header
                reason = (f'connect failed: {urllib.parse.urlsplit(st.url).netloc} refused the '
                          f'websocket upgrade ({trim(redact(text), 150)})')
            except Exception as exc:  # noqa: BLE001 (DNS, refused, TLS verify, timeout)
                reason = f'connect failed: {network_error(exc, st.url, (10,))}'
            else:
                try:
                    # The heartbeat's watchdog aborts a silent connection; the socket timeout is
                    # the backstop, and also ends a send blocked on a dead peer.
                    ws.settimeout(self.watchdog_s + 5)
                    self._on_open(st, ws)
                    reason = self._recv_loop(st, ws)
                except websocket.WebSocketTimeoutException:
                    reason = f'nothing received for {self.watchdog_s + 5:.0f} s (no data, no pong)'
                except Exception as exc:  # noqa: BLE001 (any failure means: reconnect)
                    reason = f'{type(exc).__name__}: {trim(redact(str(exc)), 200)}'
                finally:
                    ws.shutdown()
            if self._stop.is_set():
                break
            if time.monotonic() - started > 60 and st.ever_up:
                st.backoff.reset()
            st.backoff.base_s, st.backoff.cap_s = self.backoff_base_s, self.backoff_cap_s
            delay = self.auth_retry_s if st.auth_rejected else st.backoff.next()
            self._on_down(st, reason, delay)
            self._stop.wait(delay)

    def _on_open(self, st: _Stream, ws: websocket.WebSocket) -> None:
        with self._lock:
            st.ws = ws
            st.last_recv = st.last_ping = st.opened_at = time.monotonic()
            st.authed = st.ready = False
            st.reader = None
            st.pending.clear()
        log.info('%s stream connected to %s', st.name, st.url)
        if st.kind == 'private':
            self._send(st, self.signer.ws_auth())
        else:
            self._subscribe(st, st.topics)

    def _recv_loop(self, st: _Stream, ws: websocket.WebSocket) -> str:
        private = st.kind == 'private'
        recv = _FrameReader.for_connection(ws, self.reader_yield_s, steps_aside=not private) \
            if self.fast_reader else ws.recv_data
        reader = getattr(recv, '__self__', None)
        st.reader = reader if isinstance(reader, _FrameReader) else None
        if st.ready:  # subscribed already (an ack timeout): gather from the start
            self._start_gathering(st)
        on_message = self._on_message
        clock = time.monotonic
        sock = ws.sock  # websocket-client sets ws.sock to None when it closes it
        if private:
            _AlertsFirst.watch(sock, True)
        try:
            while not self._stop.is_set():
                opcode, payload = recv()
                st.last_recv = clock()
                if private:
                    _AlertsFirst.make_way()  # an order, fill, position or balance goes first
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return 'the server closed the connection'
                on_message(st, payload)
            return 'closing'
        finally:
            if private:
                _AlertsFirst.watch(sock, False)

    def _on_down(self, st: _Stream, reason: str, retry_s: float) -> None:
        with self._lock:
            st.ws = None
            st.authed = st.ready = False
            if st.down_since is None:
                st.down_since, st.down_wall_ms = time.monotonic(), self.rest.server_now_ms()
            self.data['connection'] = False
            if st.kind == 'private':
                self.journal.open_gap(self._covered('execution'), BACKFILL_MARGIN_MS)
        if st.ever_up or not st.auth_rejected:
            log.warning('%s stream down (%s); reconnecting in %.1f s', st.name, reason, retry_s)
        self._emit_status(st.status('disconnected', reason=reason))

    def _on_ready(self, st: _Stream, recovered_fills: int | None = None,
                  complete: bool = True) -> None:
        with self._lock:
            down_since, reported = st.down_since, st.down_reported
            first = not st.ever_up
            st.ever_up, st.down_since, st.down_reported = True, None, False
            self.data['connection'] = all(s.ready for s in self._streams)
        log.info('%s stream ready: %s', st.name, ', '.join(st.topics) or 'no topics')
        # complete: False when part of the private recovery failed and is still owed (retried)
        self._emit_status(st.status('ready', first=first, complete=complete))
        if down_since is not None and (reported or not first):
            self._emit_status(st.status('restored', reported=reported,
                                        down_s=time.monotonic() - down_since,
                                        recovered_fills=recovered_fills))

    def _send(self, st: _Stream, message: dict) -> None:
        ws = st.ws
        if ws is None:
            return
        try:
            ws.send(json.dumps(message))
        except Exception as exc:  # noqa: BLE001 (a dead socket: reconnect)
            log.info('%s stream: send failed (%s); reconnecting', st.name, type(exc).__name__)
            self._abort(ws)

    @staticmethod
    def _abort(ws: websocket.WebSocket | None) -> None:
        if ws is not None:
            try:
                ws.abort()  # wakes the thread blocked in recv; it then reconnects
            except OSError as exc:
                log.debug('abort: %s', exc)

    def _subscribe(self, st: _Stream, topics: list, chunk: int = SUBSCRIBE_CHUNK) -> None:
        # At most 10 topics per request (spot's limit). A request Bybit refuses names one bad
        # topic; the others of that request are sent again one per request (a third-party report
        # in docs/bybit_v5.md §4 says one bad topic fails the whole request).
        sent = []
        with self._lock:
            for i in range(0, len(topics), chunk):
                st.req_seq += 1
                sent.append((f'{st.kind[:3]}{st.req_seq}', list(topics[i:i + chunk])))
            st.pending.update(sent)
            waiting = bool(st.pending)
        if not waiting:
            self._stream_ready(st)
        for req_id, args in sent:
            log.debug('%s stream: subscribing to %s (req_id %s)', st.name, ', '.join(args), req_id)
            self._send(st, {'req_id': req_id, 'op': 'subscribe', 'args': args})

    def _ack_timeout(self, st: _Stream) -> None:
        with self._lock:
            waiting = [t for args in st.pending.values() for t in args]
            st.pending.clear()
        if waiting:
            log.warning('%s stream: no subscribe ack for %s within %.0f s; carrying on', st.name,
                        ', '.join(waiting), self.ack_timeout_s)
            self._stream_ready(st)

    def _stream_ready(self, st: _Stream) -> None:
        with self._lock:  # a late ack and the ack timeout may both get here
            if st.ready:
                return
            st.ready = True
        if st.kind == 'private':
            # From here fills arrive live: each open gap's end is now fixed.
            self.journal.close_gaps(self.rest.server_now_ms() + BACKFILL_MARGIN_MS)
            with self._lock:
                self._resync_due.update(self._resync_steps())
            self._submit(lambda: self._recover_private(st))
        else:
            self._start_gathering(st)
            if st.ever_up:
                since_ms = st.down_wall_ms
                self._submit(lambda: self._backfill_klines(st, since_ms))
            self._on_ready(st)

    def _start_gathering(self, st: _Stream) -> None:
        """A public stream that is subscribed reads a busy socket at most every public_gather_s
        (_FrameReader._gather); not before, so every subscribe ack is read at once."""
        reader = st.reader
        if reader is not None and st.kind != 'private':
            reader.stop = self._stop  # close() does not wait for a sleeping reader
            reader.gather_s = self.public_gather_s

    def _heartbeat(self) -> None:
        tick = min(1.0, self.ping_interval_s / 4)
        while not self._stop.wait(tick):
            clock = time.monotonic()
            for st in self._streams:
                ws = st.ws
                if ws is not None:
                    silent_s = clock - st.last_recv
                    if silent_s > self.watchdog_s:
                        log.warning('%s stream: nothing received for %.0f s (no data, no pong); '
                                    'reconnecting', st.name, silent_s)
                        st.last_recv = clock
                        self._abort(ws)
                    elif clock - st.last_ping >= self.ping_interval_s:
                        st.last_ping = clock
                        self._send(st, {'op': 'ping'})
                    if st.pending and not st.ready and clock - st.opened_at > self.ack_timeout_s:
                        self._ack_timeout(st)
                if (st.down_since is not None and not st.down_reported and not st.auth_rejected
                        and clock - st.down_since >= self.down_alert_s):
                    st.down_reported = True
                    self._emit_status(st.status('down', down_s=clock - st.down_since))

    # -- worker: REST calls never run on a receive thread ------------------------------------

    def _submit(self, task: Callable[[], None], delay_s: float = 0.0) -> None:
        if delay_s:
            timer = threading.Timer(delay_s, self._tasks.put, (task,))
            timer.daemon = True
            timer.start()
        else:
            self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self._stop.is_set():
                return
            try:
                task()
            except Exception:
                log.exception('background task failed')

    # -- messages ------------------------------------------------------------------------------

    def _on_message(self, st: _Stream, raw: bytes) -> None:
        """Parse one frame and route it. Never raises: a bad frame is one throttled log line."""
        if len(raw) > MAX_FRAME_BYTES:
            log_throttled(logging.WARNING, 'huge', '%s stream: ignored a frame of %d bytes: %s',
                          st.name, len(raw), trim(raw, 120))
            return
        try:
            msg = json.loads(raw)
            topic = msg.get('topic')
            if topic is None:
                self._on_control(st, msg)
                return
            handler = st.routes.get(topic)
            if handler is None:
                handler = self._route(st, topic)
            handler(st, topic, msg)
        except Exception as exc:  # noqa: BLE001 (a bad frame must never stop the stream)
            log_throttled(logging.WARNING, f'bad-frame-{type(exc).__name__}',
                          '%s stream: ignored a malformed frame (%s: %s): %s', st.name,
                          type(exc).__name__, trim(exc, 120), trim(raw))

    def _route(self, st: _Stream, topic: str) -> Callable[[_Stream, str, dict], None]:
        handler = self._handlers.get(topic.split('.', 1)[0], self._on_other)
        if len(st.routes) < 1000:
            st.routes[topic] = handler
        return handler

    def _on_control(self, st: _Stream, msg: dict) -> None:
        op = msg.get('op')
        if op == 'pong' or msg.get('ret_msg') == 'pong':  # pong shapes differ by channel
            return
        if op == 'auth':
            self._on_auth(st, msg)
        elif op == 'subscribe' or msg.get('type') == 'COMMAND_RESP':
            self._on_subscribe_ack(st, msg)
        elif op != 'unsubscribe':
            log_throttled(logging.INFO, 'control', '%s stream: unexpected frame %s', st.name,
                          trim(json.dumps(msg)))

    def _on_auth(self, st: _Stream, msg: dict) -> None:
        # /v5/private answers {"success": bool, "ret_msg": ...}; failures are undocumented but
        # observed as "Params Error" when expires is late (docs/bybit_v5.md §2).
        if msg.get('success') is True:
            was_rejected = st.auth_rejected
            st.authed, st.auth_rejected, st.clock_checked = True, False, False
            self._auth_result = 'ok'
            self._auth_event.set()
            log.info('private stream authenticated')
            if was_rejected:
                self._emit_status({'event': 'auth_ok'})
            self._subscribe(st, st.topics)
            return
        reason = trim(msg.get('ret_msg') or 'no reason given', 200)
        if 'params error' in reason.lower() and not st.clock_checked:
            st.clock_checked = True
            log.warning('private auth rejected (%s): checking the clock against Bybit', reason)
            ws = st.ws
            self._submit(lambda: (self._sync_clock(), self._abort(ws)))
            return
        first = not st.auth_rejected
        st.auth_rejected = True
        self._auth_result = 'rejected'
        self._auth_event.set()
        if first:
            log.error('Bybit rejected the API key on the private stream (%s): check BYBIT_API_KEY '
                      'and BYBIT_API_SECRET, and that the key belongs to this environment '
                      '(mainnet, testnet or demo). Private alerts are paused; retrying every %d s',
                      reason, self.auth_retry_s)
            self._emit_status({'event': 'auth_rejected', 'reason': reason})
        self._abort(st.ws)

    def _sync_clock(self) -> None:
        try:
            self.rest.sync_clock()
        except BybitError as exc:
            log.warning('could not read Bybit server time: %s', exc)

    def _on_subscribe_ack(self, st: _Stream, msg: dict) -> None:
        # Ack shapes differ: linear/inverse/spot echo req_id with success and ret_msg; option
        # answers COMMAND_RESP with failTopics; the private ack carries no req_id (docs examples).
        reason = str(msg.get('ret_msg') or '')
        named = re.search(r'topic:(\S+)', reason)
        data = msg.get('data') if isinstance(msg.get('data'), dict) else {}
        reported = set(data.get('successTopics') or ()) | set(data.get('failTopics') or ())
        with self._lock:
            args = st.pending.pop(msg.get('req_id') or '', None)
            if args is None:  # no req_id: the request it names, else the oldest one
                for req_id, waiting in st.pending.items():
                    if (reported & set(waiting)) if reported else (
                            named is None or named.group(1) in waiting):
                        args = st.pending.pop(req_id)
                        break
            args = args or []
            failed = [t for t in data.get('failTopics') or () if t in st.topics]
            retry: list = []
            if msg.get('success') is False and not reported and \
                    'already subscribed' not in reason:
                bad = named.group(1) if named and named.group(1) in args else (
                    args[0] if len(args) == 1 else None)
                failed += [bad] if bad else []
                retry = [t for t in args if t != bad] if len(args) > 1 else []
            for topic in failed:
                if topic in st.topics:
                    st.topics.remove(topic)
        if args and not failed and not retry:
            log.debug('%s stream: subscribed to %s (%s)', st.name, ', '.join(args),
                      trim(reason, 80) or 'ack')
        for topic in failed:
            log.error('Bybit rejected the subscription to %s (%s): check BYBIT_SYMBOL and '
                      'BYBIT_CATEGORY; not retrying it', topic, trim(reason or 'failTopics', 200))
            self._emit_status(st.status('topic_rejected', topic=topic, reason=reason))
        if retry:  # the rest of a refused request, one topic per request
            log.info('%s stream: subscribing to %d topic(s) one by one after a refused request',
                     st.name, len(retry))
            self._subscribe(st, retry, chunk=1)
        elif not st.pending and not st.ready:
            self._stream_ready(st)

    def _call(self, name: str, payload: Any) -> None:
        fn = self.callback.get(name)
        if fn is None:
            return
        try:
            fn(self, payload)
        except Exception:
            log.exception('the %r callback raised; the stream and the other alerts go on', name)

    def _emit_status(self, event: dict) -> None:
        self._call('status', event)

    def _wanted(self, kind: str) -> bool:
        """Whether an event of this kind has a taker: its first-version callback, or `event`
        when event_kinds lets it through. Market events without one are not built at all."""
        callback = self.callback
        return LEGACY_CALLBACKS[kind] in callback or 'event' in callback and (
            self.event_kinds is None or kind in self.event_kinds)

    def _publish(self, event: Event, payload: Any) -> None:
        """Hand an event to its first-version callback (payload) and to `event` (the Event)."""
        self._call(LEGACY_CALLBACKS[event.kind], payload)
        if self.event_kinds is None or event.kind in self.event_kinds:
            self._call('event', event)

    def _on_other(self, st: _Stream, topic: str, msg: dict) -> None:
        name = topic.split('.', 1)[0]
        if name in self.callback:
            self._call(name, msg.get('data'))
        else:
            log_throttled(logging.INFO, f'topic-{name}', 'ignored a frame of unknown topic %r',
                          trim(topic, 80))

    def _on_orderbook(self, st: _Stream, topic: str, msg: dict) -> None:
        data = msg['data']
        kind = msg.get('type')
        bids = _parse_levels(data.get('b', ()), -1.0)  # negated: ascending keys = best bid first
        asks = _parse_levels(data.get('a', ()), 1.0)
        book = st.books.get(topic)
        if book is not None:
            with self._lock:
                if kind == 'snapshot' or data.get('u') == 1:  # u == 1: service restart, overwrite
                    for keys, levels, updates in ((book.bid_keys, book.bids, bids),
                                                  (book.ask_keys, book.asks, asks)):
                        fresh = {key: (price, size) for key, price, size in updates if size > 0}
                        keys[:] = sorted(fresh)
                        levels[:] = [fresh[key] for key in keys]
                    book.ready = True
                elif kind == 'delta':
                    if not book.ready:
                        raise ValueError('order-book delta before any snapshot')
                    _apply_levels(book.bid_keys, book.bids, bids)
                    _apply_levels(book.ask_keys, book.asks, asks)
                else:
                    raise ValueError(f'order-book type {trim(kind, 20)}')
                if book is self._book:
                    self.data['timestamp']['orderbook'] = msg.get('ts')
        if self._wanted('orderbook'):
            data['category'] = st.category
            self._publish(Event('orderbook', st.category, data.get('s') or '', topic, [data]),
                          data)

    def _on_trade(self, st: _Stream, topic: str, msg: dict) -> None:
        trades = _items(msg['data'], 'p', topic)
        last = float(trades[-1]['p']) if trades else None
        if last is not None and not 0 < last < math.inf:
            raise ValueError(f'trade price {trim(trades[-1]["p"], 40)}')
        if st.category == self.category and topic.endswith(self._data_suffix):
            with self._lock:
                self.data['execution'].extend(trades)
                if last is not None:
                    self.data['last_price'] = last
                self.data['timestamp']['trade'] = msg.get('ts')
        if self._wanted('trade'):
            for trade in trades:
                trade['category'] = st.category
            self._publish(Event('trade', st.category, topic.rpartition('.')[2], topic, trades),
                          trades)

    def _on_ticker(self, st: _Stream, topic: str, msg: dict) -> None:
        ticker = msg['data']
        if type(ticker) is not dict:
            raise ValueError(f'{topic}: data is not an object')
        last = float(ticker['lastPrice']) if ticker.get('lastPrice') else None
        if last is not None and not 0 < last < math.inf:
            raise ValueError(f'lastPrice {trim(ticker["lastPrice"], 40)}')
        if st.category == self.category and topic.endswith(self._data_suffix):
            with self._lock:  # parsed above: a bad frame leaves data untouched
                instrument = self.data['instrument']
                if msg.get('type') == 'snapshot':  # deltas carry only the fields that changed
                    instrument.clear()
                instrument.update(ticker)
                if last is not None:
                    self.data['last_price'] = last
                self.data['timestamp']['instrument'] = msg.get('ts')
        if self._wanted('ticker'):
            ticker['category'] = st.category
            self._publish(Event('ticker', st.category, topic.rpartition('.')[2], topic, [ticker]),
                          ticker)

    def _on_kline(self, st: _Stream, topic: str, msg: dict, source: str = 'live') -> None:
        symbol = topic.rpartition('.')[2]
        candles = []
        for candle in _items(msg['data'], 'start', topic):
            try:  # parse before anything is stored: a bad candle must not poison the next ones
                candles.append((int(candle['start']), candle))
            except (TypeError, ValueError):
                log_throttled(logging.WARNING, 'kline-start', '%s: ignored a candle with start=%r',
                              trim(topic, 40), trim(candle['start'], 40))
        with self._lock:
            ohlcv = self.data['ohlcv'] if st.category == self.category and \
                topic.endswith(self._data_suffix) else None
            for start, candle in candles:
                candle['symbol'], candle['category'] = symbol, st.category
                if candle.get('confirm') is True:
                    if start > st.last_candle.get(topic, 0):
                        st.last_candle[topic] = start
                    if ohlcv is not None and (not ohlcv or start > ohlcv[-1]['start']):
                        ohlcv.append(dict(candle, start=start))
            if ohlcv is not None:
                self.data['timestamp']['ohlcv'] = msg.get('ts')
        items = [candle for _, candle in candles]
        self._publish(Event('kline', st.category, symbol, topic, items, source), items)

    def _on_order(self, st: _Stream, topic: str, msg: dict) -> None:
        self._account('order', _items(msg['data'], 'orderId', topic), topic=topic)

    def _on_execution(self, st: _Stream, topic: str, msg: dict) -> None:
        self._account('execution', _items(msg['data'], 'execId', topic), topic=topic)

    def _on_position(self, st: _Stream, topic: str, msg: dict) -> None:
        self._account('position', _items(msg['data'], 'symbol', topic), topic=topic)

    def _on_wallet(self, st: _Stream, topic: str, msg: dict) -> None:
        accounts = _items(msg['data'], 'accountType', topic)
        for account in accounts:  # a wallet item has no time of its own; its message has
            if msg.get('creationTime') is not None:
                account.setdefault('creationTime', msg['creationTime'])
        self._account('wallet', accounts, topic=topic)

    def _account(self, kind: str, items: list, *, source: str = 'live', category: str = '',
                 topic: str = '') -> int:
        """Account items through the journal (repeats and stale updates stop there), into
        `data`, then to the callbacks, one Event per category and symbol. Returns how many
        items were new."""
        with self.journal.batch:
            return self._account_batch(kind, items, source, category, topic)

    def _account_batch(self, kind: str, items: list, source: str, category: str,
                       topic: str) -> int:
        events = self.journal.ingest(kind, items, category=category, source=source, topic=topic)
        with self._lock:
            for event in events:
                if kind == 'order':
                    self.data['my_order'].extend(event.items)
                elif kind == 'execution':
                    self.data['my_execution'].extend(event.items)
                elif kind == 'position' and (event.category, event.symbol) == self.markets[0]:
                    self.data['position'] = event.items[-1]
                elif kind == 'wallet':
                    self.data['wallet'] = event.items[-1]
            self.data['timestamp'][kind] = now_ms()
        fresh = sum(len(event.items) for event in events)
        if fresh < len(items):
            log.debug('ignored %d %s item(s) already known or older than the known state',
                      len(items) - fresh, kind)
        for event in events:
            self._publish(event, event.items)
        return fresh

    # -- recovery after a private (re)connect --------------------------------------------------

    def _covered(self, base: str) -> tuple:
        """The watched categories whose `base` events (order, execution, position) the private
        stream carries: all of them for the all-in-one topic, one for execution.linear."""
        covered: set = set()
        for st in self._streams:
            if st.kind != 'private':
                continue
            for topic in st.topics:
                name, _, rest = topic.partition('.')
                if name == base:
                    last = rest.rpartition('.')[2]
                    covered.update([last] if last in CATEGORIES else self.categories)
        return tuple(c for c in self.categories if c in covered and c not in self._refused)

    def _refuse(self, category: str, exc: BybitError) -> None:
        """Bybit refuses this category's reads for good: stop reading it (and owing it)."""
        with self._lock:
            self._refused.add(category)
            self.journal.gaps.pop(category, None)
            self._resync_due = {step for step in self._resync_due if step[1] != category}
        log.error('Bybit refuses to list %s orders or fills with this key (%s): its live alerts '
                  'go on, but what happens while disconnected is not recovered; give the key '
                  'read access to it, or leave it out of BYBIT_CATEGORIES', category, exc)
        self._emit_status({'event': 'category_refused', 'category': category,
                           'reason': str(exc)})

    def _resync_steps(self) -> set:
        steps = {('order', c) for c in self._covered('order')}
        steps |= {('position', c) for c in self._covered('position') if c != 'spot'}
        if any(t == 'wallet' for st in self._streams if st.kind == 'private' for t in st.topics):
            steps.add(('wallet', ''))
        return steps

    def _recover_private(self, st: _Stream, first: bool = True) -> None:
        """Backfill over REST what the private stream may have missed while it was down, in each
        category; what fails stays owed and is retried, the fill gaps from where they began."""
        # Bybit replays nothing after a disconnect (docs/faq.mdx): read fills, orders, positions
        # and the wallet back; the journal keeps only what it did not know.
        if not st.ready or self._stop.is_set():
            return  # the next ready recovers everything still owed
        if self.rest.clock_measured_at is None or \
                time.monotonic() - self.rest.clock_measured_at > CLOCK_RESYNC_S:
            self._sync_clock()
        recovered: int | None = None  # None: fills are not watched, so none to count
        failure: BybitError | None = None
        if self.watches_fills:
            try:
                recovered = self._backfill_executions(self._covered('execution'))
            except BybitError as exc:
                failure, recovered = exc, None
        else:
            self.journal.clear_gaps()
        steps = {'order': self._reconcile_orders, 'position': self._reread_positions,
                 'wallet': self._reread_wallet}
        with self._lock:
            self._resync_due &= self._resync_steps()
            due = sorted(self._resync_due, key=lambda s: (s[0], CATEGORIES.index(s[1])
                                                            if s[1] in CATEGORIES else -1))
        for name, category in due:
            if category in self._refused:
                continue
            try:
                steps[name](category)
                with self._lock:
                    self._resync_due.discard((name, category))
            except BybitError as exc:
                if exc.category_refused and category:
                    self._refuse(category, exc)
                else:
                    failure = failure or exc
        if failure is not None:
            self._recovery_failed(st, failure)
        else:
            self._recovery_backoff.reset()
        if first and st.ready:
            self._on_ready(st, recovered, complete=failure is None)
        elif failure is None:  # a retry made up for what the first recovery owed
            self._emit_status(st.status('resynced'))

    def _recovery_failed(self, st: _Stream, exc: BybitError) -> None:
        if exc.code == 'stopped':
            return
        if exc.code == 403:  # Bybit asks for 10 minutes of silence after a 403
            delay_s = max(self.rest.blocked_until - time.monotonic(), 1.0)
            self._recovery_backoff.next()
        else:
            delay_s = self._recovery_backoff.next()
        with self._lock:
            owed = [fills for fills in (self.journal.owed_fills(),) if fills]
            owed += sorted(f'{name} ({cat})' if cat else name for name, cat in self._resync_due)
            scheduled, self._retry_pending = self._retry_pending, True
        log.warning('recovery after the private reconnect failed (%s); still owed: %s; retrying '
                    'in %s', exc, ', '.join(owed) or 'nothing', duration(delay_s))
        if exc.key_rejected:
            self._emit_status({'event': 'auth_rejected', 'reason': str(exc)})
        if not scheduled:
            self._submit(lambda: self._retry_recovery(st), delay_s=delay_s)

    def _retry_recovery(self, st: _Stream) -> None:
        with self._lock:
            self._retry_pending = False
        self._recover_private(st, first=False)

    def _backfill_klines(self, st: _Stream, down_since_ms: int) -> None:
        """Candles that closed while the public stream was down, from GET /v5/market/kline."""
        for topic in list(st.topics):
            parts = topic.split('.')
            interval_ms = PERIOD_MS.get(parts[1]) if len(parts) == 3 else None
            if parts[0] != 'kline' or interval_ms is None:  # months vary in length: skipped
                continue
            with self._lock:
                last = st.last_candle.get(topic) or down_since_ms - interval_ms
            log.debug('backfill window: /v5/market/kline %s %s from %s', st.category, topic,
                      fmt_time_ms(last + 1))
            try:
                rows = self.rest.get('/v5/market/kline', {
                    'category': st.category, 'symbol': parts[2], 'interval': parts[1],
                    'start': last + 1, 'limit': 200}, signed=False).get('list') or []
            except BybitError as exc:
                log.warning('could not read the %s candles missed while disconnected: %s',
                            topic, exc)
                continue
            now = self.rest.server_now_ms()
            candles = [{'start': int(r[0]), 'end': int(r[0]) + interval_ms - 1,
                        'interval': parts[1], 'open': r[1], 'high': r[2], 'low': r[3],
                        'close': r[4], 'volume': r[5], 'turnover': r[6] if len(r) > 6 else '',
                        'confirm': True}
                       for r in rows if int(r[0]) > last and int(r[0]) + interval_ms <= now]
            candles.sort(key=lambda candle: candle['start'])
            if candles:
                log.info('recovered %d candle(s) of %s %s closed while disconnected',
                         len(candles), st.category, topic)
                self._on_kline(st, topic, {'data': candles}, source='recovered')

    def _backfill_executions(self, categories: Iterable) -> int:
        """Backfill every closed fill gap of each category, oldest first; a gap is dropped only
        once read whole. Raises BybitError (the first failure), leaving what was not read owed."""
        with self._lock:
            if self.journal.exec_watermark_ms is None:  # nothing seen: nothing was missed
                self.journal.exec_watermark_ms = self.rest.server_now_ms()
                return 0
        oldest = self.rest.server_now_ms() - EXEC_HISTORY_MS + 60_000
        with self._lock:
            lost = [gap for cat in categories for gap in self.journal.closed_gaps(cat)
                    if gap[0] < oldest]
            lost_from = min((gap[0] for gap in lost), default=None)
            for gap in lost:  # given up on once: the gap is cut, so this is never logged again
                gap[0] = oldest
            if lost:
                self.journal.exec_watermark_ms = max(self.journal.exec_watermark_ms, oldest)
        if lost:
            log.warning('fills from %s to %s cannot be recovered: Bybit keeps 2 years of fill '
                        'history (/v5/execution/list)', fmt_time_ms(lost_from),
                        fmt_time_ms(oldest))
        recovered, failure = 0, None
        for category in categories:
            try:
                for gap in self.journal.closed_gaps(category):
                    recovered += self._backfill_gap(category, gap)
                    self.journal.gap_read(category, gap)
            except BybitError as exc:
                if exc.category_refused:
                    self._refuse(category, exc)
                    continue
                failure = failure or exc
                if exc.code in (403, 'stopped'):
                    break
        if recovered:
            log.info('recovered %d fill(s) missed while disconnected', recovered)
        if failure is not None:
            raise failure
        return recovered

    def _backfill_gap(self, category: str, gap: list) -> int:
        recovered = 0
        end = min(gap[1], self.rest.server_now_ms())
        while gap[0] <= end:  # one query spans at most 7 days (docs/v5/order/execution.mdx)
            start, stop = gap[0], min(gap[0] + REST_WINDOW_MS - 1, end)
            log.debug('backfill window: /v5/execution/list %s %s to %s', category,
                      fmt_time_ms(start), fmt_time_ms(stop))
            rows = self.rest.get_all('/v5/execution/list', {
                'category': category, 'startTime': start, 'endTime': stop}, limit=100)
            rows = [row for row in rows if start <= int(dec(row.get('execTime')) or 0) <= stop]
            rows.sort(key=lambda row: int(dec(row.get('execTime')) or 0))  # oldest first
            recovered += self._account('execution', rows, source='recovered', category=category)
            self.journal.gap_read(category, gap, stop)  # this part is read: a failure resumes after
        return recovered

    def _reconcile_orders(self, category: str) -> None:
        open_now: dict = {}
        for extra in settle_params(category):
            for row in self.rest.get_all('/v5/order/realtime', {'category': category, **extra},
                                         limit=50, max_pages=20):
                open_now[row['orderId']] = row
        known = {oid: order for oid, order in self.open_orders().items()
                 if (order.get('category') or self.category) == category}
        changed = [row for order_id, row in open_now.items()
                   if known.get(order_id, {}).get('orderStatus') != row.get('orderStatus')]
        finals = []
        for order_id in [oid for oid in known if oid not in open_now][:50]:
            history = self.rest.get('/v5/order/history',
                                    {'category': category, 'orderId': order_id})
            rows = history.get('list') or []
            if rows:
                finals.append(rows[0])
            else:  # Cancelled/Rejected orders stay in the history for 24 h only
                log.info('%s order %s closed while disconnected; Bybit has no history for it',
                         category, order_id)
                with self._lock:
                    self.journal.open_orders.pop(order_id, None)
        if changed or finals:
            self._account('order', changed + finals, source='recovered', category=category)

    def _reread_positions(self, category: str) -> None:
        rows = list_open_positions(self.rest, category)
        listed = {position_key(category, row) for row in rows}
        with self._lock:
            gone = list(dict.fromkeys(
                key.split(':')[1] for key in self.journal.open_positions
                if key.startswith(f'{category}:') and key not in listed))
        for symbol in gone[:50]:  # open before, not listed now: closed while we were away
            try:
                found = self.rest.get('/v5/position/list',
                                      {'category': category, 'symbol': symbol}).get('list') or []
            except BybitError as exc:
                if not isinstance(exc.code, int) or exc.key_rejected or exc.code == 403:
                    raise
                found = []  # an expired option or delisted symbol: Bybit no longer knows it
            for row in found:
                row.setdefault('entryPrice', row.get('avgPrice', ''))
            rows += found
            if not found:
                log.info('%s position %s closed while disconnected; Bybit lists no position for '
                         'it any more', category, symbol)
                with self._lock:
                    for key in [k for k in self.journal.open_positions
                                if k.split(':')[:2] == [category, symbol]]:
                        del self.journal.open_positions[key]
        if rows:
            self._account('position', rows, source='recovered', category=category)

    def _reread_wallet(self, _category: str = '') -> None:
        # The balance is at least as new as the moment it was asked for: a live wallet message
        # created after that moment is newer (LatestKnown). Less 1 s, as far as a signed request
        # may run ahead of Bybit's clock (docs/v5/guide.mdx), so no newer message is dropped.
        asked_ms = self.rest.server_now_ms() - 1000
        result = self.rest.get('/v5/account/wallet-balance', {'accountType': 'UNIFIED'})
        accounts = result.get('list') or []
        for account in accounts:
            account.setdefault('creationTime', asked_ms)
        if accounts:
            self._account('wallet', accounts, source='recovered')

# Discord ###########################################################################################

# Discord's limits (developers/resources/message.mdx "Embed Limits"), with a margin on the total
# because Discord does not say whether it counts code points or UTF-16 units.
EMBEDS_PER_MESSAGE, MESSAGE_CHARS = 10, 5800
TITLE_CHARS, DESCRIPTION_CHARS, FIELDS_PER_EMBED = 256, 4096, 25
FIELD_NAME_CHARS, FIELD_VALUE_CHARS, FOOTER_CHARS, CONTENT_CHARS = 256, 1024, 2048, 2000
NO_MENTIONS = {'parse': []}  # never ping anyone, whatever an alert's text contains
COLOR = {'buy': 0x2ECC71, 'sell': 0xE74C3C, 'info': 0x3498DB, 'warn': 0xF39C12,
         'error': 0x992D22, 'muted': 0x95A5A6, 'trigger': 0x9B59B6}


def _cut(text: Any, limit: int) -> str:
    text = redact(str(text)).strip()
    return text if len(text) <= limit else text[:limit - 1] + '…'


def embed_size(embed: dict) -> int:
    """The characters Discord counts toward the 6000 per message."""
    size = len(embed.get('title', '')) + len(embed.get('description', ''))
    size += len((embed.get('footer') or {}).get('text', ''))
    size += len((embed.get('author') or {}).get('name', ''))
    return size + sum(len(f['name']) + len(f['value']) for f in embed.get('fields', ()))


def fit_embed(embed: dict) -> list:
    """One embed made to fit Discord's limits: text trimmed, empty values filled, and too many or
    too long fields split over continuation embeds. Never raises, never returns an empty embed."""
    head = {k: v for k, v in embed.items() if k not in ('title', 'description', 'fields', 'footer')}
    title = _cut(embed.get('title') or '', TITLE_CHARS) or 'bybit-ws-notify'
    head['title'] = title
    if isinstance(head.get('author'), dict) and head['author'].get('name'):
        head['author'] = dict(head['author'], name=_cut(head['author']['name'], TITLE_CHARS))
    footer = _cut((embed.get('footer') or {}).get('text') or '', FOOTER_CHARS)
    budget = MESSAGE_CHARS - 300 - len(footer)
    if embed.get('description'):
        head['description'] = _cut(embed['description'], min(DESCRIPTION_CHARS,
                                                               budget - embed_size(head)))
    fields = [{'name': _cut(f.get('name') or '-', FIELD_NAME_CHARS) or '-',
               'value': _cut(f.get('value') if f.get('value') not in (None, '') else '-',
                             FIELD_VALUE_CHARS) or '-',
               'inline': bool(f.get('inline', True))}
              for f in embed.get('fields') or () if isinstance(f, dict)]
    parts, current = [], dict(head, fields=[])
    for field in fields:
        if len(current['fields']) >= FIELDS_PER_EMBED or (
                embed_size(current) + len(field['name']) + len(field['value']) > budget):
            parts.append(current)
            current = {k: v for k, v in head.items() if k != 'description'}
            current.update(title=_cut(f'{title} (cont.)', TITLE_CHARS), fields=[])
        current['fields'].append(field)
    parts.append(current)
    if footer:
        parts[-1]['footer'] = {'text': footer}
    return parts


def embed_text(embed: dict) -> str:
    """An embed as plain text, for the console and for Discord's last-resort plain message."""
    lines = [embed.get('title', '')]
    if embed.get('description'):
        lines.append(embed['description'])
    lines += [f"  {f['name']}: {f['value']}".replace('\n', '\n    ') for f in embed.get('fields', ())]
    if (embed.get('footer') or {}).get('text'):
        lines.append(f"  ({embed['footer']['text']})")
    return '\n'.join(lines)


def event_time(embed: dict) -> dt.datetime:
    """The local time of the event an alert tells of (its embed timestamp), else now."""
    try:
        return dt.datetime.fromisoformat(str(embed['timestamp']).replace('Z', '+00:00')).astimezone()
    except (KeyError, ValueError):
        return dt.datetime.now().astimezone()


class ConsoleSender:
    """Prints alerts to stdout: DISCORD_NOTIFY off, for trying the bot with no webhook. Each alert
    carries the time of its event (a recovered fill is not "now"); the day is added when it was
    not today."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def send(self, embed: dict, note: str = '') -> None:
        moment = event_time(embed)
        stamp = f'{moment:%H:%M:%S}' if moment.date() == dt.date.today() else f'{moment:%Y-%m-%d %H:%M:%S}'
        with self._lock:
            for part in fit_embed(embed):
                text = re.sub(r'\\([\\*_`~|>#\[\]()-])', r'\1', embed_text(part))
                line = f'{stamp} {f"[{note}] " if note else ""}{text}'
                if not self._closed:
                    try:
                        print(line, flush=True)
                        continue
                    except (OSError, ValueError) as exc:  # the pipe's reader is gone
                        self._closed = True
                        _silence_stream(sys.stdout)
                        log.error('stdout is closed (%s): alerts go to this log from now on',
                                  type(exc).__name__)
                log.warning('alert: %s', line.replace('\n', ' | '))

    def start(self) -> None:
        pass

    def stop(self, timeout_s: float = 0) -> bool:
        return True

    def pending(self) -> list:
        return []

    def pending_state(self) -> tuple:
        return [], 0

    def mark_persisted(self, state: dict | None) -> None:
        pass


class Answer(NamedTuple):
    """An HTTP answer, as much of it as the Discord sender reads."""
    status_code: int
    headers: Any   # case-insensitive .get(), and iterable over the names
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class WebhookPoster:
    """POSTs JSON to one URL over one kept-alive connection, with http.client.

    requests costs twice the CPU per post (tests/bench.py, account, 2026-12-01: the Discord
    thread used 1.6-1.7 % of a core with requests, 0.7-0.8 % with this, at 10 posts a second)
    and 0.5 ms more to the alert latency p50. What requests did here is done once, at start:
    the proxy the environment names for this URL (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY,
    read with requests' own rules) and the CA bundle (tls_verify(): requests' default, certifi,
    unless REQUESTS_CA_BUNDLE names one). TLS is always verified, host name included, TLS 1.2 at
    least. An http:// proxy is used as requests uses it: CONNECT for an https URL, the whole URL
    for an http one, Basic credentials from the proxy URL; any other proxy (https://, socks)
    goes through requests as before.

    post() raises OSError on any failure before an answer; its str() names it in a word or two
    (ConnectTimeout, ReadTimeout, ConnectionRefusedError, SSLCertVerificationError, ProxyError
    407, ...). Nothing is retried here: the sender decides, and a POST is not repeated behind
    its back. A connection idle for idle_s is replaced before a post: a NAT or firewall may
    have dropped it without a word, and a post would then wait out the read timeout."""

    idle_s = 60.0

    def __init__(self, url: str, timeout: tuple, headers: dict):
        self.timeout = timeout  # (connect, read) in seconds
        target = urllib.parse.urlsplit(url)
        self._headers = {'Content-Type': 'application/json', **headers}
        # As requests sends it: characters a URL may not hold are percent-encoded.
        self._path = requests.utils.requote_uri(
            target.path + (f'?{target.query}' if target.query else ''))
        bundle = tls_verify()
        self._tls = self._verifying(bundle if isinstance(bundle, str) else requests.certs.where())
        self._session: requests.Session | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._used_at = -math.inf
        self._broken = ''  # why every post fails (a proxy URL that cannot be used)
        host, port = target.hostname or '', target.port  # parse_webhook_url checked the port
        secure = target.scheme == 'https'
        self._make: Callable[[], http.client.HTTPConnection]
        if secure:
            self._make = lambda: http.client.HTTPSConnection(host, port, timeout=timeout[0],
                                                             context=self._tls)
        else:
            self._make = lambda: http.client.HTTPConnection(host, port, timeout=timeout[0])
        proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
        if not proxy:
            return
        user, password = requests.utils.get_auth_from_url(proxy)
        register_secret(password)
        try:
            via = urllib.parse.urlsplit(requests.utils.prepend_scheme_if_needed(proxy, 'http'))
            proxy_host, proxy_port = via.hostname, via.port or 80
            if not proxy_host:
                raise ValueError('no host')
        except ValueError as exc:  # urllib3's LocationParseError is one too
            self._broken = 'InvalidProxyURL'
            log.error('the proxy the environment names for Discord (%s) is not a usable URL '
                      '(%s): no alert can be posted until it is fixed; they are kept',
                      trim(redact(proxy), 120), trim(redact(str(exc)), 120))
            return
        if via.scheme != 'http':  # TLS to the proxy, or socks: requests' own way
            self._session = requests.Session()
            self._session.trust_env = False
            self._session.proxies = {target.scheme: proxy}
            self._session.verify = bundle
            self._session.headers.update(headers)
            self._url = url
            return
        auth = {}
        if user:  # as requests: Basic, latin-1 (UTF-8 for what latin-1 cannot hold)
            pair = f'{user}:{password}'
            try:
                raw = pair.encode('latin-1')
            except UnicodeEncodeError:
                raw = pair.encode()
            auth['Proxy-Authorization'] = 'Basic ' + base64.b64encode(raw).decode()
        if secure:  # a tunnel through the proxy; TLS with Discord inside it
            self._make = lambda: self._tunnel(proxy_host, proxy_port, host, port or 443, auth)
        else:       # the proxy is asked for the whole URL
            self._path = requests.utils.requote_uri(url)
            self._headers.update(auth)
            self._make = lambda: http.client.HTTPConnection(proxy_host, proxy_port,
                                                            timeout=timeout[0])

    @staticmethod
    def _verifying(bundle: str) -> ssl.SSLContext:
        """A context that verifies certificates and host names against a CA file or folder (as
        REQUESTS_CA_BUNDLE may name either), TLS 1.2 at least. One that cannot be read is one
        error line, and requests' default bundle is used instead: TLS is still verified."""
        where = {'capath': bundle} if os.path.isdir(bundle) else {'cafile': bundle}
        try:
            context = ssl.create_default_context(**where)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.error('CA bundle %s cannot be read (%s); TLS to Discord is verified against the '
                      'default CA bundle of requests instead', trim(bundle, 200),
                      type(exc).__name__)
            context = ssl.create_default_context(cafile=requests.certs.where())
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # Python 3.9 still allowed 1.0
        return context

    def _tunnel(self, proxy_host: str, proxy_port: int, host: str, port: int,
                auth: dict) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.timeout[0],
                                           context=self._tls)
        conn.set_tunnel(host, port, headers=auth)
        return conn

    def post(self, body: dict) -> Answer:
        data = json.dumps(body, separators=(',', ':')).encode()
        if self._broken:
            raise OSError(self._broken)
        if self._session is not None:
            try:
                resp = self._session.post(self._url, data=data, timeout=self.timeout,
                                          headers={'Content-Type': 'application/json'})
            except requests.RequestException as exc:
                raise OSError(type(exc).__name__) from None
            return Answer(resp.status_code, resp.headers, resp.text)
        conn = self._conn
        # An idle kept-alive socket with something to read has been closed by the server (or
        # sent what it should not); one idle for long may have been dropped on the way. Either
        # way a new connection, not a failed post.
        if conn is not None and conn.sock is not None and (
                readable(conn.sock) is not False or
                time.monotonic() - self._used_at > self.idle_s):
            conn.close()
        phase = 'Connect'
        try:
            if conn is None:
                conn = self._conn = self._make()
            if conn.sock is None:
                conn.connect()
                conn.sock.settimeout(self.timeout[1])
            phase = 'Read'
            conn.request('POST', self._path, body=data, headers=self._headers)
            reply = conn.getresponse()
            text = reply.read().decode('utf-8', 'replace')
        except (OSError, http.client.HTTPException, ValueError, TypeError) as exc:
            self.close()
            if isinstance(exc, (TimeoutError, socket.timeout)):
                cause = f'{phase}Timeout'
            elif str(exc).startswith('Tunnel connection failed'):  # the proxy refused CONNECT
                cause = 'ProxyError ' + trim(str(exc).partition(': ')[2], 60)
            else:
                cause = type(exc).__name__
            raise OSError(cause) from None
        self._used_at = time.monotonic()
        return Answer(reply.status, reply.headers, text)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class DiscordSender:
    """Posts alerts to a Discord webhook from one thread with an ordered, bounded queue.

    The receive loop only enqueues. The thread posts an alert only once the state file holds it
    (so a crash cannot both deliver it and forget it was alerted), and packs what is queued into
    messages of up to 10
    embeds within 6000 characters, posts with ?wait=true (the only confirmation Discord gives),
    paces itself by X-RateLimit-* headers and 429 retry_after, backs off on 5xx and timeouts, cools
    down for a long, growing time on an IP ban, and stops at once on a deleted or invalid webhook
    (401/403/404) while keeping the queue, which the state file persists.
    """

    max_queue = 1000
    disabled_log_every_s = 300.0
    invalid_budget = 100          # 401/403/429 per 10 min; Discord bans at 10,000

    def __init__(self, url: str, *, on_change: Callable[[], None] | None = None,
                 ban_cooldown_s: float = 900.0, retry_max_s: float = 30.0,
                 timeout_s: float = 10.0, backlog: Iterable = ()):
        webhook_id, token = parse_webhook_url(url)
        register_secret(token)
        parts = urllib.parse.urlsplit(url.strip())
        path = parts.path.rstrip('/')
        if not re.match(r'^/api/v\d+/', path):  # v6 (the unversioned default) counts in ms
            path = path.replace('/api/', '/api/v10/', 1)
        query = urllib.parse.parse_qsl(parts.query)
        query = [(k, v) for k, v in query if k != 'wait'] + [('wait', 'true')]
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path,
                                            urllib.parse.urlencode(query), ''))
        self.shown_url = f'/webhooks/{webhook_id}/***'
        self.on_change = on_change or (lambda: None)
        self.timeout = (min(5.0, timeout_s), timeout_s)  # (connect, read), as requests takes them
        self.abandoned = False  # a second Ctrl-C: stop() waits no longer
        self._cv = threading.Condition()
        self._seq = self._persisted_seq = 0
        self._queue: collections.deque = collections.deque(self._restore(backlog))
        self._not_before = 0.0
        self._retry = _Backoff(1.0, retry_max_s, jitter=(0.8, 1.2))
        self._troubled = False
        self._ban = _Backoff(ban_cooldown_s, 6 * 3600, jitter=None)
        self._last_ban = -math.inf
        self._crashes = 0
        self._disabled: str | None = None
        self._invalid: collections.deque = collections.deque()
        # Items of a batch Discord refused (400): id -> 'alone' (post it by itself) or 'plain'
        # (refused alone too: post its plain-text version). Each step is one post of its own.
        self._degraded: dict = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Saves the state file now (StateSaver.save_now), so the sender need not wait for the
        # state thread when the alert at the head of the queue is not saved yet.
        self.persist: Callable[..., Any] | None = None
        self._poster = WebhookPoster(self.url, self.timeout, {
            'User-Agent': f'DiscordBot (https://github.com/bybit-ws-notify, {__version__})'})

    @staticmethod
    def _restore(backlog: Iterable) -> list:
        """The undelivered alerts of the last run, made fit again: a hand-edited or older state
        file must not stop the sender."""
        items = []
        for item in backlog:
            try:
                parts = fit_embed(item['embed'])
            except Exception as exc:  # noqa: BLE001 (anything unreadable is logged and skipped)
                log.error('state file: skipped an undeliverable stored alert (%s): %s',
                          type(exc).__name__, trim(json.dumps(item, default=str), 300))
                continue
            items += [{'id': uuid.uuid4().hex[:12], 'seq': 0, 'embed': part} for part in parts]
        return items

    # -- producer side -------------------------------------------------------------------------

    def send(self, embed: dict) -> None:
        """Queue one alert; the sender thread posts it. Never blocks on the network."""
        if not embed.get('timestamp'):  # the event's own time when known, else now
            embed = dict(embed, timestamp=dt.datetime.now(UTC).isoformat())
        with self._cv:
            self._seq += 1
            self._queue.extend({'id': uuid.uuid4().hex[:12], 'seq': self._seq, 'embed': part}
                               for part in fit_embed(embed))
            overflow = len(self._queue) - self.max_queue
            for _ in range(max(overflow, 0)):  # bounded: the oldest go, each logged in full
                lost = self._queue.popleft()
                self._degraded.pop(lost['id'], None)
                log.error('alert queue full (%d): dropped the oldest alert: %s', self.max_queue,
                          embed_text(lost['embed']).replace('\n', ' | '))
            self.on_change()  # asked before the thread can see it: a save then covers it
            self._cv.notify_all()

    def pending(self) -> list:
        with self._cv:
            return list(self._queue)

    def pending_state(self) -> tuple:
        """(queued alerts, the sequence number of the newest queued), read together."""
        with self._cv:
            return list(self._queue), self._seq

    def mark_persisted(self, state: dict | None) -> None:
        """The state file now holds every alert up to state['outbox_seq']. Called after each
        write, failed or not: a broken disk must delay nothing."""
        with self._cv:
            self._persisted_seq = state.get('outbox_seq', self._seq) if state else self._seq
            self._cv.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='discord', daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Deliver what is queued for up to timeout_s, then stop; True if nothing is left."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            if self._queue and not self._disabled:
                log.info('delivering %d queued alert(s) to Discord%s: waiting up to %.0f s '
                         '(Ctrl-C again to stop now; what is left stays in the state file)',
                         len(self._queue), ' (unreachable, retrying)' if self._troubled else '',
                         timeout_s)
            while self._queue and not self._disabled and not self.abandoned and \
                    time.monotonic() < deadline:
                if self._thread is None or not self._thread.is_alive():
                    break
                self._cv.wait(min(0.1, max(deadline - time.monotonic(), 0.01)))
            self._stopping = True
            self._cv.notify_all()
            empty = not self._queue
        # A post in flight is not waited for past the deadline, nor once a second Ctrl-C came.
        while self._thread is not None and self._thread.is_alive() and not self.abandoned and \
                time.monotonic() < deadline:
            self._thread.join(timeout=min(0.1, max(deadline - time.monotonic(), 0.01)))
        return empty

    # -- the sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        last_disabled_log = time.monotonic()
        while True:
            unsaved = False
            with self._cv:
                while not self._stopping:
                    wait_s = self._not_before - time.monotonic()
                    if self._disabled:
                        if time.monotonic() - last_disabled_log >= self.disabled_log_every_s:
                            last_disabled_log = time.monotonic()
                            log.error('Discord webhook %s is unusable (%s): %d alert(s) kept in '
                                      'the state file; fix DISCORD_WEBHOOK_URL and restart',
                                      self.shown_url, self._disabled, len(self._queue))
                        self._cv.wait(self.disabled_log_every_s)
                    elif self._queue and wait_s <= 0:
                        unsaved = not self._head_saved()
                        if not unsaved or self.persist is not None:
                            break
                        self._cv.wait()  # for the state thread's save (mark_persisted)
                    else:
                        self._cv.wait(wait_s if self._queue and wait_s > 0 else None)
                if self._stopping:
                    return
                batch = [] if unsaved else self._take_batch()
            if unsaved:  # save it here (mark_persisted is called), then post it
                try:
                    self.persist(unless=self._head_saved)
                except Exception:  # the state thread's save still releases it
                    log.exception('Discord sender: could not save the state before a post')
                with self._cv:  # if it is still not saved, wait for the state thread's save
                    if not self._stopping and not self._head_saved():
                        self._cv.wait(1.0)
                continue
            try:
                self._deliver(batch)
                self._crashes = 0
            except Exception:
                # A bug must not silence every later alert: log, retry, and after three
                # failures on the same alert, log it in full and move on.
                self._crashes += 1
                log.exception('Discord sender: unexpected error (%d in a row)', self._crashes)
                if self._crashes >= 3:
                    log.error('giving up on this alert: %s', trim(json.dumps(batch[0]), 1500))
                    self._done(batch[:1])
                    self._crashes = 0
                self._hold(5.0)

    def _deliver(self, batch: list) -> None:
        # Every post, first or fallback, goes through _run's wait, so a 429's retry_after and the
        # pacing hold on every path; nothing behind a failed item is posted before it is done.
        head = batch[0]
        step = self._degraded.get(head['id'])
        if step == 'plain':
            text = _cut(embed_text(head['embed']), CONTENT_CHARS - 100)
            outcome = self._post({'content': text})
        else:
            outcome = self._post({'embeds': [item['embed'] for item in batch]})
        if outcome == 'ok':
            self._done(batch)
        elif outcome == 'bad_request' and step is None:
            with self._cv:  # find the one Discord refuses: each goes alone, in order
                self._degraded.update((item['id'], 'alone') for item in batch)
        elif outcome == 'bad_request' and step == 'alone':
            # A 400 on one embed means it broke a rule we did not foresee: the alert is logged
            # in full and goes out as plain text, never dropped in silence.
            log.error('Discord refused an alert; sending it as plain text. The alert: %s',
                      embed_text(head['embed']).replace('\n', ' | '))
            with self._cv:
                self._degraded[head['id']] = 'plain'
        elif outcome == 'bad_request':
            log.error('Discord refused an alert even as plain text; it is only in this log (see '
                      'the line above)')
            self._done(batch)

    def _head_saved(self) -> bool:
        with self._cv:  # an RLock: callers may hold it already
            return not self._queue or self._queue[0]['seq'] <= self._persisted_seq

    def _take_batch(self) -> list:
        batch, size = [], 0
        for item in self._queue:
            if item['seq'] > self._persisted_seq:
                break
            if item['id'] in self._degraded:  # goes by itself, and nothing overtakes it
                return batch or [item]
            item_size = embed_size(item['embed'])
            if batch and (len(batch) >= EMBEDS_PER_MESSAGE or size + item_size > MESSAGE_CHARS):
                break
            batch.append(item)
            size += item_size
        return batch

    def _done(self, batch: list) -> None:
        with self._cv:
            ids = {item['id'] for item in batch}
            self._queue = collections.deque(i for i in self._queue if i['id'] not in ids)
            for item_id in ids:
                self._degraded.pop(item_id, None)
            self._cv.notify_all()
        self.on_change()

    def _post(self, body: dict) -> str:
        """POST one message; 'ok', 'bad_request', or 'retry' after arranging when to retry."""
        body['allowed_mentions'] = NO_MENTIONS
        what = f"{len(body['embeds'])} embed(s)" if 'embeds' in body else 'plain text'
        _AlertsFirst.make_way()
        started = time.monotonic()
        try:
            resp = self._poster.post(body)
        except OSError as exc:
            log.debug('Discord POST %s to %s failed after %.2f s (%s)', what, self.shown_url,
                      time.monotonic() - started, exc)
            return self._retry_later(str(exc))
        log.debug('Discord POST %s to %s answered HTTP %d in %.2f s (rate limit left %s)', what,
                  self.shown_url, resp.status_code, time.monotonic() - started,
                  resp.headers.get('X-RateLimit-Remaining', '?'))
        self._pace(resp.headers)
        status = resp.status_code
        if 200 <= status < 300:
            if self._troubled:
                log.info('Discord is delivering again')
            self._troubled = False
            self._retry.reset()
            return 'ok'
        if status == 429:
            return self._rate_limited(resp)
        if status in (401, 403, 404):
            self._count_invalid()
            reason = {401: 'invalid webhook token', 403: 'no permission to post',
                      404: 'webhook deleted or wrong URL'}[status]
            with self._cv:
                self._disabled = f'HTTP {status}: {reason}'
            log.error('Discord webhook %s answered %d (%s): sending stopped, %d alert(s) kept in '
                      'the state file; fix DISCORD_WEBHOOK_URL and restart', self.shown_url,
                      status, reason, len(self._queue))
            return 'retry'
        if status in (400, 413):
            log.warning('Discord refused a message (%d: %s); degrading it', status,
                        trim(redact(resp.text), 200))
            return 'bad_request'
        return self._retry_later(f'HTTP {status}')

    def _pace(self, headers: Any) -> None:
        # Proactive pacing (discord.py does the same): when the bucket is empty, wait Reset-After.
        if headers.get('X-RateLimit-Remaining') == '0':
            reset_after = dec(headers.get('X-RateLimit-Reset-After'))
            if reset_after is not None:
                self._hold(float(min(reset_after, Decimal(60))))

    def _hold(self, seconds: float) -> None:
        with self._cv:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def _count_invalid(self) -> None:
        # 401/403/429 count toward Discord's invalid-request ban (10,000 per 10 min); stay far
        # below by pausing when 100 come within 10 minutes.
        clock = time.monotonic()
        self._invalid.append(clock)
        while self._invalid and clock - self._invalid[0] > 600:
            self._invalid.popleft()
        if len(self._invalid) >= self.invalid_budget:
            log.error('Discord: %d rejected requests in 10 min; pausing 10 min to avoid a ban',
                      len(self._invalid))
            self._hold(600)

    def _rate_limited(self, resp: Answer) -> str:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        has_headers = any(h.lower().startswith('x-ratelimit') for h in resp.headers)
        # A 429 without rate-limit headers, code 0, or Cloudflare's "error code: 1015" is an IP
        # ban, not a rate limit (discord-api-docs#5810, #5385): back off for a long time.
        if not has_headers or body.get('code') == 0 or 'error code: 1015' in resp.text[:200]:
            if time.monotonic() - self._last_ban > 3600:
                self._ban.reset()  # an hour without a ban: the next cooldown starts short again
            self._last_ban = time.monotonic()
            self._troubled = True
            cooldown = self._ban.next()
            log.error('Discord banned this IP for too many requests (429 without rate-limit '
                      'headers); pausing %s, %d alert(s) kept', duration(cooldown), len(self._queue))
            self._hold(cooldown)
            return 'retry'
        if resp.headers.get('X-RateLimit-Scope') != 'shared':
            self._count_invalid()
        waits = [dec(resp.headers.get('Retry-After')), dec(body.get('retry_after')),
                 dec(resp.headers.get('X-RateLimit-Reset-After'))]
        wait_s = max([float(w) for w in waits if w is not None] or [1.0])
        wait_s = min(wait_s, 3600.0) + random.uniform(0.05, 0.25)
        log_throttled(logging.WARNING, 'discord-429', 'Discord rate limit (429): waiting %.2f s, '
                      '%d alert(s) queued', wait_s, len(self._queue))
        self._hold(wait_s)
        return 'retry'

    def _retry_later(self, cause: str) -> str:
        self._troubled = True
        wait_s = self._retry.next()
        log_throttled(logging.WARNING, 'discord-down', 'Discord unreachable (%s): retrying in '
                      '%.1f s, %d alert(s) queued', cause, wait_s, len(self._queue))
        self._hold(wait_s)
        return 'retry'

# Formatters ########################################################################################
# Pure functions: Bybit's event dicts in, a Discord embed (a dict) out. No I/O and no state, so
# each one is tested with Bybit's official example payloads and real-shaped ones.
#
# Truth rules: a field Bybit did not send is left out (never 0, "-" or "?"). Balances and PnL in a
# USD-pegged coin are shown to the cent (an amount under a cent keeps its digits), in any other
# coin to 8 decimals; prices, quantities and fees are shown as Bybit sent them.

EXEC_TYPE_LABELS = {
    'Trade': 'Fill', 'Funding': 'Funding fee', 'AdlTrade': 'ADL fill (auto-deleveraging)',
    'BustTrade': 'Liquidation fill', 'Settle': 'Settlement', 'Delivery': 'Delivery',
    'BlockTrade': 'Block trade fill', 'MovePosition': 'Position move',
    'FutureSpread': 'Spread fill', 'CorporateAction': 'Corporate action',
}
ORDER_COLORS = {'New': 'info', 'Cancelled': 'muted', 'Deactivated': 'muted', 'Rejected': 'error',
                'Untriggered': 'trigger', 'Triggered': 'trigger'}
PARTLY_CANCELLED = 'Partially filled, rest cancelled'
# Bybit's cancelType and rejectReason codes (docs/v5/enum.mdx) in a trader's words; any other code
# is spelled out from its name. The raw code stays in the footer.
REASON_WORDS = {
    'EC_CancelForNoFullFill': 'the rest was cancelled (not fully filled)',
    'EC_NoImmediateQtyToFill': 'nothing could be filled at once',
    'EC_PostOnlyWillTakeLiquidity': 'post-only, and it would have filled at once',
    'EC_OrigClOrdIDDoesNotExist': 'the order to cancel was already closed',
    'EC_PerCancelRequest': 'cancelled on request',
    'CancelByUser': 'cancelled by you',
    'CancelByReduceOnly': 'reduce-only, and there was no position left to reduce',
    'CancelByPrepareLiq': 'cancelled to prevent a liquidation',
    'CancelAllBeforeLiq': 'cancelled to prevent a liquidation',
    'CancelByPrepareAdl': 'cancelled for auto-deleveraging (ADL)',
    'CancelAllBeforeAdl': 'cancelled for auto-deleveraging (ADL)',
    'CancelByAdmin': 'cancelled by Bybit',
    'CancelBySettle': 'cancelled at settlement or delisting',
    'CancelByTpSlTsClear': 'cancelled: its TP/SL was cleared',
    'CancelBySmp': 'cancelled by self-match prevention',
    'CancelByDCP': 'cancelled by Disconnection Protect',
}
USD_COINS = frozenset(('USD', 'USDT', 'USDC', 'USDE', 'USD1', 'DAI', 'FDUSD', 'PYUSD', 'TUSD'))
COIN_PLACES = 8  # Bybit's wallet precision for coins (walletBalance "0.00102964")
_UNSET = ('', '0', 'UNKNOWN', None)
RECOVERED_NOTE = 'recovered after a disconnect'


def _field(name: str, value: Any, inline: bool = True) -> dict:
    return {'name': name, 'value': str(value), 'inline': inline}


def _side_color(side: Any) -> int:
    return COLOR['buy'] if side == 'Buy' else COLOR['sell'] if side == 'Sell' else COLOR['info']


def _footer(*parts: Any) -> dict:
    return {'text': ' · '.join(str(p) for p in parts if p)}


def _set(value: Any) -> bool:
    """True for a price field that holds a real value (Bybit sends '', '0' or '0.00' for none)."""
    number = dec(value)
    return number is not None and number != 0


def _words(*parts: Any) -> str:
    """The parts that hold something, joined by spaces."""
    return ' '.join(str(p) for p in parts if p not in ('', None))


def fmt_money(value: Any, coin: str, signed: bool = False) -> str:
    """A balance or PnL amount: to the cent in a USD-pegged coin (under a cent it keeps its
    digits), to 8 decimals in any other coin; '' when Bybit sent no number."""
    number = value if isinstance(value, Decimal) else dec(value)
    if number is None:
        return ''
    if coin in USD_COINS and (number == 0 or abs(number) >= Decimal('0.01')):
        text = format(number.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP), 'f')
        text = '0.00' if text == '-0.00' else text
    else:
        text = fmt_num(number, COIN_PLACES)
    return f'+{text}' if signed and not text.startswith('-') else text


def _amount(value: Any, unit: str) -> str:
    """'value unit' for a number as Bybit sent it; '' when it sent none."""
    text = fmt_num(value)
    return '' if text == '-' else f'{text} {unit}'.strip()


def _quote_sized(item: dict) -> bool:
    """True when an order's qty is in the quote coin: marketUnit says so, or, without it, a spot
    market buy, which Bybit sizes by value by default (docs/v5/order/create-order.mdx, qty and
    marketUnit; 2023 messages have no marketUnit at all: qty "10.000000" was 10 USDT)."""
    unit = item.get('marketUnit')
    if unit:
        return unit == 'quoteCoin'
    return (item.get('category') == 'spot' and item.get('orderType') == 'Market'
            and item.get('side') == 'Buy')


def reason_words(code: Any) -> str:
    """A cancelType or rejectReason code in plain words: 'EC_CancelForNoFullFill' ->
    'the rest was cancelled (not fully filled)'."""
    code = str(code or '')
    if code in REASON_WORDS:
        return REASON_WORDS[code]
    name = re.sub(r'^EC_', '', code)
    return escape_md(re.sub(r'(?<=[a-z0-9])(?=[A-Z])', ' ', name).replace('_', ' ').lower())


def period_label(period: str) -> str:
    if period.isdigit():
        minutes = int(period)
        return f'{minutes // 60}h' if minutes % 60 == 0 else f'{minutes}m'
    return {'D': '1D', 'W': '1W', 'M': '1M'}.get(period, period)


def order_status_words(order: dict) -> str:
    """The status a trader reads: a spot PartiallyFilledCanceled, or a derivatives Cancelled that
    had executed qty (docs/v5/enum.mdx), is "Partially filled, rest cancelled"."""
    status = order.get('orderStatus') or ''
    if status == 'PartiallyFilledCanceled' or (status == 'Cancelled' and _set(order.get('cumExecQty'))):
        return PARTLY_CANCELLED
    return status


def market_name(symbol: Any, category: Any) -> str:
    """A symbol as a title shows it: a spot one says so, since BTCUSDT is also a linear
    perpetual's name."""
    return f'{symbol} spot' if category == 'spot' and symbol else str(symbol or '')


def _contract_field(symbol: Any) -> list:
    """An option's symbol in words (BTC Call 100000, expires 27 Dec 2026); nothing for others."""
    option = parse_option(str(symbol or ''))
    return [_field('Contract', f'{option}, settles in {option.settle}', inline=False)] if option \
        else []


def format_order(order: dict, units: Units, recovered: bool = False) -> dict:
    """One order status change: New, PartiallyFilled, Filled, Cancelled, Rejected, or a
    conditional order's Untriggered, Triggered, Deactivated."""
    status = order.get('orderStatus') or ''
    words = order_status_words(order)
    side, symbol = order.get('side') or '', order.get('symbol') or ''
    order_type = order.get('orderType') or ''
    price = order.get('price')
    qty_unit = units.value if _quote_sized(order) else units.qty
    what = _words(side, order_type, _amount(order.get('qty'), qty_unit),
                  market_name(symbol, order.get('category')))
    title = f"Order {words or 'update'}" + (f': {what}' if what else '')
    if order_type != 'Market' and _set(price):
        title += f' @ {fmt_num(price)}'
    fields = [_field('Status', words)] if words else []
    if side:
        fields.append(_field('Side', side))
    fields += _contract_field(symbol)
    if order.get('stopOrderType') not in _UNSET:
        fields.append(_field('Conditional', order['stopOrderType']))
    filled_qty = fmt_num(order.get('cumExecQty'))
    if filled_qty == '-':
        filled = ''  # not sent: no invented 0
    elif qty_unit == units.qty:
        filled = f"{filled_qty} / {_amount(order.get('qty'), units.qty)}" if _set(order.get('qty')) \
            else f'{filled_qty} {units.qty}'
    else:  # bought for an amount of the quote coin: what it got, and what it spent of the amount
        spent = fmt_num(order.get('cumExecValue'))
        filled = f'{filled_qty} {units.qty}' + (f' for {spent}' if spent != '-' else '') + (
            f" / {_amount(order.get('qty'), units.value)}" if _set(order.get('qty')) else '')
    if filled:
        fields.append(_field('Filled', filled))
    if _set(order.get('avgPrice')):
        fields.append(_field('Avg price', fmt_num(order['avgPrice'])))
    if _set(order.get('triggerPrice')):
        trigger = fmt_num(order['triggerPrice'])
        if order.get('triggerBy') not in _UNSET:
            trigger += f" ({order['triggerBy']})"
        fields.append(_field('Trigger', trigger))
    for name, key in (('Take profit', 'takeProfit'), ('Stop loss', 'stopLoss')):
        if _set(order.get(key)):
            fields.append(_field(name, fmt_num(order[key])))
    codes = []
    if status in ('Cancelled', 'Deactivated', 'PartiallyFilledCanceled') and \
            order.get('cancelType') not in _UNSET:
        codes.append(str(order['cancelType']))
    if status in ('Rejected', 'Cancelled', 'Deactivated', 'PartiallyFilledCanceled') and \
            order.get('rejectReason') not in ('', 'EC_NoError', None):
        codes.append(str(order['rejectReason']))
    if codes:
        fields.append(_field('Reason', '; '.join(reason_words(c) for c in codes)))
    if order.get('reduceOnly') is True:
        fields.append(_field('Reduce only', 'yes'))
    if order.get('orderLinkId'):
        fields.append(_field('Link ID', escape_md(order['orderLinkId'])))
    color = None if words == PARTLY_CANCELLED else ORDER_COLORS.get(status)
    return {
        'title': title, 'color': COLOR[color] if color else _side_color(side), 'fields': fields,
        'footer': _footer(f"order {order['orderId']}" if order.get('orderId') else '',
                          ''.join(ch for ch in ' '.join(codes) if ch.isprintable()),
                          RECOVERED_NOTE if recovered else ''),
        'timestamp': iso_ms(order.get('updatedTime')),
    }


def _fee_coin(fill: dict, units: Units) -> str:
    """feeCurrency when Bybit sent it. Spot fills often lack it: a spot buy pays its fee in the
    base coin, a sell in the quote coin; derivatives pay in the settle coin."""
    if fill.get('feeCurrency'):
        return str(fill['feeCurrency'])
    if fill.get('category') == 'spot':
        return units.qty if fill.get('side') == 'Buy' else units.value
    return units.value


def _extra_fees(fill: dict) -> list:
    """extraFees as (feeType, feeCoin, fee) tuples: a list of objects (e.g. GST), or '' when none
    (docs/v5/websocket/private/execution.mdx)."""
    extra = fill.get('extraFees')
    if isinstance(extra, str) and extra.strip().startswith('['):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = []
    fees = []
    for item in extra if isinstance(extra, list) else ():
        if isinstance(item, dict) and dec(item.get('fee')) is not None:
            fees.append((str(item.get('feeType') or 'extra fee'), str(item.get('feeCoin') or ''),
                         dec(item['fee'])))
    return fees


def _fee_fields(fills: list, coin: str) -> list:
    """The Fee field: execFee plus the extra fees (GST, VAT) in the same coin, which it names;
    extra fees in another coin get a field of their own."""
    fees = [dec(f.get('execFee')) for f in fills]
    known = [fee for fee in fees if fee is not None]
    extras: dict = {}
    for fill in fills:
        for fee_type, fee_coin, fee in _extra_fees(fill):
            key = (fee_type, fee_coin or coin)
            extras[key] = extras.get(key, Decimal(0)) + fee
    same = {t: v for (t, c), v in extras.items() if c == coin}
    other = {(t, c): v for (t, c), v in extras.items() if c != coin}
    fields = []
    if known or same:
        total = sum(known, Decimal(0)) + sum(same.values(), Decimal(0))
        text = f'{fmt_num(total)} {coin}'
        if same:
            text += ' (incl. ' + ', '.join(f'{t} {fmt_num(v)}' for t, v in same.items()) + ')'
        fields.append(_field('Fee', text))
    if other:
        fields.append(_field('Extra fees', ', '.join(f'{t} {fmt_num(v)} {c}'
                                                     for (t, c), v in other.items())))
    return fields


def _format_funding(fills: list, units: Units, recovered: bool) -> dict:
    """A funding settlement: paid or received, on which position, at which mark price and rate.
    For a Funding execution Bybit puts the position size in execQty, the mark price in execPrice
    and the funding rate in feeRate; a positive execFee is paid, a negative one received."""
    first = fills[0]
    symbol = first.get('symbol') or ''
    coin = first.get('feeCurrency') or units.value
    fees = [dec(f.get('execFee')) for f in fills]
    amount = sum((fee for fee in fees if fee is not None), Decimal(0))
    word = 'received' if amount < 0 else 'paid'
    side = {'Buy': 'Long', 'Sell': 'Short'}.get(first.get('side'), '')
    position = _words(side, _amount(first.get('execQty'), units.qty)) if _set(first.get('execQty')) \
        else ''
    shown = f'{fmt_num(abs(amount))} {coin}'
    title = f'Funding {word}: {shown}' + (f' on {symbol}' if symbol else '') + (
        f' {position}' if position else '')
    fields = [_field('Amount', f'{shown} {word}')]
    if position:
        fields.append(_field('Position', position))
    if _set(first.get('execPrice')):
        fields.append(_field('Mark price', fmt_num(first['execPrice'])))
    rate = dec(first.get('feeRate'))
    if rate is not None:
        fields.append(_field('Funding rate', f'{fmt_num(rate * 100)}%'))
    return {
        'title': title, 'color': COLOR['sell'] if word == 'paid' else COLOR['buy'],
        'fields': fields,
        'footer': _footer(f"exec {first.get('execId')}" if first.get('execId') else '',
                          RECOVERED_NOTE if recovered else ''),
        'timestamp': iso_ms(fills[-1].get('execTime')),
    }


def format_execution(fills: list, units: Units, recovered: bool = False) -> dict:
    """The fills of one order that arrived together, as one alert: each fill (first 10), the total
    against the order qty, VWAP, fee, maker/taker and the realised PnL of closing fills."""
    first, last = fills[0], fills[-1]
    exec_type = first.get('execType') or 'Trade'  # execution.fast has no execType: Trade only
    if exec_type == 'Funding':
        return _format_funding(fills, units, recovered)
    side, symbol = first.get('side') or '', first.get('symbol') or ''
    label = EXEC_TYPE_LABELS.get(exec_type, exec_type)
    qtys = [dec(f.get('execQty')) or Decimal(0) for f in fills]
    prices = [dec(f.get('execPrice')) or Decimal(0) for f in fills]
    total = sum(qtys, Decimal(0))
    places = max((max(-p.as_tuple().exponent, 0) for p in prices), default=2) + 2
    vwap = sum((p * q for p, q in zip(prices, qtys)), Decimal(0)) / total if total else None
    closing = [f for f in fills if _set(f.get('closedSize'))]
    pnls = [dec(f.get('execPnl')) for f in closing]
    makers = {f.get('isMaker') for f in fills}

    title = f'{label}: ' + _words(side, f'{fmt_num(total)} {units.qty}',
                                  market_name(symbol, first.get('category')))
    if vwap is not None:
        title += f' @ {fmt_num(vwap, places)}'
    if len(fills) > 1:
        title += f' ({len(fills)} fills)'
    fields = []
    if len(fills) > 1:
        lines = [f'{fmt_num(q)} @ {fmt_num(p)}' for q, p in zip(qtys[:10], prices[:10])]
        if len(fills) > 10:
            lines.append(f'... and {len(fills) - 10} more')
        fields.append(_field('Fills', '\n'.join(lines), inline=False))
    fields += _contract_field(symbol)
    order_qty = first.get('orderQty')
    if _quote_sized(first) and _set(order_qty):  # a spot market buy for an amount of quote coin
        values = [dec(f.get('execValue')) for f in fills]
        filled = f'{fmt_num(total)} {units.qty}' + (
            f' for {fmt_num(sum(values, Decimal(0)))} /' if None not in values else ' of') + \
            f' {fmt_num(order_qty)} {units.value}'
    elif _set(order_qty):
        filled = f'{fmt_num(total)} / {fmt_num(order_qty)} {units.qty}'
    else:
        filled = f'{fmt_num(total)} {units.qty}'
    fields.append(_field('Filled', filled))
    if vwap is not None:
        fields.append(_field('VWAP' if len(fills) > 1 else 'Price', fmt_num(vwap, places)))
    fields += _fee_fields(fills, _fee_coin(first, units))
    if makers <= {True, False} and makers:
        fields.append(_field('Liquidity', 'maker' if makers == {True} else
                             'taker' if makers == {False} else 'maker + taker'))
    if closing and None not in pnls:  # only the PnL Bybit sent: a missing execPnl is not a 0
        fields.append(_field('Realised PnL',
                             f'{fmt_money(sum(pnls, Decimal(0)), units.value)} {units.value}'))
    if _set(last.get('leavesQty')):
        fields.append(_field('Left', f"{fmt_num(last['leavesQty'])} {units.qty}"))
    if first.get('orderType') not in _UNSET:
        fields.append(_field('Order type', first['orderType']))
    color = _side_color(side) if exec_type == 'Trade' else (
        COLOR['error'] if exec_type in ('BustTrade', 'AdlTrade') else COLOR['warn'])
    return {
        'title': title, 'color': color, 'fields': fields,
        'footer': _footer(f"order {first['orderId']}" if first.get('orderId') else '',
                          f"exec {first.get('execId')}" + (' ...' if len(fills) > 1 else ''),
                          RECOVERED_NOTE if recovered else ''),
        'timestamp': iso_ms(last.get('execTime')),
    }


def position_view(position: dict) -> dict:
    """The fields of a position that matter for alerts, normalised for comparison (REST calls
    the entry price avgPrice, the websocket entryPrice)."""
    size = dec(position.get('size')) or Decimal(0)
    return {
        'symbol': position.get('symbol') or '?', 'idx': int(position.get('positionIdx') or 0),
        'side': position.get('side') if size and position.get('side') in ('Buy', 'Sell') else '',
        'size': fmt_num(size),
        'entry': fmt_num(position.get('entryPrice') or position.get('avgPrice')),
        'liq': fmt_num(position.get('liqPrice')), 'tp': fmt_num(position.get('takeProfit')),
        'sl': fmt_num(position.get('stopLoss')), 'mark': fmt_num(position.get('markPrice')),
        'upnl': fmt_num(position.get('unrealisedPnl')),
        'realised': fmt_num(position.get('curRealisedPnl')),
        'leverage': fmt_num(position.get('leverage')),
    }


POSITION_KEYS = frozenset(position_view({}))


def flat_position(view: dict) -> dict:
    """The view of no position in the same symbol and slot."""
    return dict(view, side='', size='0', entry='-', liq='-', tp='-', sl='-', upnl='-')


def classify_position(prev: dict, cur: dict) -> str | None:
    """opened, increased, reduced, closed, flipped or updated (entry, liq, TP, SL); None when
    nothing that matters changed. Bybit pushes a position on every order create, amend or
    cancel, changed or not (docs/v5/websocket/private/position.mdx)."""
    before, after = Decimal(prev['size']), Decimal(cur['size'])
    if before == 0 and after == 0:
        return None
    if before == 0:
        return 'opened'
    if after == 0:
        return 'closed'
    if prev['side'] != cur['side']:
        return 'flipped'
    if after != before:
        return 'increased' if after > before else 'reduced'
    if any(prev[k] != cur[k] for k in ('entry', 'tp', 'sl')):
        return 'updated'
    # The liquidation price of a cross-margin position is an estimate that moves with the
    # account; only a move of more than 1% is news.
    old_liq, new_liq = (dec(v) if _set(v) else None for v in (prev['liq'], cur['liq']))
    if (old_liq is None) != (new_liq is None) or (
            old_liq and new_liq and abs(new_liq - old_liq) > abs(old_liq) / 100):
        return 'updated'
    return None


def format_position(change: str, prev: dict, cur: dict, units: Units,
                    recovered: bool = False) -> dict:
    """A position change, classed as opened, increased, reduced, closed, flipped or updated."""
    shown = prev if change == 'closed' else cur
    direction = {'Buy': 'Long', 'Sell': 'Short'}.get(shown['side'], 'Flat')
    title = f"Position {change}: {shown['symbol']} {direction} {shown['size']} {units.qty}"
    if change == 'closed':
        title = f"Position closed: {cur['symbol']} (was {direction} {prev['size']} {units.qty})"
    fields = [_field('Side', direction if change != 'closed' else 'Flat'),
              _field('Size', f"{prev['size']} → {cur['size']} {units.qty}")]
    fields += _contract_field(cur['symbol'])
    if _set(shown['entry']):
        fields.append(_field('Entry', shown['entry']))
    if _set(cur['mark']):
        fields.append(_field('Mark', cur['mark']))
    if _set(cur['liq']) and change != 'closed':
        fields.append(_field('Liq. price', cur['liq']))
    pnls = [('Unrealised PnL', cur['upnl'] if change != 'closed' else ''),
            ('Realised PnL', cur['realised'])]  # curRealisedPnl: only when Bybit sent it
    for name, value in pnls:
        money = fmt_money(value, units.value)
        if money:
            fields.append(_field(name, f'{money} {units.value}'))
    for name, key in (('Take profit', 'tp'), ('Stop loss', 'sl')):
        if _set(cur[key]):
            fields.append(_field(name, cur[key]))
        elif _set(prev[key]) and change != 'closed':
            fields.append(_field(name, f"removed (was {prev[key]})"))
    if _set(cur['leverage']):
        fields.append(_field('Leverage', f"{cur['leverage']}x"))
    color = {'closed': COLOR['muted'], 'flipped': COLOR['warn'], 'reduced': COLOR['info'],
             'updated': COLOR['info']}.get(change, _side_color(cur['side']))
    return {'title': title, 'color': color, 'fields': fields,
            'footer': _footer(f"position {cur['symbol']} #{cur['idx']}",
                              RECOVERED_NOTE if recovered else '')}


def _borrowed(coin: str, coin_row: dict) -> tuple:
    """(amount, '5.00 USDT (2.00 by spot margin)') borrowed, or (None, '') when nothing is."""
    borrowed = dec(coin_row.get('borrowAmount'))
    spot_borrow = dec(coin_row.get('spotBorrow'))
    if borrowed is None or borrowed <= 0:
        borrowed = spot_borrow
    if borrowed is None or borrowed <= 0:
        return None, ''
    text = f'{fmt_money(borrowed, coin)} {coin}'
    if spot_borrow and spot_borrow > 0 and spot_borrow != borrowed:
        text += f' ({fmt_money(spot_borrow, coin)} by spot margin)'
    return borrowed, text


def _account_totals(account: dict) -> list:
    fields = []
    for name, key in (('Account equity', 'totalEquity'), ('Available', 'totalAvailableBalance')):
        if dec(account.get(key)) is not None:  # account totals are in USD (wallet.mdx)
            fields.append(_field(name, f"{fmt_money(account[key], 'USD')} USD"))
    return fields


def format_wallets(changes: list, account: dict, recovered: bool = False) -> dict:
    """The coins whose balance changed in one burst, as one alert: changes holds
    (coin, before, after, coin_row) for each; one coin is format_wallet's alert."""
    if len(changes) == 1:
        coin, before, after, row = changes[0]
        return format_wallet(coin, before, after, account, row, recovered=recovered)
    fields, parts = [], []
    for coin, before, after, row in changes[:FIELDS_PER_EMBED - 3]:
        change = (dec(after) or Decimal(0)) - (dec(before) or Decimal(0))
        shown = fmt_money(change, coin, signed=True)
        parts.append(f'{coin} {shown}')
        line = f'{fmt_money(before, coin)} → {fmt_money(after, coin)} {coin} ({shown})'
        borrowed = _borrowed(coin, row)[1]
        fields.append(_field(coin, line + (f', {borrowed} borrowed' if borrowed else '')))
    if len(changes) > len(fields):
        parts.append(f'and {len(changes) - len(fields)} more')
    title = _cut(f'Balances changed: {", ".join(parts)}', TITLE_CHARS)
    return {'title': title, 'color': COLOR['info'], 'fields': fields + _account_totals(account),
            'footer': _footer(f"{account.get('accountType') or 'account'} wallet",
                              f'{len(changes)} coins', RECOVERED_NOTE if recovered else '')}


def format_wallet(coin: str, before: str, after: str, account: dict, coin_row: dict,
                  recovered: bool = False) -> dict:
    """A change of one coin's wallet balance. On a Unified account a borrow (borrowAmount,
    spotBorrow) moves the balance too: it is shown as borrowed, so it does not read as a loss."""
    change = (dec(after) or Decimal(0)) - (dec(before) or Decimal(0))
    shown_change = fmt_money(change, coin, signed=True)
    fields = [_field('Wallet balance', f'{fmt_money(after, coin)} {coin}'),
              _field('Change', f'{shown_change} {coin}')]
    title = f'Balance {coin}: {fmt_money(before, coin)} → {fmt_money(after, coin)} ({shown_change})'
    borrowed, text = _borrowed(coin, coin_row)
    if text:
        fields.append(_field('Borrowed', text))
        title += f', {fmt_money(borrowed, coin)} borrowed'
    if fmt_money(coin_row.get('equity'), coin):  # a classic SPOT wallet sends equity ""
        fields.append(_field('Equity', f"{fmt_money(coin_row['equity'], coin)} {coin}"))
    if _set(coin_row.get('unrealisedPnl')):
        fields.append(_field('Unrealised PnL', f"{fmt_money(coin_row['unrealisedPnl'], coin)} {coin}"))
    fields += _account_totals(account)
    return {'title': title,
            'color': COLOR['buy'] if change >= 0 else COLOR['sell'], 'fields': fields,
            'footer': _footer(f"{account.get('accountType') or 'account'} wallet",
                              RECOVERED_NOTE if recovered else '')}


def format_kline(candle: dict, symbol: str, units: Units, recovered: bool = False,
                 category: str = '') -> dict:
    """One closed candle (confirm: true) of a symbol and period: OHLC, volume and change. A spot
    symbol says so: BTCUSDT is also a linear perpetual's name."""
    open_, close = dec(candle.get('open')), dec(candle.get('close'))
    change = (close - open_) / open_ * 100 if open_ and close is not None else None
    change_text = f'{change:+.2f}%' if change is not None else ''
    label = period_label(str(candle.get('interval') or ''))
    title = f'{market_name(symbol, category)} {label} closed: {fmt_num(close)}' + (f' ({change_text})' if change_text else '')
    values = [('Open', _amount(open_, '')), ('High', _amount(candle.get('high'), '')),
              ('Low', _amount(candle.get('low'), '')), ('Close', _amount(close, '')),
              ('Volume', _amount(candle.get('volume'), units.qty)), ('Change', change_text)]
    return {
        'title': title,
        'color': COLOR['buy'] if change is not None and change >= 0 else COLOR['sell'],
        'fields': [_field(name, value) for name, value in values if value],
        'footer': _footer(f"{label} candle from {fmt_time_ms(candle.get('start'))}",
                          RECOVERED_NOTE if recovered else ''),
        'timestamp': iso_ms(candle.get('start')),
    }


def format_startup(watch: dict) -> dict:
    """What the bot watches (categories, candle symbols and periods, which alerts), with the
    positions and balances it read at startup."""
    fields = [_field('Watching', f"{', '.join(watch['categories']) or 'candles only'} "
                                 f"({watch['env']})", inline=False),
              _field('Alerts', ', '.join(watch['alerts']) or 'none', inline=False)]
    if watch.get('candles'):
        fields.append(_field('Candles', watch['candles'], inline=False))
    for name in ('Positions', 'Balances', 'Total equity', 'API key', 'Backlog'):
        key = name.lower().replace(' ', '_')
        if watch.get(key):
            fields.append(_field(name, watch[key], inline=False))
    return {'title': 'bybit-ws-notify started', 'color': COLOR['info'], 'fields': fields,
            'footer': _footer(f'bybit-ws-notify {__version__}')}


def format_shutdown(reason: str, uptime_s: float) -> dict:
    return {'title': 'bybit-ws-notify stopped', 'color': COLOR['muted'],
            'fields': [_field('Reason', reason), _field('Uptime', duration(uptime_s))]}


def format_status(event: dict) -> dict | None:
    """Connection and key events: a stream down or restored, the key rejected or accepted again,
    a topic Bybit refused, a key about to expire."""
    kind = event.get('event')
    stream = _words(str(event.get('stream', '')).capitalize(), event.get('category'), 'stream')
    if kind == 'down':
        return {'title': f"{stream} down for {duration(event['down_s'])}", 'color': COLOR['warn'],
                'description': 'Reconnecting; missed fills will be recovered over REST.'
                if event.get('stream') == 'private' else 'Reconnecting.'}
    if kind == 'restored':
        fills = event.get('recovered_fills')
        text = f'Down for {duration(event["down_s"])}.'
        if fills is not None:
            text += f' {fills} fill(s) recovered.'
        return {'title': f'{stream} restored', 'color': COLOR['buy'], 'description': text}
    if kind == 'auth_rejected':
        return {'title': 'Bybit rejected the API key', 'color': COLOR['error'],
                'description': f"{escape_md(event.get('reason', ''))}\nPrivate alerts are paused "
                               'and retried every few minutes; kline alerts go on. Check the key '
                               '(expired? deleted? wrong environment?).'}
    if kind == 'auth_ok':
        return {'title': 'Bybit accepts the API key again', 'color': COLOR['buy'],
                'description': 'Private alerts resume; missed fills are recovered.'}
    if kind == 'topic_rejected':
        return {'title': f"Bybit refused topic {event.get('topic')}", 'color': COLOR['error'],
                'description': f"{escape_md(event.get('reason', ''))}\nCheck BYBIT_SYMBOL and "
                               'BYBIT_CATEGORY. This topic is not retried.'}
    if kind == 'category_refused':
        return {'title': f"Bybit refuses {event.get('category')} reads with this key",
                'color': COLOR['error'],
                'description': f"{escape_md(event.get('reason', ''))}\nLive {event.get('category')} "
                               'alerts go on; what happens while disconnected is not recovered. '
                               'Give the key read access to it, or leave it out of '
                               'BYBIT_CATEGORIES.'}
    if kind == 'key_expiry':
        return {'title': f"API key expires in {event['days']} day(s)", 'color': COLOR['warn'],
                'description': f"Expiry: {event['expires']}. Keys without an IP binding expire "
                               'after 90 days: create a new read-only key and restart.'}
    return None


def format_fallback(kind: str, raw: Any, error: str) -> dict:
    """A plain alert with the raw essentials, for when a formatter fails: never silence."""
    items = raw if isinstance(raw, list) else [raw]
    keys = ('symbol', 'side', 'orderStatus', 'execType', 'execQty', 'execPrice', 'qty', 'price',
            'size', 'orderId', 'execId', 'coin', 'walletBalance', 'close')
    lines = []
    for item in items[:10]:
        if isinstance(item, dict):
            lines.append(', '.join(f'{k}={escape_md(item[k])}' for k in keys if k in item) or
                         escape_md(trim(json.dumps(item, default=str), 300)))
        else:
            lines.append(escape_md(trim(item, 300)))
    return {'title': f'{kind} event (raw)', 'color': COLOR['warn'],
            'description': '\n'.join(lines) or '(an empty event)',
            'footer': _footer(f'formatter error: {error}')}

# Main ##############################################################################################



class StateFile:
    """The bot's memory across restarts, in one small JSON file: the last fill time, recent
    execIds and order states, positions, balances, and the alerts not yet delivered. A corrupt
    file is set aside, never fatal.

    A save returns only once the disk holds it, and the sender posts an alert only after that.
    Most saves are one line added to a journal beside the file (STATE_FILE.log) and made
    durable with fdatasync: measured 0.1 ms, against 0.6 ms for the whole file's atomic write
    (temp file, fsync, rename, fsync of the folder). The journal is made at its full size
    (compact_bytes, zeros after its first line) so that each line is written in place. Once it
    is full, at a stop, and at the first save after a start, the whole file is written
    atomically instead and the journal starts over. Each journal names the whole write it
    follows (its generation), so one left from before a compaction is never read; a torn last
    line is ignored."""

    failure_log_every_s = 600.0
    compact_bytes = 1_000_000

    def __init__(self, path: str):
        self.path = path
        self.log_path = f'{path}.log'
        self._temp_prefix = f'.{os.path.basename(path)}.'
        self._lock = threading.Lock()
        self._log_fd: int | None = None
        self._log_ino = 0
        self._log_bytes = 0  # where the next line goes
        self._appended = False  # the last journal append reached the disk
        self._failing_since: float | None = None   # time.monotonic() of the first failed write
        self._failures = 0
        self._failure_logged = -math.inf

    def load(self) -> dict | None:
        folder = os.path.dirname(os.path.abspath(self.path))
        for name in os.listdir(folder):  # left by a write that a kill -9 interrupted
            if name.startswith(self._temp_prefix) and name.endswith('.tmp'):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass
        try:
            with open(self.path, encoding='utf-8') as handle:
                state = json.load(handle)
            if not isinstance(state, dict) or state.get('version') not in (1, STATE_VERSION):
                raise ValueError('not a bybit_ws_notify state file')
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            aside = f'{self.path}.corrupt-{int(time.time())}'
            try:
                os.replace(self.path, aside)
            except OSError:
                aside = '(could not move it)'
            log.error('state file %s is unreadable (%s: %s): set aside as %s; starting fresh',
                      self.path, type(exc).__name__, trim(exc, 120), aside)
            return None
        state = self._replay(state)
        state.pop('journal', None)
        return state

    def _replay(self, state: dict) -> dict:
        """The newest state: the last whole line of the journal that follows this file, if any."""
        try:
            with open(self.log_path, 'rb') as handle:  # lines, then the zeros not written yet
                lines = handle.read().rstrip(b'\0').split(b'\n')
        except OSError:
            return state
        try:
            head = json.loads(lines[0])
        except ValueError:
            return state  # cut short while it was started: nothing in it was acknowledged
        if not isinstance(head, dict) or not head.get('journal') or \
                head.get('journal') != state.get('journal'):
            return state  # a journal of an earlier whole write
        newest = state
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                break  # the torn last line of a write a crash cut short: never acknowledged
            if isinstance(entry, dict) and entry.get('version') == STATE_VERSION:
                newest = entry
        return newest

    def save(self, state: dict, whole: bool = False, early: bool = False) -> bool:
        """Write state durably; False when the disk refused. whole: the whole file, not a
        journal line (a stop). early: compact once the journal is three quarters full, not
        full (the state thread's saves: the whole write, 5 ms under load, then falls on them,
        not on the Discord sender's save before a post). A failing folder (read-only, removed,
        full) is one line naming the path and the errno, repeated at most every 10 minutes with
        a count, and one line when a write succeeds again. It never raises."""
        with self._lock:
            text = json.dumps(state, separators=(',', ':'), default=str)
            room = self.compact_bytes * (0.75 if early else 1.0)
            try:
                if whole or self._log_fd is None or \
                        self._log_bytes + len(text) + 1 > room:
                    try:
                        self._write_whole(state)
                    except OSError:
                        if self._log_fd is None or self._log_bytes > 8 * self.compact_bytes:
                            self._appended = False  # this save reached no disk at all
                            raise
                        self._append(text)  # the journal still takes it: saved, and said
                        raise
                else:
                    try:
                        self._append(text)
                    except OSError:  # the journal is gone or failing: the whole file then
                        self._write_whole(state)
            except OSError as exc:
                self._write_failed(exc)
                return self._log_fd is not None and self._appended
            if self._failing_since is not None:
                log.warning('state file %s written again, after %d failed write(s) over %s',
                            self.path, self._failures,
                            duration(time.monotonic() - self._failing_since))
                self._failing_since, self._failures = None, 0
                self._failure_logged = -math.inf
            return True

    def _append(self, text: str) -> None:
        """One line, written over the journal's zeros at its end, then fdatasync."""
        self._appended = False
        fd = self._log_fd
        try:
            # The journal must still be the one at the path: a folder removed or renamed under
            # a running bot would otherwise take the saves into an unreachable file.
            if os.stat(self.log_path).st_ino != self._log_ino:
                raise FileNotFoundError(errno.ENOENT, 'the journal was replaced', self.log_path)
            data = (text + '\n').encode()
            _write_at(fd, data, self._log_bytes)
            os.fdatasync(fd) if hasattr(os, 'fdatasync') else os.fsync(fd)
        except OSError:
            self._close_journal()  # the next save writes the whole file
            raise
        self._log_bytes += len(data)
        self._appended = True

    def _write_whole(self, state: dict) -> None:
        """The whole file, atomically (temp file, fsync, rename, folder fsync); then a new
        journal that names it."""
        generation = uuid.uuid4().hex
        text = json.dumps({**state, 'journal': generation}, separators=(',', ':'), default=str)
        folder = os.path.dirname(os.path.abspath(self.path))
        temp = None
        try:
            fd, temp = tempfile.mkstemp(prefix=self._temp_prefix, suffix='.tmp', dir=folder)
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            temp = None
            _fsync_folder(folder)  # make the rename itself durable
        finally:
            if temp is not None:
                try:
                    os.unlink(temp)
                except OSError:
                    pass
        # Only now, with the whole file durable, may the old journal go.
        self._close_journal()
        created = not os.path.exists(self.log_path)
        # O_BINARY: offsets count bytes, so Windows must not turn \n into \r\n.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     getattr(os, 'O_BINARY', 0), 0o600)
        head = (json.dumps({'journal': generation}) + '\n').encode()
        try:
            _write_at(fd, head, 0)
            # The journal's blocks are written and its size set once, here (zeros after its
            # head; 0.7 ms for 1 MB): each save then writes over zeros, and its fdatasync flushes
            # that data alone. An append also changes the size, and its fdatasync waits for the
            # filesystem's own journal: on a busy machine (both cores loaded) p99 4 ms against
            # 0.16 ms in place (ext4, measured 2026-12-01). Not when no line of this size would
            # fit (every save is whole then), nor when the disk has no room for it: then the
            # journal grows line by line, as an append.
            zeros = self.compact_bytes - len(head)
            if len(text) < zeros:
                try:
                    _write_at(fd, bytes(zeros), len(head))
                except OSError as exc:
                    os.ftruncate(fd, len(head))
                    log_throttled(logging.WARNING, 'journal-room', 'state file journal %s: no '
                                  'room to make it %d bytes ahead (%s); it grows as it is written',
                                  self.log_path, self.compact_bytes, exc.strerror or exc)
            os.fsync(fd)
            self._log_ino = os.fstat(fd).st_ino
        except OSError:
            os.close(fd)
            raise
        self._log_fd, self._log_bytes = fd, len(head)
        self._appended = True
        if created:
            _fsync_folder(folder)

    def _close_journal(self) -> None:
        if self._log_fd is not None:
            try:
                os.close(self._log_fd)
            except OSError:
                pass
            self._log_fd = None

    def _write_failed(self, exc: OSError) -> None:
        clock = time.monotonic()
        if self._failing_since is None:
            self._failing_since = clock
        self._failures += 1
        if clock - self._failure_logged < self.failure_log_every_s:
            return
        self._failure_logged = clock
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        where = exc.filename or os.path.dirname(os.path.abspath(self.path))
        log.error('cannot write the state file %s (%s %s: %s): alerts still go out, but until '
                  'it works again a restart may repeat or miss some; retrying at every change%s',
                  self.path,
                  code, exc.errno, f'{exc.strerror} ({where})' if exc.strerror else exc,
                  f' ({self._failures} failed writes so far)' if self._failures > 1 else '')


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        if hasattr(os, 'pwrite'):
            written = os.pwrite(fd, view, offset)
        else:  # Windows
            os.lseek(fd, offset, os.SEEK_SET)
            written = os.write(fd, view)
        view, offset = view[written:], offset + written


def _fsync_folder(folder: str) -> None:
    if hasattr(os, 'O_DIRECTORY'):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class StateSaver:
    """Writes the state file from its own thread whenever asked, so no receive thread waits on
    the disk; requests that arrive during a write are merged into the next one. The Discord
    sender also saves by itself (save_now) when an alert it is about to post is not saved yet:
    one thread handoff fewer on the alert path. Each save is a snapshot and its write under one
    lock, so saves reach the disk in the order of their snapshots, and a request that a save
    already covered does not cause another."""

    def __init__(self, store: StateFile, snapshot: Callable[[], dict],
                 on_saved: Callable[[dict | None], None] = lambda state: None):
        self.store, self.snapshot, self.on_saved = store, snapshot, on_saved
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._asked_lock = threading.Lock()
        self._asked = self._saved = 0  # requests counted; the count the last save covered
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name='state', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        with self._asked_lock:
            self._asked += 1
        self._wanted.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wanted.wait()
            self._wanted.clear()
            if not self._stopped:
                self.save_now(unless=lambda: self._asked == self._saved, early=True)

    def save_now(self, whole: bool = False, unless: Callable[[], bool] | None = None,
                 early: bool = False) -> bool:
        """Snapshot and write. unless: checked once the lock is held; True when a save that
        just ended already holds what the caller wanted saved (then nothing is written)."""
        with self._lock:
            if unless is not None and unless():
                return True
            asked = self._asked  # every change asked for until now is in the snapshot below
            state = None
            try:
                state = self.snapshot()
                return self.store.save(state, whole=whole, early=early)
            except Exception:
                log.exception('could not snapshot the state')
                return False
            finally:
                self._saved = asked
                self.on_saved(state)

    def stop(self) -> bool:
        self._stopped = True
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return self.save_now(whole=True)  # at rest, the state is one whole file


class Notifier:
    """The alert policy: turns BybitWS events into alerts. It keeps the account categories and
    candle symbols of the settings, groups the fills of one order, diffs positions and balances
    against what it last alerted (in the AccountJournal, which has already refused repeats and
    stale updates), learns the account silently on a first start, posts the startup alert before
    any other, and records what it alerted, so that a restart neither repeats nor loses an alert.
    Formatting errors become a plain fallback alert, never silence.

    Time comes from `clock` and the grouping timer is `tick(now)`, so the policy runs without
    threads or sockets; `start()` adds the thread that calls `tick` when something is due.
    `feed(kind, items)` runs items through the journal and the policy, as BybitWS does."""

    def __init__(self, cfg: Settings, sender: Any, state: dict | None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg, self.sender, self.clock = cfg, sender, clock
        # A first run stopped before it learned the account is still a first run next time.
        self.fresh = state is None or state.get('first_run') is True
        self.journal = AccountJournal.from_state(state, cfg.category, cfg.period)
        self.on_change: Callable[[], None] = lambda: None
        self.ws: BybitWS | None = None
        self._lock = threading.RLock()
        self._timer = threading.Condition(self._lock)
        self._stopped = False
        # A first start (no state file) learns the account without alerting it: the startup REST
        # reads (set_baseline) and the REST rows of the first private resync are the baseline.
        self.baseline_pending = self.fresh
        # Categories the last run did not watch (an upgrade from 2.0.0, a wider BYBIT_CATEGORIES):
        # their first resync is a baseline too, or every order and position in them would be news.
        self.new_categories = set() if self.fresh or not cfg.has_keys else \
            set(cfg.categories) - set(self.journal.categories)
        self._held: list | None = []  # account alerts wait here until the startup alert is out
        self._groups: dict = {}
        self._wallet_pending: dict | None = None
        self._down_alerted: dict = {}
        self._last_down_alert: dict = {}
        self._alerted_once: set = set()
        self._handlers = {'order': self._order, 'execution': self._fill,
                          'position': self._position, 'wallet': self._account,
                          'kline': self._candle}

    def callbacks(self) -> dict:
        return {'event': self.on_event, 'status': self.on_status}

    @property
    def event_kinds(self) -> frozenset:
        """The kinds of event the policy acts on (BybitWS.event_kinds)."""
        return frozenset(self._handlers)

    def start(self) -> None:
        threading.Thread(target=self._run_timer, name='alert-timer', daemon=True).start()

    def stop(self) -> None:
        """Flush the fills and balance change still being grouped, and anything held back."""
        with self._lock:
            self._stopped = True
            for key in list(self._groups):
                self._flush_group(key)
            self._flush_wallet()
            self._release()
            self._timer.notify_all()

    def post_startup(self, embed: dict) -> None:
        """Send the startup alert, then the alerts that arrived while the bot was starting: the
        startup alert always comes first."""
        with self._lock:
            self.sender.send(embed)
            self._release()
            self.on_change()

    # -- helpers ---------------------------------------------------------------------------------

    def _emit(self, kind: str, raw: Any, formatter: Callable[..., dict | None], *args: Any,
              hold: bool = True, **kwargs: Any) -> None:
        try:
            embed = formatter(*args, **kwargs)
        except Exception as exc:
            log.exception('the %s formatter failed; sending the raw event instead', kind)
            embed = format_fallback(kind, raw, f'{type(exc).__name__}: {trim(exc, 100)}')
        if embed:
            if self._held is not None and hold:
                self._held.append(embed)
            else:
                self.sender.send(embed)
            self.on_change()

    def _release(self) -> None:
        held, self._held = self._held or [], None
        for embed in held:
            self.sender.send(embed)

    def _quiet(self, event: Event) -> bool:
        """A REST row while a first start (or a newly watched category) is still being learned:
        baseline, not news."""
        return event.source != 'live' and (self.baseline_pending or
                                           event.category in self.new_categories)

    # -- events ----------------------------------------------------------------------------------

    def feed(self, kind: str, items: list, *, category: str = '', source: str = 'live') -> None:
        """Items as BybitWS hands them on: through the journal, then the policy."""
        with self.journal.batch:
            for event in self.journal.ingest(kind, items, category=category, source=source):
                self.on_event(None, event)

    def on_event(self, ws: BybitWS | None, event: Event) -> None:
        """Each item of an event under the lock. An item that breaks the policy is sent raw: an
        alert is never lost to a bug or an odd field."""
        handle = self._handlers.get(event.kind)
        if handle is None or (event.kind == 'kline' and
                              not any(c.get('confirm') is True for c in event.items)):
            return  # the open candle's updates (most of a kline stream) change nothing here
        if event.kind in ('order', 'execution', 'position'):
            if not event.category:  # Bybit names it on every V5 item; if not, the name's or ours
                event = event._replace(category=derive_category(event.symbol) or self.cfg.category)
            if event.category not in self.cfg.categories:
                return  # BYBIT_CATEGORIES: the journal knows it, the trader asked not to hear it
        with self._lock:
            for index, item in enumerate(event.items):
                try:
                    handle(event, item, event.before[index] if event.before else None)
                except Exception as exc:
                    log.exception('could not process a %s event; sending it raw', event.kind)
                    self._emit(event.kind, item, format_fallback, event.kind, item,
                               f'{type(exc).__name__}: {trim(exc, 100)}')
            self._timer.notify_all()
            self.on_change()

    def _order(self, event: Event, order: dict, before: str | None) -> None:
        status = order.get('orderStatus')
        if not status or before == status:
            return  # the same status again, e.g. the two Filled of a cancel/fill race
        if self._quiet(event) or not self.cfg.order_notify:
            return
        self._emit('order', order, format_order, order, units_for(event.category, event.symbol),
                   recovered=event.source == 'recovered')

    def _fill(self, event: Event, fill: dict, _before: Any = None) -> None:
        key = f"{event.category}:{fill.get('orderId') or fill['execId']}"
        group = self._groups.setdefault(
            key, {'fills': [], 'event': event, 'due': self.clock() + self.cfg.exec_coalesce_s})
        group['fills'].append(fill)
        if event.source != 'live':
            group['due'] = 0.0  # a REST batch arrives whole: the timer flushes right after it
        elif ((fill.get('execType') or 'Trade') != 'Trade' or dec(fill.get('leavesQty')) == 0
              or self.cfg.exec_coalesce_s == 0):
            self._flush_group(key)  # no more fills will come: the order is done, or not a trade

    def _flush_group(self, key: str) -> None:
        group = self._groups.pop(key)
        fills, event = group['fills'], group['event']
        if self.cfg.execution_notify:
            self._emit('execution', fills, format_execution, fills,
                       units_for(event.category, event.symbol),
                       recovered=event.source == 'recovered')
        self.on_change()

    def _position(self, event: Event, position: dict, _before: Any = None,
                  silent: bool = False) -> None:
        cur = position_view(position)
        key = position_key(event.category, position)
        views = self.journal.position_views
        prev = views.get(key) or flat_position(cur)
        change = classify_position(prev, cur)
        if change is None and prev['size'] != '0':  # keep the last alerted liq: drift adds up
            cur['liq'] = prev['liq']
        views.pop(key, None)
        if cur['size'] != '0':
            views[key] = cur
            _bounded(views, POSITION_MEMORY)
        if change is None or silent or self._quiet(event) or not self.cfg.position_notify:
            return
        self._emit('position', position, format_position, change, prev, cur,
                   units_for(event.category, cur['symbol']), event.source == 'recovered')

    def _account(self, event: Event, account: dict, _before: Any = None,
                 silent: bool = False) -> None:
        balances = self.journal.balances
        rows = list(account.get('coin') or ())
        if event.source != 'live' and self.journal.wallet_complete:
            # A REST read lists every coin with a balance (docs/v5/account/wallet-balance.mdx):
            # a known coin it leaves out is at 0 now.
            listed = {row.get('coin') for row in rows}
            rows += [{'coin': coin, 'walletBalance': '0'} for coin, text in balances.items()
                     if coin not in listed and text != '0']
        for row in rows:
            coin = row.get('coin')
            if not isinstance(coin, str) or dec(row.get('walletBalance')) is None:
                continue
            balance = fmt_num(row['walletBalance'])
            before = balances.get(coin)
            if before is None and self.journal.wallet_complete:
                before = '0'  # Bybit lists every coin with a balance (wallet-balance.mdx): new
            balances.pop(coin, None)
            balances[coin] = balance
            _bounded(balances, COIN_MEMORY)
            if before is None or before == balance or not self.cfg.wallet_notify or silent or \
                    self._quiet(event):
                continue  # a coin first seen before a whole wallet was read is learned only
            # Every fill moves a balance (fee, PnL): one alert per burst, listing each coin.
            pending = self._wallet_pending
            if pending is None:
                pending = self._wallet_pending = {
                    'before': {}, 'after': {}, 'recovered': event.source == 'recovered',
                    'due': self.clock() + max(self.cfg.exec_coalesce_s, 1.0)}
            pending['before'].setdefault(coin, before)
            pending['after'][coin] = (balance, row)
            pending['account'] = account
        if event.source != 'live':  # a REST read lists the whole wallet: coins not in it are 0
            self.journal.wallet_complete = True

    def _flush_wallet(self) -> None:
        pending, self._wallet_pending = self._wallet_pending, None
        if not pending:
            return
        changes = [(coin, pending['before'][coin], after, row)
                   for coin, (after, row) in pending['after'].items()
                   if after != pending['before'][coin]]
        if changes:
            self._emit('wallet', pending['account'], format_wallets, changes, pending['account'],
                       recovered=pending['recovered'])

    def _candle(self, event: Event, candle: dict, _before: Any = None) -> None:
        interval = str(candle.get('interval'))
        if candle.get('confirm') is not True or interval not in self.cfg.periods:
            return  # unconfirmed updates of the open candle give nothing
        if Market(event.category, event.symbol) not in self.cfg.symbols:
            return
        key = f'{event.category}:{event.symbol}:{interval}'
        start = int(candle.get('start') or 0)
        if start <= self.journal.candles.get(key, 0):
            return
        self.journal.candles.pop(key, None)
        self.journal.candles[key] = start
        _bounded(self.journal.candles, CANDLE_MEMORY)
        if self.cfg.ohlcv_notify:
            self._emit('kline', candle, format_kline, candle, event.symbol,
                       units_for(event.category, event.symbol),
                       recovered=event.source == 'recovered', category=event.category)

    def on_status(self, ws: BybitWS | None, event: dict) -> None:
        kind, stream = event.get('event'), event.get('stream')
        where = f"{stream}:{event.get('category') or ''}"
        with self._lock:
            # The first private resync's REST rows are the baseline of a first start, until the
            # whole resync has succeeded (a failed step is retried, and its rows are baseline too).
            if stream == 'private' and (kind == 'resynced' or (
                    kind == 'ready' and event.get('complete', True))):
                self.baseline_pending = False
                self.new_categories = set()
            if kind == 'down':
                # No storm while a connection flaps: one down alert per stream per 10 minutes.
                clock = self.clock()
                if clock - self._last_down_alert.get(where, -1e9) < 600:
                    return
                self._last_down_alert[where] = clock
                self._down_alerted[where] = True
            elif kind == 'restored':
                if not self._down_alerted.pop(where, False):
                    return
            elif kind == 'auth_rejected':
                if 'auth' in self._alerted_once:
                    return
                self._alerted_once.add('auth')
            elif kind == 'auth_ok':
                if 'auth' not in self._alerted_once:
                    return
                self._alerted_once.discard('auth')
            elif kind in ('topic_rejected', 'category_refused'):
                once = f"{kind}:{event.get('topic') or event.get('category')}"
                if once in self._alerted_once:
                    return
                self._alerted_once.add(once)
            elif kind != 'key_expiry':
                return
            # Trouble (a stream down, the key rejected) is never held back behind the startup
            # alert: that waits for the private auth, which is what may be failing.
            self._emit('status', event, format_status, event, hold=False)

    def set_baseline(self, positions: list, accounts: list) -> None:
        """Learn what the account looks like at a first start, without alerting it: later
        changes are alerted against it. positions: (category, rows) pairs."""
        with self._lock:
            batches = [('position', rows, category) for category, rows in positions]
            batches.append(('wallet', accounts, ''))
            for kind, rows, category in batches:
                for event in self.journal.ingest(kind, rows, category=category,
                                                 source='baseline'):
                    learn = self._position if kind == 'position' else self._account
                    for item in event.items:
                        try:
                            learn(event, item, silent=True)
                        except Exception:  # the live stream brings it again
                            log.exception('could not learn a %s row at startup', kind)
            self.on_change()

    # -- timer and state -------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> float | None:
        """Flush the fill groups and the balance change due at `now` (default: the clock); return
        when the next one is due, on the same clock, or None when nothing waits."""
        with self._lock:
            now = self.clock() if now is None else now
            for key in [k for k, g in self._groups.items() if g['due'] <= now]:
                self._flush_group(key)
            if self._wallet_pending and self._wallet_pending['due'] <= now:
                self._flush_wallet()
            return self._next_due()

    def _next_due(self) -> float | None:
        dues = [g['due'] for g in self._groups.values()]
        if self._wallet_pending:
            dues.append(self._wallet_pending['due'])
        return min(dues) if dues else None

    def _run_timer(self) -> None:
        with self._lock:
            while not self._stopped:
                try:
                    due = self.tick()
                except Exception:  # the timer must outlive any one alert
                    log.exception('could not flush a grouped alert')
                    due = self._next_due()
                self._timer.wait(None if due is None else max(due - self.clock(), 0.01))

    def snapshot(self) -> dict:
        """The state file's content. Taken under the lock that also covers queuing an alert and
        recording it as alerted, so the two are always saved together; and after any account
        item BybitWS is handing over (journal.batch), so none is saved as seen but not alerted."""
        with self.journal.batch, self._lock:
            pending = [fill for group in self._groups.values() for fill in group['fills']]
            watermark_ms = None
            if self.ws is not None and not self.ws.watches_fills:
                # Fills are not watched: none is owed, so a later run that watches them starts
                # from when this one stopped, not from the last fill it ever saw.
                watermark_ms = self.ws.rest.server_now_ms()
            state = self.journal.snapshot(pending, watermark_ms)
            if self._wallet_pending:  # not alerted yet: a restart sees the change again
                state['wallet']['balances'].update(self._wallet_pending['before'])
            outbox, outbox_seq = self.sender.pending_state()
            outbox = list(outbox) + [{'embed': embed} for embed in self._held or ()]
            extra = {'first_run': True} if self.fresh and self.baseline_pending else {}
            return {'version': STATE_VERSION, 'saved_at': now_ms(), **extra,
                    'symbols': [str(market) for market in self.cfg.symbols],
                    'categories': list(self.cfg.categories if self.cfg.has_keys
                                       else self.journal.categories), **state,
                    'outbox': outbox, 'outbox_seq': outbox_seq}


def main_topics(cfg: Settings) -> list:
    """Only the topics the enabled alerts need: each candle symbol's kline of each period, on
    its category's stream; with keys, the account topics of the categories watched."""
    topics = [f'{m.category}:kline.{period}.{m.symbol}' for m in cfg.symbols
              for period in cfg.periods] if cfg.ohlcv_notify else []
    if cfg.has_keys:
        wanted = [name for name, on in (('order', cfg.order_notify),
                                        ('execution', cfg.execution_notify),
                                        ('position', cfg.position_notify),
                                        ('wallet', cfg.wallet_notify)) if on]
        topics += account_topics(cfg.categories, wanted)
    return topics


def explain_key_error(exc: BybitError) -> str:
    """One line saying why Bybit refused the key and what to do (docs/v5/error.mdx, faq.mdx)."""
    hints = {
        10003: 'the key does not exist on this environment: keys are per mainnet, testnet and '
               'demo; check BYBIT_IS_TESTNET and BYBIT_DEMO',
        10004: 'the signature is wrong: check BYBIT_API_SECRET',
        10007: 'authentication failed: check BYBIT_API_KEY and BYBIT_API_SECRET',
        10010: 'this IP is not in the key\'s IP whitelist',
        33004: 'the key has expired (keys without an IP binding expire after 90 days): create a '
               'new read-only key',
        -2015: 'the key has expired or lacks permissions: create a new read-only key',
    }
    return (f'Bybit rejected BYBIT_API_KEY ({exc.code} {exc.message}): '
            f'{hints.get(exc.code, "check the key")}')


def check_key(rest: BybitRest) -> dict:
    """Read the key's permissions and expiry (GET /v5/user/query-api); warn when it can trade or
    withdraw. Returns {'summary', 'days_left', 'expires', 'warnings'}."""
    return check_key_info(rest.get('/v5/user/query-api'))


def check_key_info(info: dict) -> dict:
    """check_key's verdict on one query-api answer."""
    perms = info.get('permissions') or {}
    granted = {scope: v for scope, v in perms.items() if isinstance(v, list) and v}
    warnings = []
    if info.get('readOnly') != 1:
        warnings.append('it can trade (Read-Write)')
    if any('Withdraw' in v for v in granted.values()):
        warnings.append('it can withdraw funds')
    for warning in warnings:
        log.warning('API key: %s; this bot only reads, so a Read-Only key is all it needs', warning)
    days_left, expires = None, str(info.get('expiredAt') or '')
    try:
        moment = dt.datetime.fromisoformat(expires.replace('Z', '+00:00'))  # 3.9: no Z suffix
        days_left = int((moment - dt.datetime.now(UTC)).total_seconds() // 86400)
    except ValueError:
        if isinstance(info.get('deadlineDay'), int) and info['deadlineDay'] >= 0 and expires:
            days_left = info['deadlineDay']
    summary = 'read-only' if not warnings else 'WARNING: ' + ', '.join(warnings)
    if days_left is not None:
        summary += f', expires in {days_left} day(s)'
        log.info('API key %s', summary)
    elif info.get('ips'):
        summary += ', IP-bound (no expiry)'
    return {'summary': summary, 'days_left': days_left, 'expires': expires, 'warnings': warnings}


def describe_watch(cfg: Settings, env: str, backlog: int) -> dict:
    """The startup alert's account-independent part: the categories, the candle symbols and
    periods, which alerts."""
    alerts = [name for name, on in (('orders', cfg.order_notify), ('fills', cfg.execution_notify),
                                    ('positions', cfg.position_notify),
                                    ('balances', cfg.wallet_notify)) if on and cfg.has_keys]
    watch = {'categories': list(cfg.categories) if cfg.has_keys else [], 'env': env,
             'alerts': alerts}
    if cfg.ohlcv_notify:
        alerts.append('candles')
        watch['candles'] = describe_candles(cfg)
    if backlog:
        watch['backlog'] = f'{backlog} alert(s) from the last run, delivered first'
    return watch


def describe_candles(cfg: Settings) -> str:
    """'BTCUSDT, ETHUSDT, SOLUSDT (spot) × 1m, 1h': the symbols, then the periods of each."""
    names = [f'{m.symbol} (spot)' if m.category == 'spot' else m.symbol for m in cfg.symbols]
    return f"{', '.join(names)} × {', '.join(period_label(p) for p in cfg.periods)}"


def read_positions(rest: BybitRest, categories: Iterable) -> list:
    """(category, open positions) for each category that has positions (not spot)."""
    return [(category, list_open_positions(rest, category)) for category in categories
            if category != 'spot']


def read_wallet(rest: BybitRest) -> list:
    return rest.get('/v5/account/wallet-balance', {'accountType': 'UNIFIED'}).get('list') or []


def read_account(cfg: Settings, rest: BybitRest, notifier: Notifier, watch: dict) -> dict:
    """At startup: the key's permissions and expiry, the open positions of every watched
    category and the whole wallet (signed REST GETs, all at once), into the startup alert; on a
    first run they are also the baseline for later alerts."""
    reads = [(category, [extra]) for category in cfg.categories if category != 'spot'
             for extra in settle_params(category)]  # linear: once per settle coin
    key, accounts, *lists = rest.get_many(
        [(check_key,), (read_wallet,)] + [(list_open_positions, *read) for read in reads])
    watch['api_key'] = key['summary']
    positions: list = []
    for (category, _), rows in zip(reads, lists):
        if positions and positions[-1][0] == category:
            positions[-1][1].extend(rows)
        else:
            positions.append((category, rows))
    if any(c != 'spot' for c in cfg.categories):
        watch['positions'] = describe_positions(positions)
    watch['balances'], watch['total_equity'] = describe_balances(accounts)
    if notifier.fresh:
        notifier.set_baseline(positions, accounts)
    return key


STARTUP_LIST_LIMIT = 10  # positions and coins listed in the startup alert; the rest are counted


def _notional_usd(category: str, row: dict) -> Decimal:
    """A position's size in USD terms, to list the largest first: an inverse size is in USD;
    a linear or option positionValue is in its settle coin (USDT or USDC)."""
    if category == 'inverse':
        return abs(dec(row.get('size')) or Decimal(0))
    value = dec(row.get('positionValue'))
    if value is None:
        value = (dec(row.get('size')) or Decimal(0)) * (dec(row.get('markPrice')) or Decimal(0))
    return abs(value)


def _bounded_lines(lines: list, noun: str) -> str:
    shown = lines[:STARTUP_LIST_LIMIT]
    if len(lines) > len(shown):
        shown.append(f'… and {len(lines) - len(shown)} more {noun}')
    return '\n'.join(shown)


def describe_positions(groups: list) -> str:
    """The open positions of every category for the startup alert, the largest first, one a
    line: 'BTCUSDT Long 0.5 BTC @ 95000, uPnL 8.50 USDT'; 'flat' when none is open."""
    rows = [(_notional_usd(category, row), category, position_view(row))
            for category, rows in groups for row in rows]
    rows.sort(key=lambda entry: entry[0], reverse=True)
    lines = []
    for _, category, view in rows:
        if view['size'] == '0':
            continue
        side = 'Long' if view['side'] == 'Buy' else 'Short'
        units = units_for(category, view['symbol'])
        line = f"{view['symbol']} {side} {view['size']} {units.qty}"
        if _set(view['entry']):
            line += f" @ {view['entry']}"
        if fmt_money(view['upnl'], units.value):
            line += f", uPnL {fmt_money(view['upnl'], units.value)} {units.value}"
        lines.append(line)
    return _bounded_lines(lines, 'positions') or 'flat'


def describe_balances(accounts: list) -> tuple:
    """(the non-zero coin balances, largest USD value first, one a line; the account's total
    equity in USD) for the startup alert. Bybit leaves out zero balances
    (docs/v5/account/wallet-balance.mdx); what it did not send is not shown."""
    coins, equity = [], ''
    for account in accounts:
        if fmt_money(account.get('totalEquity'), 'USD'):
            equity = f"{fmt_money(account['totalEquity'], 'USD')} USD"
        for row in account.get('coin') or ():
            coin = row.get('coin')
            if not isinstance(coin, str) or not dec(row.get('walletBalance')):
                continue
            text = f"{fmt_money(row['walletBalance'], coin)} {coin}"
            if fmt_money(row.get('equity'), coin) and dec(row.get('equity')) != \
                    dec(row.get('walletBalance')):
                text += f" (equity {fmt_money(row['equity'], coin)})"
            borrowed = _borrowed(coin, row)[1]
            if borrowed:
                text += f', {borrowed} borrowed'
            coins.append((abs(dec(row.get('usdValue')) or Decimal(0)), text))
    coins.sort(key=lambda entry: entry[0], reverse=True)
    return _bounded_lines([text for _, text in coins], 'coins') or 'no balance', equity


USAGE = """usage: python3 bybit_ws_notify.py [--check [--send-test]] [--help] [--version]

Bybit V5 account and market alerts, delivered to a Discord channel (README.md).
With no option it runs until Ctrl-C or SIGTERM.

options:
  --check      check the settings, the Bybit hosts, the clock, the key, the account and the
               Discord webhook; print a table with the fix for each failure; exit 0 if all pass
  --send-test  with --check: also post one sample of each alert kind, marked as a test
  --help       this text, with every setting and its current value
  --version    print the version"""


def help_text(env: Any) -> str:
    """USAGE and every setting with its current value (from the environment or the settings
    block), secrets masked."""
    raw = _raw_settings(env)
    width = max(len(name) for name in _SETTING_NAMES)
    lines = [USAGE, '', ('settings (edit the block at the top of the script, or set environment '
                         'variables; NAME= counts as not set):')]
    for row in _SPEC:
        source = 'env' if str(env.get(row.name) or '').strip() else 'default'
        lines.append(f'  {row.name:<{width}}  {shown_value(row, raw[row.name])}  ({source})')
        words = re.sub(r'[`*]|\[([^]]*)\]\([^)]*\)', lambda m: m.group(1) or '', row.help).split()
        line = ' ' * (width + 4)
        for word in words:
            if len(line) + len(word) > 99:
                lines.append(line.rstrip())
                line = ' ' * (width + 4)
            line += word + ' '
        lines.append(line.rstrip())
    lines.append(f'Booleans take {_BOOL_WORDS}.')
    return '\n'.join(lines)


def parse_args(argv: list) -> tuple:
    """(mode, error): mode is run, check, send-test, help or version."""
    flags = set(argv)
    unknown = sorted(flags - {'--check', '--send-test', '--help', '-h', '--version', '-V'})
    if unknown:
        return None, f'unknown option {unknown[0]}'
    if flags & {'--help', '-h'}:
        return 'help', None
    if flags & {'--version', '-V'}:
        return 'version', None
    if '--send-test' in flags and '--check' not in flags:
        return None, '--send-test goes with --check: python3 bybit_ws_notify.py --check --send-test'
    return ('send-test' if '--send-test' in flags else 'check' if flags else 'run'), None


# -- the self-check (--check) ---------------------------------------------------------------------
# What a trader runs once on a new server before going live: each row names the host or account
# fact it checked and, when it failed, the one thing to do about it.

# Bybit accepts a signed request when server_time - recv_window <= timestamp < server_time + 1000
# (docs/v5/guide.mdx, "Parameters for Authenticated Endpoints"): a clock 1 s fast is refused.
CHECK_CLOCK_MAX_MS = 1000


class CheckRow(NamedTuple):
    mark: str          # ✓ passed, ✗ failed, ! works but look at it, - skipped
    what: str
    result: str
    fix: str = ''


def probe_host(url: str) -> tuple:
    """(None, 'DNS, TCP, TLS ok') or (step, reason): resolve, connect and, for wss/https, complete
    a verified TLS handshake with the host of url, so a failure names the step that failed."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme in ('wss', 'https')
    host, port = parts.hostname or '', parts.port or (443 if secure else 80)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return 'DNS', f'cannot resolve {host} ({exc.strerror or exc})'
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        shown = addresses[0][4][0] if addresses else host
        return 'TCP', f'cannot connect to {shown} port {port} ({exc.strerror or exc})'
    try:
        if not secure:
            return None, 'DNS, TCP ok (plain, loopback)'
        context = ssl.create_default_context()
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                version = tls.version()
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, 'verify_message', '') or getattr(exc, 'reason', '') or str(exc)
            return 'TLS', f'TLS handshake with {host} failed ({reason})'
        return None, f'DNS, TCP, {version} ok'
    finally:
        sock.close()


def _host_fix(step: str, setting: str) -> str:
    return {
        'DNS': f'check the host name in {setting} (or leave it empty), and this server\'s DNS '
               '(/etc/resolv.conf)',
        'TCP': 'a firewall or the provider blocks the connection (outbound port 443), or the host '
               'is down; Bybit also blocks some regions',
        'TLS': 'something between you and the host intercepts TLS (a proxy or captive portal), '
               'or the system clock is far off; update ca-certificates',
        'HTTP': f'the host answers but not as Bybit does: check the path in {setting}',
    }[step]


def _check_stream(rows: list, what: str, setting: str, url: str, first: dict) -> Any:
    """Connect to a Bybit websocket, send `first` (ping or auth) and return its answer."""
    host = urllib.parse.urlsplit(url).hostname
    step, detail = probe_host(url)
    if step:
        rows.append(CheckRow('✗', what, f'{host}: {step} failed: {detail}', _host_fix(step, setting)))
        return None
    try:
        ws = websocket.create_connection(url, timeout=5)
    except websocket.WebSocketBadStatusException as exc:
        rows.append(CheckRow('✗', what, f'{host}: HTTP failed: the websocket upgrade was answered '
                             f'{exc.status_code}', _host_fix('HTTP', setting)))
        return None
    except (websocket.WebSocketException, OSError) as exc:
        rows.append(CheckRow('✗', what, f'{host}: HTTP failed: {trim(redact(str(exc)), 120)}',
                             _host_fix('HTTP', setting)))
        return None
    try:
        ws.send(json.dumps(first))
        answer = json.loads(ws.recv())
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        rows.append(CheckRow('✗', what, f'{host}: no answer to {first["op"]} ({type(exc).__name__})',
                             _host_fix('HTTP', setting)))
        return None
    finally:
        ws.close()
    rows.append(CheckRow('✓', what, f'{host}: {detail}, websocket {first["op"]} answered'))
    return answer


def _ws_auth(cfg: Settings, offset_ms: int) -> dict:
    """The private stream's auth request, signed as BybitWS signs it."""
    return dict(_Signer(cfg.api_key, cfg.api_secret, offset_ms).ws_auth(), req_id='check')


def _check_discord(rows: list, cfg: Settings) -> bool:
    if not cfg.webhook_url:
        rows.append(CheckRow('-', 'Discord webhook', 'none: alerts print to the console'))
        return False
    _, token = parse_webhook_url(cfg.webhook_url)
    register_secret(token)
    host = urllib.parse.urlsplit(cfg.webhook_url.strip()).hostname
    step, detail = probe_host(cfg.webhook_url.strip())
    if step:
        rows.append(CheckRow('✗', 'Discord webhook', f'{host}: {step} failed: {detail}',
                             _host_fix(step, 'DISCORD_WEBHOOK_URL')))
        return False
    # GET on a webhook returns its name and channel and posts nothing (discord.md "Related
    # endpoints"); it needs no other authorisation than the token in the URL.
    try:
        resp = requests.get(cfg.webhook_url.strip(), timeout=(5, 10))
    except requests.RequestException as exc:
        rows.append(CheckRow('✗', 'Discord webhook', f'{host}: HTTP failed: '
                             f'{type(exc).__name__}', 'try again; check the server\'s network'))
        return False
    if resp.status_code in (401, 404):
        gone = resp.status_code == 404
        rows.append(CheckRow(
            '✗', 'Discord webhook',
            f'Discord answered {resp.status_code}: ' + ('the webhook does not exist (deleted?)'
                                                       if gone else 'the token is wrong'),
            'create a webhook (README: Create the Discord webhook) and copy its URL into '
            'DISCORD_WEBHOOK_URL' if gone else 'copy the webhook URL again, whole'))
        return False
    if resp.status_code != 200:
        rows.append(CheckRow('✗', 'Discord webhook', f'Discord answered HTTP {resp.status_code}',
                             'try again later'))
        return False
    try:
        hook = resp.json()
    except ValueError:
        hook = {}
    where = f"channel {hook.get('channel_id')}" + (f", server {hook['guild_id']}"
                                                     if hook.get('guild_id') else '')
    mark, note = ('✓', '') if cfg.discord_notify else ('!', ' (but DISCORD_NOTIFY is false)')
    rows.append(CheckRow(mark, 'Discord webhook', f"\"{escape_plain(hook.get('name'))}\" posts "
                         f'to {where}{note}',
                         '' if cfg.discord_notify else 'set DISCORD_NOTIFY=true to post alerts'))
    return True


def escape_plain(value: Any) -> str:
    return ''.join(ch for ch in str(value or '') if ch.isprintable())


def _check_account(rows: list, cfg: Settings, rest: BybitRest, offset_ms: int) -> None:
    try:
        info = rest.get('/v5/user/query-api')
    except BybitError as exc:
        if exc.key_rejected:
            rows.append(CheckRow('✗', 'API key', f'Bybit rejected it ({exc.code} {exc.message})',
                                 explain_key_error(exc).split(': ', 1)[-1]))
        else:
            rows.append(CheckRow('✗', 'API key', f'could not read it: {exc}', 'try again'))
        return
    key = check_key_info(info)
    mark = '!' if key['warnings'] or (key['days_left'] is not None and key['days_left'] <= 7) else '✓'
    rows.append(CheckRow(mark, 'API key', key['summary'],
                         'create a Read-Only key (README: A read-only Bybit API key)'
                         if key['warnings'] else 'create a new key before it expires'
                         if mark == '!' else ''))
    # query-api's `uta` is 1 for a unified trading account (docs/v5/user/apikey-info.mdx); the
    # classic account is "now unavailable" (docs/v5/acct-mode.mdx).
    if info.get('uta') == 1:
        rows.append(CheckRow('✓', 'Account type', 'Unified Trading Account'))
    else:
        rows.append(CheckRow('✗', 'Account type', 'classic account (not Unified)',
                             'upgrade to the Unified Trading Account on bybit.com; on a classic '
                             'account only orders and fills can be alerted (set '
                             'BYBIT_WALLET_NOTIFY=false)'))
    answer = _check_stream(rows, 'Private stream', 'BYBIT_WS_PRIVATE_URL', cfg.private_url,
                           _ws_auth(cfg, offset_ms))
    if answer is not None and answer.get('success'):
        rows[-1] = rows[-1]._replace(result=rows[-1].result.replace('websocket auth answered',
                                                                    'key accepted'))
    elif answer is not None:
        rows[-1] = CheckRow('✗', 'Private stream', f"key refused on the websocket "
                            f"({trim(answer.get('ret_msg'), 80)})",
                            'check BYBIT_API_KEY/BYBIT_API_SECRET and the environment '
                            '(BYBIT_IS_TESTNET, BYBIT_DEMO)')
    try:
        positions = read_positions(rest, cfg.categories)
        if positions:  # one table line each: the alert's lines joined
            rows.append(CheckRow('✓', 'Positions', describe_positions(positions).replace('\n', '; ')))
        balances, equity = describe_balances(read_wallet(rest))
        rows.append(CheckRow('✓', 'Balances', balances.replace('\n', '; ') + (
            f'; total equity {equity}' if equity else '')))
    except BybitError as exc:
        rows.append(CheckRow('✗', 'Positions and balances', f'could not read them: {exc}',
                             'give the key read access to Contracts and Unified Trading'))


def run_check(env: Any, send_test: bool) -> int:
    """--check: print a ✓/✗ table of the settings, hosts, clock, key, account and webhook."""
    rows: list = []
    try:
        cfg = load_settings(env)
    except SettingError as exc:
        rows.append(CheckRow('✗', 'Settings', redact(str(exc)), 'fix this setting (see --help)'))
        return _print_check(rows)
    register_secret(cfg.api_secret)
    rows.append(CheckRow('✓', 'Settings', f'valid: {describe_candles(cfg)} on '
                         f'{environment(cfg)}, {"Discord" if cfg.discord_notify else "console"}'))
    rows += [CheckRow('!', 'Settings', warning) for warning in setting_warnings(cfg)]
    if any(not is_private_topic(topic) for topic in main_topics(cfg)):
        for category, url in cfg.public_urls.items():  # each category with candle symbols
            name = 'Public stream' if len(cfg.public_urls) == 1 else f'Public {category} stream'
            _check_stream(rows, name, 'BYBIT_WS_PUBLIC_URL', url, {'req_id': 'check', 'op': 'ping'})
    rest = BybitRest(cfg.rest_url, cfg.api_key, cfg.api_secret,
                     timeout=(min(5.0, cfg.rest_timeout_s), cfg.rest_timeout_s))
    host = urllib.parse.urlsplit(cfg.rest_url).hostname
    offset_ms = None
    step, detail = probe_host(cfg.rest_url)
    if step:
        rows.append(CheckRow('✗', 'REST API', f'{host}: {step} failed: {detail}',
                             _host_fix(step, 'BYBIT_REST_URL')))
    else:
        try:
            offset_ms = rest.sync_clock()
            rows.append(CheckRow('✓', 'REST API', f'{host}: {detail}, GET /v5/market/time answered'))
        except BybitError as exc:
            rows.append(CheckRow('✗', 'REST API', f'{host}: HTTP failed: {exc}',
                                 _host_fix('HTTP', 'BYBIT_REST_URL')))
    if offset_ms is not None:
        side = 'behind' if offset_ms > 0 else 'ahead of'
        shown = f'this machine is {abs(offset_ms)} ms {side} Bybit'
        if abs(offset_ms) < CHECK_CLOCK_MAX_MS:
            rows.append(CheckRow('✓', 'Clock', shown))
        else:
            rows.append(CheckRow('✗', 'Clock', shown, 'turn on time sync: sudo timedatectl '
                                 'set-ntp true (the bot corrects for the offset, but a drifting '
                                 'clock gets requests refused)'))
    if not cfg.has_keys:
        rows.append(CheckRow('-', 'API key', 'none: public-only (candle alerts)'))
    elif offset_ms is not None:
        _check_account(rows, cfg, rest, offset_ms)
    else:
        rows.append(CheckRow('-', 'API key', 'not checked: the REST API is unreachable'))
    webhook_ok = _check_discord(rows, cfg)
    if send_test:
        if any(row.mark == '✗' for row in rows):
            rows.append(CheckRow('-', 'Test alerts', 'not sent: fix the ✗ above first'))
        else:
            rows.append(send_test_alerts(cfg if webhook_ok else cfg._replace(webhook_url='')))
    return _print_check(rows)


def _print_check(rows: list) -> int:
    print(f'bybit_ws_notify {__version__} self-check')
    width = max(len(row.what) for row in rows)
    for row in rows:
        print(f'  {row.mark} {row.what:<{width}}  {row.result}')
        if row.fix:
            print(f'  {"":<{width + 2}}  fix: {row.fix}')
    failed = sum(row.mark == '✗' for row in rows)
    print('All checks passed.' if not failed else
          f'{failed} check(s) failed: fix them and run --check again.')
    return 1 if failed else 0


def environment(cfg: Settings) -> str:
    return 'demo' if cfg.demo else 'testnet' if cfg.is_testnet else 'mainnet'


def sample_alerts() -> list:
    """One sample of each alert kind, built by the real formatters from Bybit's example payloads
    (docs/v5/websocket/private/*.mdx), each marked as a test."""
    units = units_for('linear', 'BTCUSDT')
    now = str(now_ms())  # the payloads' own times are from 2025: a test alert happens now
    minute = now_ms() // 60_000 * 60_000 - 60_000
    fill = {'category': 'linear', 'symbol': 'BTCUSDT', 'closedSize': '0.5', 'execFee': '26.3725275',
            'execId': '0ab1bdf7-4219-438b-b30a-32ec863018f7', 'execPrice': '95900.1',
            'execQty': '0.5', 'execType': 'Trade', 'execValue': '47950.05', 'feeRate': '0.00055',
            'markPrice': '95901.48', 'leavesQty': '0', 'orderId': '9aac161b-8ed6-450d-9cab-c5cc67c21784',
            'orderLinkId': '', 'orderPrice': '94942.5', 'orderQty': '0.5', 'orderType': 'Market',
            'stopOrderType': 'UNKNOWN', 'side': 'Sell', 'execTime': now,
            'isMaker': False, 'execPnl': '0.05', 'feeCurrency': 'USDT'}
    order = {'category': 'linear', 'symbol': 'BTCUSDT', 'orderId': fill['orderId'], 'side': 'Sell',
             'orderType': 'Market', 'price': '94942.5', 'qty': '0.5', 'timeInForce': 'IOC',
             'orderStatus': 'Filled', 'orderLinkId': '', 'cumExecQty': '0.5',
             'cumExecValue': '47950.05', 'avgPrice': '95900.1', 'cumExecFee': '26.3725275',
             'leavesQty': '0', 'createdTime': now, 'updatedTime': now,
             'rejectReason': 'EC_NoError', 'cancelType': 'UNKNOWN', 'stopOrderType': '',
             'positionIdx': 0}
    position = {'category': 'linear', 'symbol': 'BTCUSDT', 'side': 'Buy', 'size': '0.5',
                'entryPrice': '95850', 'avgPrice': '95850', 'markPrice': '95901.48', 'liqPrice': '',
                'takeProfit': '0', 'stopLoss': '0', 'unrealisedPnl': '25.74', 'curRealisedPnl': '0',
                'positionIdx': 0, 'updatedTime': now, 'leverage': '10'}
    before = position_view(dict(position, side='', size='0', entryPrice='0', avgPrice='0'))
    account = {'accountType': 'UNIFIED', 'totalEquity': '10262.91335023',
               'totalAvailableBalance': '9556.6056555'}
    coin = {'coin': 'USDT', 'equity': '1037.5', 'walletBalance': '1037.5', 'unrealisedPnl': '0'}
    candle = {'start': minute, 'end': minute + 59_999, 'interval': '1', 'open': '16649.5',
              'close': '16677', 'high': '16677', 'low': '16608', 'volume': '2.081',
              'turnover': '34666.4005', 'confirm': True, 'timestamp': minute + 60_000}
    embeds = [
        format_order(order, units),
        format_execution([fill], units),
        format_position('opened', before, position_view(position), units),
        format_wallet('USDT', '1000', '1037.5', account, coin),
        format_kline(candle, 'BTCUSDT', units),
        format_status({'event': 'down', 'stream': 'private', 'down_s': 60}),
        format_status({'event': 'restored', 'stream': 'private', 'down_s': 75,
                       'recovered_fills': 1}),
    ]
    marked = []
    for embed in embeds:
        footer = (embed.get('footer') or {}).get('text', '')
        marked.append(dict(embed, title=f"[TEST] {embed['title']}",
                           footer={'text': ' · '.join(p for p in ('test alert from --send-test',
                                                                   footer) if p)}))
    return marked


def send_test_alerts(cfg: Settings) -> CheckRow:
    """--send-test: post the samples as Discord (or the console) would show real alerts."""
    alerts = sample_alerts()
    if not cfg.webhook_url:
        console = ConsoleSender()
        for embed in alerts:
            console.send(embed)
        return CheckRow('✓', 'Test alerts', f'{len(alerts)} printed above (console mode)')
    sender = DiscordSender(cfg.webhook_url, ban_cooldown_s=cfg.ban_cooldown_s,
                           retry_max_s=cfg.retry_max_s, timeout_s=cfg.discord_timeout_s)
    for embed in alerts:
        sender.send(embed)
    sender.mark_persisted(None)  # nothing to persist: these are not account events
    sender.start()
    if sender.stop(timeout_s=30):
        return CheckRow('✓', 'Test alerts', f'{len(alerts)} posted to Discord: look at the channel')
    return CheckRow('✗', 'Test alerts', f'{len(sender.pending())} of {len(alerts)} not delivered',
                    'run with LOG_LEVEL=INFO and look at the Discord lines')


def main(argv: list | None = None) -> int:
    mode, error = parse_args(sys.argv[1:] if argv is None else argv)
    if error:
        print(f'bybit_ws_notify: {error}\n(python3 bybit_ws_notify.py --help lists the options)',
              file=sys.stderr)
        return 2
    if mode == 'help':
        print(help_text(os.environ))
        return 0
    if mode == 'version':
        print(f'bybit_ws_notify {__version__}')
        return 0
    if mode in ('check', 'send-test'):
        logging.getLogger().setLevel(logging.CRITICAL)  # the table says it all
        return run_check(os.environ, send_test=mode == 'send-test')
    try:
        cfg = load_settings()
    except SettingError as exc:
        print(f'bybit_ws_notify: bad setting: {redact(str(exc))}', file=sys.stderr)
        return 2
    try:
        setup_logging(cfg.log_level, cfg.log_file)
    except OSError as exc:  # the log file's folder missing or read-only: a setting to fix
        print(f'bybit_ws_notify: bad setting: LOG_FILE={cfg.log_file!r}: {exc.strerror} '
              f'({errno.errorcode.get(exc.errno, exc.errno)})', file=sys.stderr)
        return 2
    register_secret(cfg.api_secret)
    for warning in setting_warnings(cfg):
        log.warning(warning)
    stop = threading.Event()
    stop_reason = ['']

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            # A second Ctrl-C: stop waiting for Discord. The state file already holds every
            # queued alert; the last save below writes it once more, then we leave.
            left = len(sender.pending()) if sender is not None else 0
            log.warning('second Ctrl-C: not waiting for Discord; %d undelivered alert(s) go to '
                        'the state file %s for the next start', left, cfg.state_file)
            if sender is not None:
                sender.abandoned = True
            deadline = threading.Timer(5, os._exit, (130,))  # if the last save itself hangs
            deadline.daemon = True
            deadline.start()
            return
        stop_reason[0] = signal.Signals(signum).name
        stop.set()

    sender: Any = None
    # SIGHUP is what a closed terminal or `tmux kill-session` sends: a clean stop like SIGTERM.
    # Under nohup it is ignored on purpose (the README's recipe): then it stays ignored.
    for name in ('SIGINT', 'SIGTERM', 'SIGHUP'):
        number = getattr(signal, name, None)
        if number is not None and not (name == 'SIGHUP' and
                                       signal.getsignal(number) is signal.SIG_IGN):
            signal.signal(number, on_signal)
    started = time.monotonic()
    store = StateFile(cfg.state_file)
    state = store.load()
    backlog = _state_get(state or {}, 'outbox', list, [])
    if cfg.discord_notify:
        sender = DiscordSender(cfg.webhook_url, ban_cooldown_s=cfg.ban_cooldown_s,
                               retry_max_s=cfg.retry_max_s, timeout_s=cfg.discord_timeout_s,
                               backlog=backlog)
    else:
        sender = ConsoleSender()
        for item in backlog:
            if isinstance(item, dict) and isinstance(item.get('embed'), dict):
                sender.send(item['embed'], note='from the last run')
    notifier = Notifier(cfg, sender, state)
    saver = StateSaver(store, notifier.snapshot, on_saved=sender.mark_persisted)
    notifier.on_change = sender.on_change = saver.request
    sender.persist = saver.save_now

    topics = main_topics(cfg)
    env = environment(cfg)
    watch = describe_watch(cfg, env, len(backlog))
    ws = BybitWS(cfg.api_key, cfg.api_secret, cfg.is_testnet, cfg.symbol, topics,
                 notifier.callbacks(), symbols=cfg.symbols, categories=cfg.categories,
                 category=cfg.category, public_url=cfg.public_urls, private_url=cfg.private_url,
                 rest_url=cfg.rest_url, demo=cfg.demo, period=cfg.period,
                 ping_interval_s=cfg.ping_interval_s, watchdog_s=cfg.watchdog_s,
                 down_alert_s=cfg.down_alert_s, autostart=False, journal=notifier.journal,
                 fast_reader=True)
    ws.backoff_cap_s = cfg.reconnect_max_s
    ws.event_kinds = notifier.event_kinds
    # The alerts before the messages a second: let go of the GIL every 0.3 ms of buffered frames
    # (tests/bench.py: alert p99 7 ms under a 90k msgs/s kline flood; 1 ms gave 19 ms).
    ws.reader_yield_s = 0.0003
    _AlertsFirst.window_s = 0.002  # and while an alert is on its way, the public readers wait
    # A busy public stream is read at most every 0.1 s, so a candle alert may come 0.1 s later:
    # one wake-up then takes ten 10 ms bursts of tickers (tests/bench.py, account, 3,000 tickers
    # a second: script CPU 7.0-7.8 % of a core against 8.1-9.0 % without it).
    ws.public_gather_s = 0.1
    rest = ws.rest  # one REST client, so the clock correction serves the websocket auth too
    rest.timeout = (min(5.0, cfg.rest_timeout_s), cfg.rest_timeout_s)
    had_watermark = notifier.journal.exec_watermark_ms is not None

    def startup_reads() -> dict | None:
        try:  # before anything is signed or any time window is set
            rest.sync_clock()
        except BybitError as exc:
            log.warning('could not read Bybit server time (%s); using this machine\'s clock', exc)
        if not had_watermark:  # a first run alerts the fills from now on, by Bybit's clock
            notifier.journal.exec_watermark_ms = rest.server_now_ms()
        if not cfg.has_keys:
            log.info('no API keys: public-only: candles of %s', describe_candles(cfg))
            return None
        try:
            return read_account(cfg, rest, notifier, watch)
        except BybitError as exc:
            if exc.key_rejected or exc.code == 'stopped':
                raise
            log.warning('could not read the account at startup (%s); going on', exc)
            return None

    key = None
    running = False
    try:
        key = until_stopped(startup_reads, stop)
    except BybitError as exc:  # only a rejected key gets here
        log.error(explain_key_error(exc))
        return 2
    except _Stopped:
        log.info('stop asked during the startup reads (%s): skipping them',
                 stop_reason[0] or 'stop')
    if not stop.is_set():
        notifier.ws = ws
        # The journal holds what the last run knew; categories it did not watch start now.
        ws.seed(first_start=not had_watermark, new_categories=notifier.new_categories)
    saver.start()
    sender.start()
    notifier.start()
    if not stop.is_set():
        ws.start()
        running = True
        watched = [f'{describe_candles(cfg)} candles'] if cfg.ohlcv_notify else []
        if cfg.has_keys:
            watched.append(f"the {', '.join(cfg.categories)} account")
        log.info('watching %s on %s: %s', ' and '.join(watched), env, ', '.join(topics))

    if running and cfg.has_keys and any(is_private_topic(t) for t in topics):
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            result = ws.wait_authenticated(0.2)
            if result == 'rejected':
                ws.close()
                saver.stop()
                log.error('stopping: the API key was rejected at startup (see above)')
                return 2
            if result == 'ok':
                break
    if not stop.is_set():
        notifier.post_startup(format_startup(watch))

    next_key_check = time.monotonic() + 86400
    while not stop.is_set():
        if key and key['days_left'] is not None and key['days_left'] <= 7 and \
                notifier.journal.key_expiry_alerted != key['expires']:
            notifier.journal.key_expiry_alerted = key['expires']
            notifier.on_status(ws, {'event': 'key_expiry', 'days': key['days_left'],
                                    'expires': key['expires']})
        if stop.wait(60):
            break
        if cfg.has_keys and time.monotonic() >= next_key_check:  # even if the first read failed
            next_key_check = time.monotonic() + 86400
            try:
                key = until_stopped(lambda: check_key(rest), stop)
            except BybitError as exc:
                log.warning('daily API key check failed: %s', exc)
            except _Stopped:
                break

    # Stopping takes at most STOP_DRAIN_S plus about a second, whatever is in flight: REST calls
    # and a Discord post in progress are abandoned (their threads are daemons), not waited for.
    log.info('stopping (%s): flushing alerts', stop_reason[0] or 'stop')
    stopping = time.monotonic()
    ws.close(timeout_s=0.5)
    notifier.stop()
    sender.send(format_shutdown(stop_reason[0] or 'stop', time.monotonic() - started))
    delivered = sender.stop(timeout_s=max(cfg.drain_s - (time.monotonic() - stopping), 1.0))
    saved = saver.stop()
    if not delivered and saved:
        log.warning('%d alert(s) not delivered yet; kept in %s for the next start',
                    len(sender.pending()), cfg.state_file)
    elif not delivered:
        log.error('%d alert(s) not delivered, and the state file could not be written: they '
                  'are lost; each is in this log', len(sender.pending()))
        for item in sender.pending():
            log.error('undelivered alert: %s', embed_text(item['embed']).replace('\n', ' | '))
    if getattr(sender, 'abandoned', False):
        return 130  # interrupted twice: saved, but not the graceful stop
    log.info('stopped')
    return 0


class _Stopped(Exception):
    """A stop was asked while main() waited for a slow call."""


def until_stopped(fn: Callable[[], Any], stop: threading.Event) -> Any:
    """fn() on a daemon thread: its result or its exception, or _Stopped as soon as stop is set
    (fn is then abandoned: a Bybit read answering slowly must not hold up a stop)."""
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            box['result'] = fn()
        except BaseException as exc:  # noqa: BLE001 (handed over to the caller)
            box['error'] = exc
        finally:
            done.set()

    threading.Thread(target=run, name='startup-read', daemon=True).start()
    while not done.wait(0.1):
        if stop.is_set():
            raise _Stopped
    if 'error' in box:
        raise box['error']
    return box.get('result')


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BrokenPipeError:  # `--help | head`: the reader left; nothing to say, nowhere to say it
        _silence_stream(sys.stdout)
        sys.exit(0)
