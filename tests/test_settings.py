"""load_settings(env): defaults, the first version's names, and one clear SettingError per bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bybit_ws_notify as bot

ROOT = Path(__file__).resolve().parents[1]
WEBHOOK = 'https://discord.com/api/webhooks/123456789/Tok3n-Secret_value'
TOKEN = 'Tok3n-Secret_value'


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A settings environment with only the state file set (in tmp_path)."""
    return {'STATE_FILE': str(tmp_path / 'state.json')}


def load(env: dict[str, str], **overrides: str) -> bot.Settings:
    return bot.load_settings({**env, **overrides})


def error(env: dict[str, str], **overrides: str) -> str:
    with pytest.raises(bot.SettingError) as info:
        load(env, **overrides)
    return str(info.value)


# Defaults ########################################################################################

def test_defaults(env: dict[str, str]) -> None:
    cfg = load(env)
    assert cfg.discord_notify is False
    assert cfg.webhook_url == ''
    assert (cfg.api_key, cfg.api_secret, cfg.has_keys) == ('', '', False)
    assert (cfg.is_testnet, cfg.demo) == (False, False)
    assert (cfg.symbol, cfg.category, cfg.period) == ('BTCUSD', 'inverse', '1')
    assert (cfg.order_notify, cfg.execution_notify, cfg.position_notify, cfg.wallet_notify,
            cfg.ohlcv_notify) == (True, True, True, True, True)
    assert cfg.public_url == 'wss://stream.bybit.com/v5/public/inverse'
    assert cfg.private_url == 'wss://stream.bybit.com/v5/private'
    assert cfg.rest_url == 'https://api.bybit.com'
    assert cfg.state_file == env['STATE_FILE']
    assert (cfg.down_alert_s, cfg.ping_interval_s, cfg.watchdog_s, cfg.exec_coalesce_s,
            cfg.ban_cooldown_s) == (60, 20, 45, 1.0, 900)
    assert cfg.log_level == 'INFO'


def test_default_state_file_is_beside_the_script() -> None:
    cfg = bot.load_settings({})
    assert cfg.state_file == str(ROOT / 'bybit_ws_notify.state.json')


def test_first_version_names_keep_working(env: dict[str, str]) -> None:
    # The first version's settings block (seed/original_design_ja.md), every name as an env var.
    cfg = load(env, DISCORD_NOTIFY='True', DISCORD_WEBHOOK_URL=WEBHOOK, BYBIT_API_KEY='key123',
               BYBIT_API_SECRET='secret456', BYBIT_IS_TESTNET='True', BYBIT_SYMBOL='ETHUSD',
               BYBIT_ORDER_NOTIFY='False', BYBIT_EXECUTION_NOTIFY='False',
               BYBIT_POSITION_NOTIFY='False', BYBIT_OHLCV_NOTIFY='False', BYBIT_PERIOD='360')
    assert cfg.discord_notify is True
    assert cfg.webhook_url == WEBHOOK
    assert (cfg.api_key, cfg.api_secret, cfg.has_keys) == ('key123', 'secret456', True)
    assert cfg.is_testnet is True
    assert (cfg.symbol, cfg.category, cfg.period) == ('ETHUSD', 'inverse', '360')
    assert (cfg.order_notify, cfg.execution_notify, cfg.position_notify,
            cfg.ohlcv_notify) == (False, False, False, False)
    assert cfg.public_url == 'wss://stream-testnet.bybit.com/v5/public/inverse'


@pytest.mark.parametrize(('text', 'value'), [
    ('true', True), ('True', True), ('TRUE', True), ('1', True), ('yes', True), (' Yes ', True),
    ('false', False), ('False', False), ('0', False), ('no', False), ('NO', False)])
def test_booleans(env: dict[str, str], text: str, value: bool) -> None:
    cfg = load(env, BYBIT_ORDER_NOTIFY=text, BYBIT_OHLCV_NOTIFY=text, BYBIT_IS_TESTNET=text,
               BYBIT_API_KEY='k', BYBIT_API_SECRET='s')  # keys: all-false still watches fills
    assert (cfg.order_notify, cfg.ohlcv_notify, cfg.is_testnet) == (value, value, value)


@pytest.mark.parametrize('name', ['DISCORD_NOTIFY', 'BYBIT_IS_TESTNET', 'BYBIT_DEMO',
                                  'BYBIT_ORDER_NOTIFY', 'BYBIT_EXECUTION_NOTIFY',
                                  'BYBIT_POSITION_NOTIFY', 'BYBIT_WALLET_NOTIFY',
                                  'BYBIT_OHLCV_NOTIFY'])
def test_bad_boolean_names_the_setting(env: dict[str, str], name: str) -> None:
    message = error(env, **{name: 'maybe'})
    assert message.startswith(f"{name}='maybe'")
    assert 'true/false' in message


@pytest.mark.parametrize(('period', 'normalised'), [
    ('1', '1'), ('3', '3'), ('5', '5'), ('15', '15'), ('30', '30'), ('60', '60'), ('120', '120'),
    ('240', '240'), ('360', '360'), ('720', '720'), ('D', 'D'), ('d', 'D'), ('W', 'W'),
    ('M', 'M'), (' 15 ', '15')])
def test_periods(env: dict[str, str], period: str, normalised: str) -> None:
    assert load(env, BYBIT_PERIOD=period).period == normalised


@pytest.mark.parametrize('period', ['7', '0', '1m', '1h', '60m', 'Y', '01'])
def test_unknown_period(env: dict[str, str], period: str) -> None:
    message = error(env, BYBIT_PERIOD=period)
    assert message.startswith('BYBIT_PERIOD=')
    assert '1 3 5 15 30 60 120 240 360 720 D W M' in message


# Symbol and category #############################################################################

@pytest.mark.parametrize(('symbol', 'category'), [
    ('BTCUSD', 'inverse'), ('btcusd', 'inverse'), ('BTCUSDH25', 'inverse'),
    ('BTCUSDT', 'linear'), ('ETHPERP', 'linear'), ('ETHUSDC', 'linear'),
    ('BTC-26DEC25', 'linear')])
def test_category_derived_from_symbol(env: dict[str, str], symbol: str, category: str) -> None:
    cfg = load(env, BYBIT_SYMBOL=symbol)
    assert cfg.symbol == symbol.upper()
    assert cfg.category == category
    assert cfg.public_url == f'wss://stream.bybit.com/v5/public/{category}'


@pytest.mark.parametrize(('symbol', 'category'), [('BTCUSDT', 'inverse'), ('BTCUSD', 'linear'),
                                                  ('ETHPERP', 'inverse'), ('BTCUSD', 'spot')])
def test_symbol_category_mismatch(env: dict[str, str], symbol: str, category: str) -> None:
    message = error(env, BYBIT_SYMBOL=symbol, BYBIT_CATEGORY=category)
    assert f'BYBIT_SYMBOL={symbol!r}' in message
    assert f'BYBIT_CATEGORY={category!r}' in message


def test_spot_category(env: dict[str, str]) -> None:
    cfg = load(env, BYBIT_SYMBOL='ETHBTC', BYBIT_CATEGORY='Spot')
    assert (cfg.symbol, cfg.category) == ('ETHBTC', 'spot')
    assert cfg.public_url == 'wss://stream.bybit.com/v5/public/spot'
    assert cfg.position_notify is True   # the candles are spot; the account has every category
    only_spot = load(env, BYBIT_SYMBOL='ETHBTC', BYBIT_CATEGORY='Spot', BYBIT_CATEGORIES='spot')
    assert only_spot.position_notify is False  # spot has no positions


@pytest.mark.parametrize('category', ['futures', 'perp'])
def test_unknown_category(env: dict[str, str], category: str) -> None:
    message = error(env, BYBIT_CATEGORY=category)
    assert message.startswith(f'BYBIT_CATEGORY={category!r}')
    assert 'inverse, linear, spot' in message


def test_option_candles_are_refused_in_words(env: dict[str, str]) -> None:
    for name, value in (('BYBIT_CATEGORY', 'option'), ('BYBIT_SYMBOL', 'option:BTC-27DEC26-100000-C'),
                        ('BYBIT_SYMBOL', 'BTC-27DEC26-100000-C')):
        message = error(env, **{name: value})
        assert message.startswith(f'{name}=') and 'Bybit has no option kline' in message


def test_symbol_without_category(env: dict[str, str]) -> None:
    message = error(env, BYBIT_SYMBOL='ETHBTC')
    assert 'BYBIT_CATEGORY' in message
    assert "BYBIT_SYMBOL='ETHBTC'" in message


@pytest.mark.parametrize('symbol', ['BTC/USDT', 'BT', 'BTC USDT'])
def test_malformed_symbol(env: dict[str, str], symbol: str) -> None:
    assert error(env, BYBIT_SYMBOL=symbol).startswith('BYBIT_SYMBOL=')


# Discord #########################################################################################

def test_discord_notify_without_url(env: dict[str, str]) -> None:
    message = error(env, DISCORD_NOTIFY='true')
    assert message.startswith('DISCORD_NOTIFY is true but DISCORD_WEBHOOK_URL is empty')


@pytest.mark.parametrize('url', [
    'https://discord.com/api/webhooks/123456789/Tok3n-Secret_value',
    'https://discordapp.com/api/webhooks/123456789/Tok3n-Secret_value',
    'https://ptb.discord.com/api/v10/webhooks/123456789/Tok3n-Secret_value',
    'https://canary.discord.com/api/webhooks/123456789/Tok3n-Secret_value/',
    'http://127.0.0.1:8080/api/webhooks/123456789/Tok3n-Secret_value',
])
def test_good_webhook_urls(env: dict[str, str], url: str) -> None:
    cfg = load(env, DISCORD_NOTIFY='yes', DISCORD_WEBHOOK_URL=url)
    assert cfg.discord_notify is True
    assert cfg.webhook_url == url
    assert bot.parse_webhook_url(url) == ('123456789', TOKEN)


@pytest.mark.parametrize('url', [
    'https://example.com/api/webhooks/123456789/Tok3n-Secret_value',
    'http://discord.com/api/webhooks/123456789/Tok3n-Secret_value',
    'https://discord.com/api/channels/123456789/Tok3n-Secret_value',
    'https://discord.com/api/webhooks/abc/Tok3n-Secret_value',
    'https://discord.com.evil.io/api/webhooks/123456789/Tok3n-Secret_value',
    'discord.com/api/webhooks/123456789/Tok3n-Secret_value',
    'https://discord.com/api/webhooks/123456789/Tok3n-Secret_value/messages/1',
    'Tok3n-Secret_value',
])
def test_not_a_webhook_url_hides_the_token(env: dict[str, str], url: str) -> None:
    message = error(env, DISCORD_NOTIFY='true', DISCORD_WEBHOOK_URL=url)
    assert message.startswith('DISCORD_WEBHOOK_URL=')
    assert TOKEN not in message
    assert 'webhooks/<id>/<token>' in message


def test_bad_webhook_url_checked_even_with_notify_off(env: dict[str, str]) -> None:
    message = error(env, DISCORD_WEBHOOK_URL='https://example.com/api/webhooks/1/Tok3n-Secret_value')
    assert message == ('DISCORD_WEBHOOK_URL=https://example.com/api/webhooks/1/***: example.com is '
                       'not a Discord host (discord.com); accepts a Discord webhook URL, '
                       'https://discord.com/api/webhooks/<id>/<token>')


# Keys and environments ###########################################################################

def test_key_without_secret(env: dict[str, str]) -> None:
    message = error(env, BYBIT_API_KEY='key123')
    assert message.startswith('BYBIT_API_SECRET is empty')
    assert 'key123' not in message


def test_secret_without_key(env: dict[str, str]) -> None:
    message = error(env, BYBIT_API_SECRET='secret456')
    assert message.startswith('BYBIT_API_KEY is empty')
    assert 'secret456' not in message


@pytest.mark.parametrize('overrides', [
    {'BYBIT_OHLCV_NOTIFY': 'false'},                                   # no keys, no candles
    {'BYBIT_OHLCV_NOTIFY': 'no', 'BYBIT_API_KEY': 'k', 'BYBIT_API_SECRET': 's',
     'BYBIT_ORDER_NOTIFY': '0', 'BYBIT_EXECUTION_NOTIFY': '0', 'BYBIT_POSITION_NOTIFY': '0',
     'BYBIT_WALLET_NOTIFY': '0'},                                      # every alert off
])
def test_nothing_to_watch(env: dict[str, str], overrides: dict[str, str]) -> None:
    message = error(env, **overrides)
    assert message.startswith('nothing to watch') and 'BYBIT_OHLCV_NOTIFY' in message


def test_only_account_alerts_is_enough(env: dict[str, str]) -> None:
    cfg = load(env, BYBIT_OHLCV_NOTIFY='false', BYBIT_API_KEY='k', BYBIT_API_SECRET='s')
    assert bot.main_topics(cfg) == ['order', 'execution', 'position', 'wallet']


def test_demo_and_testnet(env: dict[str, str]) -> None:
    message = error(env, BYBIT_DEMO='true', BYBIT_IS_TESTNET='1')
    assert 'BYBIT_DEMO' in message
    assert 'BYBIT_IS_TESTNET' in message


@pytest.mark.parametrize(('flags', 'public', 'private', 'rest'), [
    ({}, 'wss://stream.bybit.com/v5/public/linear', 'wss://stream.bybit.com/v5/private',
     'https://api.bybit.com'),
    ({'BYBIT_IS_TESTNET': 'true'}, 'wss://stream-testnet.bybit.com/v5/public/linear',
     'wss://stream-testnet.bybit.com/v5/private', 'https://api-testnet.bybit.com'),
    # Demo trading: private stream and REST on the demo hosts, public data stays mainnet's.
    ({'BYBIT_DEMO': 'true'}, 'wss://stream.bybit.com/v5/public/linear',
     'wss://stream-demo.bybit.com/v5/private', 'https://api-demo.bybit.com'),
])
def test_derived_endpoints(env: dict[str, str], flags: dict[str, str], public: str, private: str,
                           rest: str) -> None:
    cfg = load(env, BYBIT_SYMBOL='BTCUSDT', **flags)
    assert (cfg.public_url, cfg.private_url, cfg.rest_url) == (public, private, rest)


def test_endpoint_overrides(env: dict[str, str]) -> None:
    cfg = load(env, BYBIT_WS_PUBLIC_URL='wss://stream.bybit.tr/v5/public/inverse',
               BYBIT_WS_PRIVATE_URL='ws://127.0.0.1:9000/v5/private',
               BYBIT_REST_URL='http://localhost:9001/')
    assert cfg.public_url == 'wss://stream.bybit.tr/v5/public/inverse'
    assert cfg.private_url == 'ws://127.0.0.1:9000/v5/private'
    assert cfg.rest_url == 'http://localhost:9001'


@pytest.mark.parametrize(('name', 'url'), [
    ('BYBIT_WS_PUBLIC_URL', 'ws://stream.bybit.com/v5/public/inverse'),
    ('BYBIT_WS_PRIVATE_URL', 'ws://10.0.0.5/v5/private'),
    ('BYBIT_WS_PRIVATE_URL', 'ws://localhost.evil.io/v5/private'),
    ('BYBIT_WS_PUBLIC_URL', 'https://stream.bybit.com/v5/public/inverse'),
    ('BYBIT_REST_URL', 'http://api.bybit.com'),
    ('BYBIT_REST_URL', 'wss://api.bybit.com'),
    ('BYBIT_REST_URL', 'https://'),
])
def test_tls_required_off_loopback(env: dict[str, str], name: str, url: str) -> None:
    message = error(env, **{name: url})
    assert message.startswith(f'{name}={url!r}')
    assert '127.0.0.1/localhost' in message


# Numbers #########################################################################################

@pytest.mark.parametrize(('watchdog', 'ping'), [('20', '20'), ('10', '20'), ('1', '1')])
def test_watchdog_must_exceed_ping(env: dict[str, str], watchdog: str, ping: str) -> None:
    message = error(env, WATCHDOG_S=watchdog, PING_INTERVAL_S=ping)
    assert message.startswith('WATCHDOG_S=')
    assert 'PING_INTERVAL_S' in message


def test_watchdog_just_above_ping(env: dict[str, str]) -> None:
    cfg = load(env, WATCHDOG_S='3', PING_INTERVAL_S='1')
    assert (cfg.watchdog_s, cfg.ping_interval_s) == (3.0, 1.0)


@pytest.mark.parametrize(('name', 'value'), [
    ('PING_INTERVAL_S', 'abc'), ('PING_INTERVAL_S', '0'), ('PING_INTERVAL_S', '61'),
    ('WATCHDOG_S', 'nan'), ('WATCHDOG_S', 'inf'), ('WATCHDOG_S', '601'),
    ('DOWN_ALERT_S', '0'), ('DOWN_ALERT_S', '-5'), ('EXEC_COALESCE_S', '11'),
    ('EXEC_COALESCE_S', 'x'), ('DISCORD_BAN_COOLDOWN_S', '0.5')])
def test_bad_numbers(env: dict[str, str], name: str, value: str) -> None:
    assert error(env, **{name: value}).startswith(f'{name}={value!r}: accepts a number')


def test_log_level_and_state_folder(env: dict[str, str]) -> None:
    assert load(env, LOG_LEVEL='debug').log_level == 'DEBUG'
    assert error(env, LOG_LEVEL='trace').startswith("LOG_LEVEL='trace'")
    message = error(env, STATE_FILE='/nonexistent-dir-for-test/state.json')
    assert message.startswith("STATE_FILE='/nonexistent-dir-for-test/state.json'")


# The settings block and the environment ##########################################################

def test_env_overrides_beat_the_settings_block(env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A trader edited the block...
    monkeypatch.setattr(bot, 'BYBIT_SYMBOL', 'ETHUSDT')
    monkeypatch.setattr(bot, 'BYBIT_PERIOD', '15')
    monkeypatch.setattr(bot, 'BYBIT_ORDER_NOTIFY', False)
    monkeypatch.setattr(bot, 'WATCHDOG_S', 90)
    block = load(env)
    assert (block.symbol, block.category, block.period) == ('ETHUSDT', 'linear', '15')
    assert block.order_notify is False
    assert block.watchdog_s == 90
    # ...and the environment wins over it.
    cfg = load(env, BYBIT_SYMBOL='BTCUSD', BYBIT_PERIOD='D', BYBIT_ORDER_NOTIFY='yes',
               WATCHDOG_S='30')
    assert (cfg.symbol, cfg.category, cfg.period) == ('BTCUSD', 'inverse', 'D')
    assert cfg.order_notify is True
    assert cfg.watchdog_s == 30


def test_bad_value_in_the_settings_block(env: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot, 'BYBIT_PERIOD', '2')
    assert error(env).startswith("BYBIT_PERIOD='2'")
    assert load(env, BYBIT_PERIOD='5').period == '5'


# The script itself ###############################################################################

def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    names = set(bot._SETTING_NAMES)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('BYBIT_', 'DISCORD_')) and k not in names}
    env.update(STATE_FILE=str(tmp_path / 'state.json'), **extra)
    return env


@pytest.mark.parametrize(('name', 'value'), [('BYBIT_PERIOD', '7'),
                                             ('BYBIT_CATEGORY', 'option'),
                                             ('WATCHDOG_S', '5')])
def test_script_exits_2_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / 'bybit_ws_notify.py')], env=clean_env(tmp_path, **{name: value}),
        cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f'bybit_ws_notify: bad setting: {name}=')
    assert 'Traceback' not in result.stderr
    assert result.stdout == ''
    assert not (tmp_path / 'state.json').exists()


def test_script_bad_webhook_does_not_print_the_token(tmp_path: Path) -> None:
    url = 'https://evil.example/api/webhooks/123456789/Tok3n-Secret_value'
    result = subprocess.run(
        [sys.executable, str(ROOT / 'bybit_ws_notify.py')],
        env=clean_env(tmp_path, DISCORD_NOTIFY='true', DISCORD_WEBHOOK_URL=url),
        cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 2
    assert TOKEN not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [(
        'bybit_ws_notify: bad setting: DISCORD_WEBHOOK_URL=https://evil.example/api/webhooks/'
        '123456789/***: evil.example is not a Discord host (discord.com); accepts a Discord '
        'webhook URL, https://discord.com/api/webhooks/<id>/<token>')]
