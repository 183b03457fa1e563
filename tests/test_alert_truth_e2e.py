"""End to end, issue 7 and issue 9 (points 4 and 5): a first start is silent but for the startup
alert, which comes first and lists the open position; a stale repeated order frame is neither
alerted nor lets the order back among the open ones."""

from __future__ import annotations

import time

from conftest import titles
from test_e2e import clean, count_titles, field, started, wait_title


def test_first_start_with_an_open_position_posts_only_the_startup_alert(bybit, discord, run_bot,
                                                                         tmp_path):
    assert not (tmp_path / 'state.json').exists()
    bybit.positions.append(bybit.make_position(symbol='BTCUSDT', side='Buy', size='0.5',
                                               avgPrice='95000', unrealisedPnl='8.5'))
    bybit.open_orders.append(bybit.make_order(orderId='resting-1', side='Sell', price='99000',
                                              qty='0.5'))
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('position')
    time.sleep(1.5)  # the first resync (positions, orders, wallet) is done and grouped alerts due
    assert titles(discord) == ['bybit-ws-notify started']
    embed = discord.embeds()[0]
    assert field(embed, 'Positions') == 'BTCUSDT Long 0.5 BTC @ 95000, uPnL 8.50 USDT'
    # The baseline is what later alerts compare with: a live change is alerted against it.
    bybit.push_private('position', [bybit.make_position(ws=True, symbol='BTCUSDT', side='Buy',
                                                        size='0.8', entryPrice='95500')])
    embed = wait_title(discord, r'^Position increased: BTCUSDT Long 0\.8 BTC')
    assert field(embed, 'Size') == '0.5 → 0.8 BTC'
    assert count_titles(discord, '^Position opened') == 0
    clean(discord)


def test_stale_repeated_order_frame_is_not_alerted_and_not_reopened(bybit, discord, run_bot):
    bot = run_bot()
    started(bybit, discord, bot)
    bybit.wait_subscribed('order')
    order = bybit.make_order(orderId='o-stale', side='Buy', price='90000', qty='0.01')
    created = int(order['createdTime'])
    partly = dict(order, orderStatus='PartiallyFilled', cumExecQty='0.004', leavesQty='0.006',
                  updatedTime=str(created + 10))
    filled = dict(order, orderStatus='Filled', cumExecQty='0.01', leavesQty='0',
                  avgPrice='90000', updatedTime=str(created + 20))
    for frame in (order, partly, filled, partly):   # the PartiallyFilled frame again, stale
        bybit.push_private('order', [frame])
    wait_title(discord, r'^Order Filled')
    time.sleep(1.0)
    assert [t.split(':')[0] for t in titles(discord) if t.startswith('Order')] == [
        'Order New', 'Order PartiallyFilled', 'Order Filled']
    # Bybit knows the order as Filled; a reconnect must not fetch it back and alert it again.
    bybit.order_history.append(filled)
    bybit.drop('private')
    deadline = time.monotonic() + 15
    while bot.count_log('private stream ready') < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bot.count_log('private stream ready') == 2, bot.output
    time.sleep(0.5)
    assert count_titles(discord, '^Order Filled') == 1
    assert count_titles(discord, '^Order PartiallyFilled') == 1
    assert not any(r['path'] == '/v5/order/history' for r in bybit.rest_requests)
    clean(discord)
