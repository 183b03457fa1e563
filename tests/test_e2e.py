"""End to end: python bybit_ws_notify.py against the Bybit and Discord fakes, as a trader runs it."""

from __future__ import annotations

import json
import re
import time

from conftest import assert_no_secrets, state_ids, titles


def wait_title(discord, pattern: str, timeout: float = 10.0) -> dict:
    regex = re.compile(pattern)
    embeds = discord.wait_for(lambda es: any(regex.search(e.get('title', '')) for e in es), timeout)
    return next(e for e in embeds if regex.search(e.get('title', '')))


def count_titles(discord, pattern: str) -> int:
    return sum(1 for t in titles(discord) if re.search(pattern, t))


def field(embed: dict, name: str) -> str:
    return next(f['value'] for f in embed['fields'] if f['name'] == name)


def started(bybit, discord, bot) -> None:
    bot.wait_log('private stream ready')
    bybit.wait_subscribed('execution')
    wait_title(discord, 'bybit-ws-notify started')


def clean(discord) -> None:
    assert discord.violations == []
    assert discord.rejected == []
    for message in discord.messages:
        assert message['payload']['allowed_mentions'] == {'parse': []}


def test_market_order_filled_in_15_pieces_is_one_alert(bybit, discord, run_bot):
    bot = run_bot(EXEC_COALESCE_S='1.0')
    started(bybit, discord, bot)
    order_id = 'order-15'
    fills = [bybit.make_execution(orderId=order_id, side='Sell', execQty='0.1', orderQty='1.5',
                                  execPrice=str(95000 + i), leavesQty=f'{1.4 - 0.1 * i:.1f}',
                                  execFee='0.01')
             for i in range(15)]
    for fill in fills:
        bybit.add_execution(fill)
    embed = wait_title(discord, r'^Fill: Sell 1\.5 BTC BTCUSDT')
    time.sleep(1.5)
    assert count_titles(discord, '^Fill') == 1
    assert '(15 fills)' in embed['title']
    assert field(embed, 'Filled') == '1.5 / 1.5 BTC'
    assert field(embed, 'VWAP') == '95007'          # mean of 95000..95014, equal sizes
    assert field(embed, 'Fee') == '0.15 USDT'
    assert field(embed, 'Liquidity') == 'taker'
    assert field(embed, 'Fills').splitlines()[-1] == '... and 5 more'
    assert len(field(embed, 'Fills').splitlines()) == 11
    clean(discord)


def test_order_status_changes_one_alert_each_and_repeats_suppressed(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('order')
    order = bybit.make_order(orderId='o-1', side='Buy', price='90000', qty='0.01')
    bybit.push_private('order', [order])
    bybit.push_private('order', [dict(order, orderStatus='PartiallyFilled', cumExecQty='0.004')])
    bybit.push_private('order', [dict(order, orderStatus='PartiallyFilled', cumExecQty='0.008')])
    bybit.push_private('order', [dict(order, orderStatus='Filled', cumExecQty='0.01')])
    # The documented cancel/fill race: a second Filled with cancelType set.
    bybit.push_private('order', [dict(order, orderStatus='Filled', cumExecQty='0.01',
                                      cancelType='CancelByUser')])
    rejected = bybit.make_order(orderId='o-2', orderStatus='Rejected',
                                rejectReason='EC_PostOnlyWillTakeLiquidity')
    bybit.push_private('order', [rejected])
    embed = wait_title(discord, r'^Order Rejected')
    assert field(embed, 'Reason') == 'post-only, and it would have filled at once'
    assert 'EC_PostOnlyWillTakeLiquidity' in embed['footer']['text']
    time.sleep(0.5)
    order_titles = [t for t in titles(discord) if t.startswith('Order')]
    assert [t.split(':')[0] for t in order_titles] == [
        'Order New', 'Order PartiallyFilled', 'Order Filled', 'Order Rejected']
    assert order_titles[0] == 'Order New: Buy Limit 0.01 BTC BTCUSDT @ 90000'
    clean(discord)


def test_position_alerts_only_on_real_changes(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('position')
    pos = bybit.make_position(ws=True, symbol='BTCUSDT', side='Buy', size='0.01',
                              entryPrice='95000', liqPrice='80000', markPrice='95100')
    bybit.push_private('position', [pos])
    wait_title(discord, r'^Position opened: BTCUSDT Long 0\.01 BTC')
    bybit.push_private('position', [dict(pos, markPrice='95200', unrealisedPnl='2')])  # no change
    bybit.push_private('position', [dict(pos, size='0.03', entryPrice='95500')])
    wait_title(discord, r'^Position increased: BTCUSDT Long 0\.03')
    bybit.push_private('position', [dict(pos, size='0.03', entryPrice='95500',
                                         stopLoss='90000')])
    wait_title(discord, r'^Position updated')
    bybit.push_private('position', [dict(pos, size='0.02', side='Sell', entryPrice='96000')])
    wait_title(discord, r'^Position flipped: BTCUSDT Short 0\.02')
    bybit.push_private('position', [dict(pos, size='0', side='', entryPrice='0')])
    embed = wait_title(discord, r'^Position closed: BTCUSDT \(was Short 0\.02 BTC\)')
    assert field(embed, 'Size') == '0.02 → 0 BTC'
    time.sleep(0.5)
    assert count_titles(discord, '^Position') == 5
    clean(discord)


def test_wallet_change_of_settle_coin_is_one_alert(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('wallet')
    bybit.push_private('wallet', [bybit.make_wallet('USDT', '1000')])   # unchanged: nothing
    bybit.push_private('wallet', [bybit.make_wallet('USDT', '1012.5')])
    bybit.push_private('wallet', [bybit.make_wallet('USDT', '1010')])   # same burst: merged
    embed = wait_title(discord, r'^Balance USDT')
    assert embed['title'] == 'Balance USDT: 1000.00 → 1010.00 (+10.00)'
    time.sleep(1.5)
    assert count_titles(discord, '^Balance') == 1
    clean(discord)


def test_one_alert_per_closed_candle(bybit, discord, run_bot):
    bot = run_bot(BYBIT_PERIOD='5')
    started(bybit, discord, bot)
    topic = 'kline.5.BTCUSDT'
    bybit.wait_subscribed(topic)
    candle = bybit.make_kline(interval='5', start=1_700_000_000_000, end=1_700_000_299_999,
                              open='100', close='103', high='104', low='99', volume='12.5')
    bybit.push_public(topic, [dict(candle, confirm=False)])
    bybit.push_public(topic, [dict(candle, confirm=True)])
    bybit.push_public(topic, [dict(candle, confirm=True)])             # re-sent: no repeat
    embed = wait_title(discord, r'^BTCUSDT 5m closed')
    assert embed['title'] == 'BTCUSDT 5m closed: 103 (+3.00%)'
    assert field(embed, 'Volume') == '12.5 BTC'
    time.sleep(0.5)
    assert count_titles(discord, 'closed: ') == 1
    clean(discord)


def test_startup_alert_shows_watch_position_and_balance(bybit, discord, run_bot):
    bybit.positions.append(bybit.make_position(symbol='BTCUSDT', side='Buy', size='0.5',
                                               avgPrice='95000'))
    bot = run_bot()
    started(bybit, discord, bot)
    embed = wait_title(discord, 'bybit-ws-notify started')
    assert field(embed, 'Watching') == 'linear, inverse, spot, option (mainnet)'
    assert field(embed, 'Candles') == 'BTCUSDT × 1m'
    assert field(embed, 'Positions').startswith('BTCUSDT Long 0.5 BTC @ 95000')
    assert field(embed, 'Balances') == '1000.00 USDT'  # USDT to the cent
    assert field(embed, 'Total equity') == '1000.00 USD'
    assert 'read-only' in field(embed, 'API key')
    # Only the topics the enabled alerts need, and only GETs against the REST API.
    assert bybit.subscriptions('private') == [{'order', 'execution', 'position', 'wallet'}]
    assert all(r['method'] == 'GET' for r in bybit.rest_requests)
    assert bybit.rest_violations == []


def test_console_mode_without_webhook_prints_alerts(bybit, discord, run_bot):
    bot = run_bot(DISCORD_NOTIFY='false', DISCORD_WEBHOOK_URL=None)
    bot.wait_log('private stream ready')
    bybit.wait_subscribed('execution')
    bybit.add_execution(bybit.make_execution(side='Buy', execQty='0.002', orderQty='0.002'))
    bot.wait_log(r'Fill: Buy 0\.002 BTC BTCUSDT')
    bot.wait_log('bybit-ws-notify started')
    assert discord.requests == []
    assert bot.stop() == 0


def test_public_only_without_keys_gives_kline_alerts(bybit, discord, run_bot):
    bot = run_bot(BYBIT_API_KEY=None, BYBIT_API_SECRET=None)
    bot.wait_log('public-only')
    bybit.wait_subscribed('kline.1.BTCUSDT')
    bybit.push_public('kline.1.BTCUSDT', [bybit.make_kline(confirm=True)])
    wait_title(discord, r'^BTCUSDT 1m closed')
    assert bybit.private_connects == 0
    # Only Bybit's clock is read (candle windows use it); nothing signed, nothing of an account.
    assert [r['path'] for r in bybit.rest_requests] == ['/v5/market/time']
    assert not any('X-BAPI-API-KEY' in r['headers'] for r in bybit.rest_requests)
    assert bot.stop() == 0
    clean(discord)


def test_inverse_units_follow_the_category(bybit, discord, run_bot):
    env = bybit.env('inverse')
    bot = run_bot(BYBIT_SYMBOL='BTCUSD', BYBIT_WS_PUBLIC_URL=env['BYBIT_WS_PUBLIC_URL'],
                  BYBIT_CATEGORIES='inverse')
    bot.wait_log('private stream ready')
    bybit.wait_subscribed('execution.inverse')  # a subset of categories: the categorised topics
    wait_title(discord, 'bybit-ws-notify started')
    bybit.add_execution(bybit.make_execution(
        category='inverse', symbol='BTCUSD', side='Buy', execQty='100', orderQty='100',
        execPrice='95000', execFee='0.00000057', feeCurrency='', closedSize='100',
        execPnl='0.00001'))
    embed = wait_title(discord, r'^Fill: Buy 100 USD BTCUSD')
    assert field(embed, 'Fee') == '0.00000057 BTC'
    assert field(embed, 'Realised PnL') == '0.00001 BTC'
    # A linear fill on the same account is outside BYBIT_CATEGORIES: no alert.
    bybit.add_execution(bybit.make_execution(execQty='0.5'))
    time.sleep(1)
    assert count_titles(discord, '^Fill') == 1


def test_sigterm_sends_shutdown_alert_saves_state_and_exits_0(bybit, discord, run_bot, tmp_path):
    bot = run_bot()
    started(bybit, discord, bot)
    fill = bybit.make_execution()
    bybit.add_execution(fill)
    wait_title(discord, '^Fill')
    assert bot.stop() == 0
    assert titles(discord)[-1] == 'bybit-ws-notify stopped'
    state = json.loads((tmp_path / 'state.json').read_text())
    assert state['version'] == 2
    assert fill['execId'] in state_ids(state)
    assert state['outbox'] == []
    assert_no_secrets(bot.output + (tmp_path / 'state.json').read_text(),
                      bybit.api_secret, discord.token)


def test_every_embed_has_a_timestamp_and_a_colour(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('order')
    bybit.push_private('order', [bybit.make_order(updatedTime='')])       # no event time
    bybit.push_private('position', [bybit.make_position(ws=True, side='Buy', size='1')])
    wait_title(discord, '^Position opened')
    wait_title(discord, '^Order New')
    assert bot.stop() == 0
    for embed in discord.embeds():
        assert embed['timestamp'] and embed['color'] >= 0 and embed['title'], embed
    clean(discord)


def test_an_event_the_bot_cannot_read_is_sent_raw(bybit, discord, run_bot):
    """positionIdx that is not a number breaks the position diff: the alert still goes out."""
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('position')
    bybit.push_private('position', [bybit.make_position(ws=True, side='Buy', size='2',
                                                        positionIdx='first')])
    embed = wait_title(discord, r'^position event \(raw\)')
    assert 'size=2' in embed['description'] and 'symbol=BTCUSDT' in embed['description']
    assert 'ValueError' in embed['footer']['text']
    bot.wait_log('could not process a position event; sending it raw')
    fill = bybit.make_execution()
    bybit.add_execution(fill)                      # and the alerts after it still flow
    discord.wait_for(lambda es: fill['execId'] in str(es), 10)
    clean(discord)
