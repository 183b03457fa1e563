"""The formatters with Bybit's official example payloads: event dict in, Discord embed out.

Every expected string below was worked out by hand from the payload, not copied from the output.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import bybit_ws_notify as bot

PAYLOADS = Path(__file__).resolve().parent / 'payloads'
LINEAR = bot.units_for('linear', 'BTCUSDT')
INVERSE = bot.units_for('inverse', 'BTCUSD')


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding='utf-8'))


def ws_data(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(load(name)['data'])


def rest_rows(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(load(name)['result']['list'])


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f['name']: f['value'] for f in embed['fields']}


def field_names(embed: dict[str, Any]) -> list[str]:
    return [f['name'] for f in embed['fields']]


# Symbols and units ###############################################################################

@pytest.mark.parametrize(('symbol', 'base_quote', 'category', 'settle', 'units'), [
    ('BTCUSD', ('BTC', 'USD'), 'inverse', 'BTC', ('USD', 'BTC')),
    ('BTCUSDT', ('BTC', 'USDT'), 'linear', 'USDT', ('BTC', 'USDT')),
    ('ETHPERP', ('ETH', 'USDC'), 'linear', 'USDC', ('ETH', 'USDC')),
    ('BTCUSDH25', ('BTC', 'USD'), 'inverse', 'BTC', ('USD', 'BTC')),
    ('BTC-26DEC25', ('BTC', 'USDC'), 'linear', 'USDC', ('BTC', 'USDC')),
    ('ETHUSDC', ('ETH', 'USDC'), 'linear', 'USDC', ('ETH', 'USDC')),
])
def test_symbol_helpers(symbol: str, base_quote: tuple[str, str], category: str, settle: str,
                        units: tuple[str, str]) -> None:
    assert bot.split_symbol(symbol) == base_quote
    assert bot.derive_category(symbol) == category
    assert bot.settle_coin(category, symbol) == settle
    assert tuple(bot.units_for(category, symbol)) == units


def test_units_inverse_vs_linear() -> None:
    assert INVERSE == bot.Units(qty='USD', value='BTC')
    assert LINEAR == bot.Units(qty='BTC', value='USDT')
    assert bot.units_for('spot', 'ETHUSDT') == bot.Units(qty='ETH', value='USDT')


def test_derive_category_unknown_symbols() -> None:
    assert bot.derive_category('ETHBTC') is None
    assert bot.derive_category('XYZ') is None
    assert bot.derive_category('BTCUSDT-26DEC25') == 'linear'
    assert bot.split_symbol('BTCUSDT-26DEC25') == ('BTC', 'USDT')


# escape_md #######################################################################################

def test_escape_md_makes_mentions_inert() -> None:
    text = bot.escape_md('@everyone @here <@123> <@!45> <@&678>')
    assert '@everyone' not in text
    assert '@here' not in text
    assert text.count('@\u200b') == 5
    assert '@\u200beveryone' in text
    assert '@\u200bhere' in text
    assert '@\u200b!45' in text
    assert '@\u200b&678' in text


def test_escape_md_makes_markdown_inert() -> None:
    assert bot.escape_md('**bold** _it_ `code` ~~s~~ ||spoiler||') == (
        r'\*\*bold\*\* \_it\_ \`code\` \~\~s\~\~ \|\|spoiler\|\|')
    assert bot.escape_md('[click](https://x.io)') == r'\[click\]\(https://x.io\)'
    assert bot.escape_md('> quote # head - item') == r'\> quote \# head \- item'
    assert bot.escape_md('a\\b') == 'a\\\\b'


def test_escape_md_drops_control_characters() -> None:
    assert bot.escape_md('line1\nline2\x00\u200b') == 'line1line2'
    assert bot.escape_md(12.5) == '12.5'


# format_order ####################################################################################

@pytest.fixture
def history_order() -> dict[str, Any]:
    """rest_order_history.json: a linear BTCUSDT PostOnly limit buy, Cancelled."""
    return rest_rows('rest_order_history.json')[0]


def test_format_order_official_ws_payload() -> None:
    order = ws_data('ws_private_order.json')[0]
    embed = bot.format_order(order, bot.Units(qty='ETH', value='USDC'))
    # A Market order: no price in the title, however much "price" says.
    assert embed['title'] == 'Order Filled: Sell Market 1 ETH ETH-30DEC22-1400-C'
    assert fields(embed) == {'Status': 'Filled', 'Side': 'Sell', 'Filled': '1 / 1 ETH',
                             'Avg price': '75',  # the payload is an option's: said in words
                             'Contract': 'ETH Call 1400, expires 30 Dec 2022, settles in USDC'}
    assert embed['color'] == bot.COLOR['sell']
    assert embed['footer'] == {'text': 'order 5cf98598-39a7-459e-97bf-76ca765ee020'}
    assert embed['timestamp'] == '2022-12-30T01:37:42.457000+00:00'


def test_format_order_rest_history_cancelled(history_order: dict[str, Any]) -> None:
    embed = bot.format_order(history_order, LINEAR)
    assert embed['title'] == 'Order Cancelled: Buy Limit 0.003 BTC BTCUSDT @ 26864.4'
    # cancelType UNKNOWN, triggerPrice/takeProfit/stopLoss "0.00", avgPrice "0": none shown. The
    # post-only order was cancelled by Bybit: the rejectReason says why, in words; the raw code is
    # in the footer.
    assert fields(embed) == {'Status': 'Cancelled', 'Side': 'Buy', 'Filled': '0 / 0.003 BTC',
                             'Reason': 'post-only, and it would have filled at once',
                             'Link ID': 'YLxaWKMiHU'}
    assert embed['footer']['text'] == ('order 14bad3a1-6454-43d8-bcf2-5345896cf74d · '
                                       'EC_PostOnlyWillTakeLiquidity')
    assert embed['color'] == bot.COLOR['muted']
    assert embed['timestamp'] == '2023-05-19T06:01:08.372000+00:00'


def test_format_order_new_limit(history_order: dict[str, Any]) -> None:
    order = dict(history_order, orderStatus='New', orderLinkId='', rejectReason='EC_NoError')
    embed = bot.format_order(order, LINEAR)
    assert embed['title'] == 'Order New: Buy Limit 0.003 BTC BTCUSDT @ 26864.4'
    assert field_names(embed) == ['Status', 'Side', 'Filled']
    assert embed['color'] == bot.COLOR['info']


def test_format_order_partially_filled(history_order: dict[str, Any]) -> None:
    order = dict(history_order, orderStatus='PartiallyFilled', cumExecQty='0.001',
                 avgPrice='26864.40', leavesQty='0.002', takeProfit='30000.00',
                 stopLoss='25000.50', reduceOnly=True)
    embed = bot.format_order(order, LINEAR)
    assert embed['title'] == 'Order PartiallyFilled: Buy Limit 0.003 BTC BTCUSDT @ 26864.4'
    assert fields(embed) == {'Status': 'PartiallyFilled', 'Side': 'Buy',
                             'Filled': '0.001 / 0.003 BTC', 'Avg price': '26864.4',
                             'Take profit': '30000', 'Stop loss': '25000.5',
                             'Reduce only': 'yes', 'Link ID': 'YLxaWKMiHU'}
    assert embed['color'] == bot.COLOR['buy']


def test_format_order_filled_inverse(history_order: dict[str, Any]) -> None:
    order = dict(history_order, symbol='BTCUSD', qty='100', cumExecQty='100', avgPrice='26864.5',
                 orderStatus='Filled', side='Sell', orderLinkId='')
    embed = bot.format_order(order, INVERSE)
    assert embed['title'] == 'Order Filled: Sell Limit 100 USD BTCUSD @ 26864.4'
    assert fields(embed)['Filled'] == '100 / 100 USD'
    assert fields(embed)['Avg price'] == '26864.5'
    assert embed['color'] == bot.COLOR['sell']


def test_format_order_cancelled_with_cancel_type(history_order: dict[str, Any]) -> None:
    order = dict(history_order, cancelType='CancelByUser')
    embed = bot.format_order(order, LINEAR, recovered=True)
    assert fields(embed)['Reason'] == ('cancelled by you; '
                                       'post-only, and it would have filled at once')
    assert embed['footer']['text'] == (
        'order 14bad3a1-6454-43d8-bcf2-5345896cf74d · CancelByUser EC_PostOnlyWillTakeLiquidity'
        ' · recovered after a disconnect')


def test_format_order_rejected_with_reason(history_order: dict[str, Any]) -> None:
    order = dict(history_order, orderStatus='Rejected', rejectReason='EC_NoImmediateQtyToFill')
    embed = bot.format_order(order, LINEAR)
    assert embed['title'].startswith('Order Rejected: ')
    assert fields(embed)['Reason'] == 'nothing could be filled at once'
    assert embed['footer']['text'].endswith(' · EC_NoImmediateQtyToFill')
    assert embed['color'] == bot.COLOR['error']
    no_error = bot.format_order(dict(order, rejectReason='EC_NoError'), LINEAR)
    assert 'Reason' not in fields(no_error)


def test_format_order_reject_reason_only_when_rejected(history_order: dict[str, Any]) -> None:
    order = dict(history_order, orderStatus='Filled', cumExecQty='0.003', cancelType='CancelByUser',
                 rejectReason='EC_OrigClOrdIDDoesNotExist')
    embed = bot.format_order(order, LINEAR)
    assert 'Reason' not in field_names(embed)
    assert 'EC_' not in embed['footer']['text']


@pytest.mark.parametrize(('status', 'color'), [
    ('Untriggered', 'trigger'), ('Triggered', 'trigger'), ('Deactivated', 'muted')])
def test_format_order_conditional(history_order: dict[str, Any], status: str, color: str) -> None:
    order = dict(history_order, orderStatus=status, stopOrderType='StopLoss', orderType='Market',
                 triggerPrice='25000.00', triggerBy='MarkPrice', cancelType='CancelByTpSlTsClear')
    embed = bot.format_order(order, LINEAR)
    assert embed['title'] == f'Order {status}: Buy Market 0.003 BTC BTCUSDT'
    got = fields(embed)
    assert got['Conditional'] == 'StopLoss'
    assert got['Trigger'] == '25000 (MarkPrice)'
    assert embed['color'] == bot.COLOR[color]
    assert got.get('Reason', '').startswith('cancelled: its TP/SL was cleared') == (
        status == 'Deactivated')


def test_format_order_spot_market_buy_by_value() -> None:
    # docs/bybit_v5.md §5 order: marketUnit (spot market orders: baseCoin/quoteCoin) is the unit of
    # qty. A market buy of 100 USDT filled 0.00104 BTC.
    order = {'category': 'spot', 'symbol': 'BTCUSDT', 'orderId': 'spot-1', 'side': 'Buy',
             'orderType': 'Market', 'qty': '100', 'marketUnit': 'quoteCoin',
             'orderStatus': 'Filled', 'cumExecQty': '0.00104', 'cumExecValue': '99.736',
             'avgPrice': '95900', 'updatedTime': '1746270400353'}
    embed = bot.format_order(order, bot.units_for('spot', 'BTCUSDT'))
    assert '100 BTC' not in embed['title']
    assert '100 USDT' in embed['title']


def test_format_order_link_id_is_escaped(history_order: dict[str, Any]) -> None:
    order = dict(history_order, orderLinkId='@everyone **buy**')
    assert fields(bot.format_order(order, LINEAR))['Link ID'] == '@\u200beveryone \\*\\*buy\\*\\*'


def test_format_order_missing_fields() -> None:
    # Nothing Bybit did not send is shown: no '?', '-' or empty parts (it was 'Order ?: ?  - BTC ?').
    embed = bot.format_order({}, LINEAR)
    assert embed['title'] == 'Order update'
    assert fields(embed) == {}
    assert embed['footer'] == {'text': ''}
    assert embed['timestamp'] is None


# format_execution ################################################################################

@pytest.fixture
def fill() -> dict[str, Any]:
    """ws_private_execution.json: a linear BTCUSDT market sell of 0.5 that closed 0.5."""
    return ws_data('ws_private_execution.json')[0]


def test_format_execution_single_fill_with_realised_pnl(fill: dict[str, Any]) -> None:
    embed = bot.format_execution([fill], LINEAR)
    assert embed['title'] == 'Fill: Sell 0.5 BTC BTCUSDT @ 95900.1'
    # The official payload carries a GST extra fee in USDT: added to the fee and named.
    # 26.3725275 + 0.006403779 = 26.378931279
    assert fields(embed) == {'Filled': '0.5 / 0.5 BTC', 'Price': '95900.1',
                             'Fee': '26.378931279 USDT (incl. GST 0.006403779)',
                             'Liquidity': 'taker', 'Realised PnL': '0.05 USDT',
                             'Order type': 'Market'}
    assert embed['color'] == bot.COLOR['sell']
    assert embed['footer']['text'] == ('order 9aac161b-8ed6-450d-9cab-c5cc67c21784 · '
                                       'exec 0ab1bdf7-4219-438b-b30a-32ec863018f7')
    assert embed['timestamp'] == '2025-05-03T11:06:40.353000+00:00'


def test_format_execution_opening_fill_has_no_pnl(fill: dict[str, Any]) -> None:
    opening = dict(fill, closedSize='0', execPnl='0', isMaker=True, side='Buy')
    embed = bot.format_execution([opening], LINEAR)
    assert 'Realised PnL' not in fields(embed)
    assert fields(embed)['Liquidity'] == 'maker'
    assert embed['color'] == bot.COLOR['buy']


def test_format_execution_rest_row() -> None:
    row = rest_rows('rest_execution_list.json')[0]
    embed = bot.format_execution([row], bot.units_for('linear', 'ETHPERP'))
    assert embed['title'] == 'Fill: Buy 0.1 ETH ETHPERP @ 1190.15'
    # feeCurrency "" falls back to the settle coin; closedSize "" is not a close.
    assert fields(embed) == {'Filled': '0.1 / 0.1 ETH', 'Price': '1190.15',
                             'Fee': '0.071409 USDC', 'Liquidity': 'taker', 'Order type': 'Market'}


def test_format_execution_inverse_units(fill: dict[str, Any]) -> None:
    inverse = dict(fill, symbol='BTCUSD', execQty='1000', orderQty='1000', execFee='0.0000057',
                   execPnl='-0.0001', feeCurrency='BTC', execPrice='95900.5')
    embed = bot.format_execution([inverse], INVERSE)
    assert embed['title'] == 'Fill: Sell 1000 USD BTCUSD @ 95900.5'
    got = fields(embed)
    assert got['Filled'] == '1000 / 1000 USD'
    assert got['Fee'] == '0.0000057 BTC'
    assert got['Realised PnL'] == '-0.0001 BTC'


def fifteen_fills(base: dict[str, Any]) -> list[dict[str, Any]]:
    fills = []
    for i in range(15):
        fills.append(dict(base, execId=f'fill-{i:02d}', execQty=f'0.0{i % 3 + 1}',
                          execPrice=f'{95900 + i}.{i % 10}', execFee=f'0.{i + 1:03d}',
                          isMaker=False, closedSize='0', execPnl='0', orderQty='0.5', extraFees='',
                          leavesQty='0', execTime=str(1746270400353 + i)))
    return fills


def test_format_execution_fifteen_fills_one_embed(fill: dict[str, Any]) -> None:
    fills = fifteen_fills(fill)
    embed = bot.format_execution(fills, LINEAR)
    qtys = [Decimal(f['execQty']) for f in fills]
    prices = [Decimal(f['execPrice']) for f in fills]
    total = sum(qtys, Decimal(0))
    assert total == Decimal('0.30')
    vwap = sum((p * q for p, q in zip(prices, qtys)), Decimal(0)) / total
    # By hand: 95900 + (0.022 + 0.066 + ... + 0.432) / 0.3 = 95900 + 2.31 / 0.3 = 95907.7
    assert vwap == Decimal('95907.7')
    assert embed['title'] == 'Fill: Sell 0.3 BTC BTCUSDT @ 95907.7 (15 fills)'
    got = fields(embed)
    lines = got['Fills'].split('\n')
    assert len(lines) == 11
    assert lines[0] == '0.01 @ 95900'
    assert lines[1] == '0.02 @ 95901.1'
    assert lines[9] == '0.01 @ 95909.9'
    assert lines[10] == '... and 5 more'
    assert got['Filled'] == '0.3 / 0.5 BTC'
    assert got['VWAP'] == '95907.7'
    assert got['Fee'] == '0.12 USDT'  # 0.001 + ... + 0.015
    assert got['Liquidity'] == 'taker'
    assert 'Realised PnL' not in got
    assert embed['footer']['text'].endswith('exec fill-00 ...')
    assert embed['timestamp'] == '2025-05-03T11:06:40.367000+00:00'  # the last fill's time


def test_format_execution_vwap_is_exact_decimal(fill: dict[str, Any]) -> None:
    fills = [dict(fill, execId='a', execPrice='0.1', execQty='0.1'),
             dict(fill, execId='b', execPrice='0.2', execQty='0.2'),
             dict(fill, execId='c', execPrice='0.3', execQty='0.3')]
    # (0.01 + 0.04 + 0.09) / 0.6 = 0.2333...; binary floats would give 0.23333333333333336.
    embed = bot.format_execution(fills, LINEAR)
    assert fields(embed)['VWAP'] == '0.233'
    assert fields(embed)['Filled'] == '0.6 / 0.5 BTC'
    halves = [dict(fill, execId='a', execPrice='95900.1', execQty='0.3'),
              dict(fill, execId='b', execPrice='95900.3', execQty='0.1')]
    assert fields(bot.format_execution(halves, LINEAR))['VWAP'] == '95900.15'


def test_format_execution_mixed_liquidity_and_leaves(fill: dict[str, Any]) -> None:
    fills = [dict(fill, execId='a', isMaker=True, leavesQty='0.4', execQty='0.1'),
             dict(fill, execId='b', isMaker=False, leavesQty='0.3', execQty='0.1')]
    got = fields(bot.format_execution(fills, LINEAR))
    assert got['Liquidity'] == 'maker + taker'
    assert got['Left'] == '0.3 BTC'  # the last fill's leavesQty
    assert got['Filled'] == '0.2 / 0.5 BTC'
    assert got['Realised PnL'] == '0.10 USDT'  # both fills close: 0.05 + 0.05, to the cent


def test_format_execution_exactly_ten_fills_has_no_more_line(fill: dict[str, Any]) -> None:
    fills = fifteen_fills(fill)[:10]
    lines = fields(bot.format_execution(fills, LINEAR))['Fills'].split('\n')
    assert len(lines) == 10
    assert not any('more' in line for line in lines)


@pytest.mark.parametrize(('exec_type', 'label', 'color'), [
    ('AdlTrade', 'ADL fill (auto-deleveraging)', 'error'),
    ('BustTrade', 'Liquidation fill', 'error'),
    ('Settle', 'Settlement', 'warn'),
    ('Delivery', 'Delivery', 'warn'),
])
def test_format_execution_non_trade_types(fill: dict[str, Any], exec_type: str, label: str,
                                          color: str) -> None:
    embed = bot.format_execution([dict(fill, execType=exec_type)], LINEAR)
    assert embed['title'] == f'{label}: Sell 0.5 BTC BTCUSDT @ 95900.1'
    assert embed['color'] == bot.COLOR[color]


@pytest.mark.parametrize(('fee', 'word', 'color'), [('0.0123', 'paid', 'sell'),
                                                    ('-0.0123', 'received', 'buy')])
def test_format_execution_funding(fill: dict[str, Any], fee: str, word: str, color: str) -> None:
    # A word and a positive amount (it read "-0.0123 USDT (received)"), the position (side, and
    # its size from execQty), the mark price (execPrice) and the rate (feeRate).
    funding = dict(fill, execType='Funding', execFee=fee, orderType='UNKNOWN', closedSize='0',
                   execPnl='0', orderQty='0', orderId='')
    embed = bot.format_execution([funding], LINEAR)
    assert embed['title'] == f'Funding {word}: 0.0123 USDT on BTCUSDT Short 0.5 BTC'
    assert fields(embed) == {'Amount': f'0.0123 USDT {word}', 'Position': 'Short 0.5 BTC',
                             'Mark price': '95900.1', 'Funding rate': '0.055%'}
    assert embed['color'] == bot.COLOR[color]
    assert embed['footer']['text'] == 'exec 0ab1bdf7-4219-438b-b30a-32ec863018f7'


def test_format_execution_fast_has_no_exec_type() -> None:
    fast = {'category': 'linear', 'symbol': 'BTCUSDT', 'execId': 'x1', 'execPrice': '100.5',
            'execQty': '2', 'side': 'Buy', 'isMaker': True, 'execTime': '1746270400353'}
    embed = bot.format_execution([fast], LINEAR)
    assert embed['title'] == 'Fill: Buy 2 BTC BTCUSDT @ 100.5'
    # execution.fast carries no fee: none is shown (it showed "Fee: 0 USDT").
    assert fields(embed) == {'Filled': '2 BTC', 'Price': '100.5', 'Liquidity': 'maker'}


# position_view / classify_position / format_position #############################################

@pytest.fixture
def rest_position() -> dict[str, Any]:
    """rest_position_list.json: inverse BTCUSD short 300 USD, avgPrice (not entryPrice)."""
    return rest_rows('rest_position_list.json')[0]


def test_position_view_ws_payload() -> None:
    view = bot.position_view(ws_data('ws_private_position.json')[0])
    assert view == {'symbol': 'BTCUSDT', 'idx': 2, 'side': '', 'size': '0', 'entry': '0',
                    'liq': '0', 'tp': '0', 'sl': '0', 'mark': '28184.5', 'upnl': '0',
                    'realised': '1.26', 'leverage': '10'}


def test_position_view_rest_payload_uses_avg_price(rest_position: dict[str, Any]) -> None:
    view = bot.position_view(rest_position)
    assert view == {'symbol': 'BTCUSD', 'idx': 0, 'side': 'Sell', 'size': '300',
                    'entry': '27464.50441675', 'liq': '-', 'tp': '0', 'sl': '0',
                    'mark': '28224.5', 'upnl': '-0.00029413', 'realised': '0.00013123',
                    'leverage': '10'}


def test_rest_avg_price_equals_ws_entry_price(rest_position: dict[str, Any]) -> None:
    ws_position = dict(rest_position, entryPrice='27464.50441675', markPrice='28300',
                       unrealisedPnl='-0.0003')
    del ws_position['avgPrice']
    rest_view, ws_view = bot.position_view(rest_position), bot.position_view(ws_position)
    assert ws_view['entry'] == rest_view['entry'] == '27464.50441675'
    assert bot.classify_position(rest_view, ws_view) is None


def view(**changes: Any) -> dict[str, Any]:
    base = {'symbol': 'BTCUSDT', 'positionIdx': 0, 'side': 'Buy', 'size': '0.5',
            'entryPrice': '30000', 'liqPrice': '20000', 'takeProfit': '0', 'stopLoss': '0',
            'markPrice': '30100', 'unrealisedPnl': '50', 'curRealisedPnl': '-1.5',
            'leverage': '10'}
    return bot.position_view(dict(base, **changes))


@pytest.mark.parametrize(('prev', 'cur', 'change'), [
    (view(side='', size='0'), view(), 'opened'),
    (view(), view(size='0.8', entryPrice='30100'), 'increased'),
    (view(), view(size='0.2'), 'reduced'),
    (view(), view(side='', size='0', entryPrice='0', liqPrice=''), 'closed'),
    (view(), view(side='Sell', size='0.5'), 'flipped'),
    (view(), view(side='Sell', size='0.3'), 'flipped'),
    (view(), view(takeProfit='35000'), 'updated'),
    (view(), view(stopLoss='28000'), 'updated'),
    (view(), view(entryPrice='30001'), 'updated'),
    (view(), view(liqPrice='20300'), 'updated'),      # moved 1.5 %
    (view(), view(liqPrice=''), 'updated'),           # liq price gone
    (view(), view(liqPrice='20100'), None),            # moved 0.5 %: cross-margin noise
    (view(), view(markPrice='31000', unrealisedPnl='500'), None),
    (view(), view(), None),                            # the documented no-change push
    (view(side='', size='0'), view(side='', size='0'), None),
])
def test_classify_position(prev: dict[str, Any], cur: dict[str, Any], change: str | None) -> None:
    assert bot.classify_position(prev, cur) == change


def test_classify_ws_no_change_push_of_official_payload() -> None:
    position = ws_data('ws_private_position.json')[0]
    first, again = bot.position_view(position), bot.position_view(copy.deepcopy(position))
    assert bot.classify_position(first, again) is None
    assert bot.classify_position(bot.flat_position(first), first) is None


def test_classify_first_push_of_rest_position(rest_position: dict[str, Any]) -> None:
    cur = bot.position_view(rest_position)
    assert bot.classify_position(bot.flat_position(cur), cur) == 'opened'


def test_flat_position_keeps_symbol_and_slot(rest_position: dict[str, Any]) -> None:
    flat = bot.flat_position(bot.position_view(rest_position))
    assert flat['symbol'] == 'BTCUSD'
    assert flat['idx'] == 0
    assert flat['size'] == '0'
    assert flat['side'] == ''


def test_format_position_opened_inverse(rest_position: dict[str, Any]) -> None:
    cur = bot.position_view(rest_position)
    embed = bot.format_position('opened', bot.flat_position(cur), cur, INVERSE)
    assert embed['title'] == 'Position opened: BTCUSD Short 300 USD'
    got = fields(embed)
    assert got['Side'] == 'Short'
    assert got['Size'] == '0 → 300 USD'
    assert got['Entry'] == '27464.50441675'
    assert got['Unrealised PnL'] == '-0.00029413 BTC'
    assert got['Realised PnL'] == '0.00013123 BTC'
    assert got['Leverage'] == '10x'
    assert embed['color'] == bot.COLOR['sell']
    assert embed['footer']['text'] == 'position BTCUSD #0'


def test_format_position_opened_without_tp_sl_shows_no_tp_sl(rest_position: dict[str, Any]) -> None:
    cur = bot.position_view(rest_position)
    assert cur['tp'] == cur['sl'] == '0'
    names = field_names(bot.format_position('opened', bot.flat_position(cur), cur, INVERSE))
    assert 'Take profit' not in names
    assert 'Stop loss' not in names


def test_format_position_closed_linear() -> None:
    prev = view()
    cur = view(side='', size='0', entryPrice='0', liqPrice='0', unrealisedPnl='0',
               curRealisedPnl='48.5')
    embed = bot.format_position('closed', prev, cur, LINEAR, recovered=True)
    assert embed['title'] == 'Position closed: BTCUSDT (was Long 0.5 BTC)'
    got = fields(embed)
    assert got['Side'] == 'Flat'
    assert got['Size'] == '0.5 → 0 BTC'
    assert got['Entry'] == '30000'  # the entry of the position that was closed
    assert got['Realised PnL'] == '48.50 USDT'
    assert 'Unrealised PnL' not in got and 'Liq. price' not in got and 'Mark' in got
    assert 'Take profit' not in got
    assert embed['color'] == bot.COLOR['muted']
    assert embed['footer']['text'] == 'position BTCUSDT #0 · recovered after a disconnect'


@pytest.mark.parametrize(('change', 'cur', 'title', 'color'), [
    ('increased', view(size='0.8'), 'Position increased: BTCUSDT Long 0.8 BTC', 'buy'),
    ('reduced', view(size='0.2'), 'Position reduced: BTCUSDT Long 0.2 BTC', 'info'),
    ('flipped', view(side='Sell', size='0.3'), 'Position flipped: BTCUSDT Short 0.3 BTC', 'warn'),
    ('updated', view(takeProfit='35000'), 'Position updated: BTCUSDT Long 0.5 BTC', 'info'),
])
def test_format_position_changes(change: str, cur: dict[str, Any], title: str, color: str) -> None:
    embed = bot.format_position(change, view(), cur, LINEAR)
    assert embed['title'] == title
    assert embed['color'] == bot.COLOR[color]
    assert fields(embed)['Size'] == f"0.5 → {cur['size']} BTC"


def test_format_position_tp_removed_is_shown() -> None:
    embed = bot.format_position('updated', view(takeProfit='35000'), view(), LINEAR)
    assert fields(embed)['Take profit'] == 'removed (was 35000)'
    assert 'Stop loss' not in fields(embed)


# format_wallet ###################################################################################

def test_format_wallet_official_payload() -> None:
    account = ws_data('ws_private_wallet.json')[0]
    row = account['coin'][0]
    embed = bot.format_wallet('BTC', '0.001', '0.00102964', account, row)
    assert embed['title'] == 'Balance BTC: 0.001 → 0.00102964 (+0.00002964)'
    # unrealisedPnl "0" is not shown; account totals are USD with 2 places.
    assert fields(embed) == {'Wallet balance': '0.00102964 BTC', 'Change': '+0.00002964 BTC',
                             'Equity': '0.00102964 BTC', 'Account equity': '10262.91 USD',
                             'Available': '9556.61 USD'}
    assert embed['color'] == bot.COLOR['buy']
    assert embed['footer']['text'] == 'UNIFIED wallet'


def test_format_wallet_decrease_with_upnl() -> None:
    account = ws_data('ws_private_wallet.json')[0]
    row = dict(account['coin'][0], unrealisedPnl='-0.0000125')
    embed = bot.format_wallet('BTC', '0.0011', '0.00102964', account, row, recovered=True)
    assert embed['title'] == 'Balance BTC: 0.0011 → 0.00102964 (-0.00007036)'
    assert fields(embed)['Change'] == '-0.00007036 BTC'
    assert fields(embed)['Unrealised PnL'] == '-0.0000125 BTC'
    assert embed['color'] == bot.COLOR['sell']
    assert embed['footer']['text'] == 'UNIFIED wallet · recovered after a disconnect'


# format_kline ####################################################################################

def test_format_kline_official_payload_confirmed() -> None:
    candle = dict(ws_data('ws_public_kline.json')[0], confirm=True)
    embed = bot.format_kline(candle, 'BTCUSDT', LINEAR)
    # (16677 - 16649.5) / 16649.5 = +0.1652 %
    assert embed['title'] == 'BTCUSDT 5m closed: 16677 (+0.17%)'
    assert fields(embed) == {'Open': '16649.5', 'High': '16677', 'Low': '16608',
                             'Close': '16677', 'Volume': '2.081 BTC', 'Change': '+0.17%'}
    assert embed['color'] == bot.COLOR['buy']
    assert embed['footer']['text'] == '5m candle from 2022-12-29 14:40:00 UTC'
    assert embed['timestamp'] == '2022-12-29T14:40:00+00:00'


def test_format_kline_down_candle_inverse() -> None:
    candle = dict(ws_data('ws_public_kline.json')[0], confirm=True, interval='240', open='20000',
                  close='19000', volume='1500')
    embed = bot.format_kline(candle, 'BTCUSD', INVERSE)
    assert embed['title'] == 'BTCUSD 4h closed: 19000 (-5.00%)'
    assert fields(embed)['Volume'] == '1500 USD'
    assert embed['color'] == bot.COLOR['sell']


@pytest.mark.parametrize(('period', 'label'), [
    ('1', '1m'), ('15', '15m'), ('60', '1h'), ('720', '12h'), ('D', '1D'), ('W', '1W'),
    ('M', '1M')])
def test_period_label(period: str, label: str) -> None:
    assert bot.period_label(period) == label


def test_format_kline_zero_open() -> None:
    candle = dict(ws_data('ws_public_kline.json')[0], confirm=True, open='0')
    embed = bot.format_kline(candle, 'BTCUSDT', LINEAR)
    assert 'Change' not in fields(embed)
    assert embed['title'] == 'BTCUSDT 5m closed: 16677'


# format_status ###################################################################################

@pytest.mark.parametrize(('event', 'title', 'description', 'color'), [
    ({'event': 'down', 'stream': 'private', 'down_s': 75}, 'Private stream down for 75 s',
     'Reconnecting; missed fills will be recovered over REST.', 'warn'),
    ({'event': 'down', 'stream': 'public', 'down_s': 3700}, 'Public stream down for 61 min 40 s',
     'Reconnecting.', 'warn'),
    ({'event': 'restored', 'stream': 'private', 'down_s': 130, 'recovered_fills': 3},
     'Private stream restored', 'Down for 2 min 10 s. 3 fill(s) recovered.', 'buy'),
    ({'event': 'restored', 'stream': 'public', 'down_s': 7300, 'recovered_fills': None},
     'Public stream restored', 'Down for 2 h 1 min.', 'buy'),
    ({'event': 'auth_ok'}, 'Bybit accepts the API key again',
     'Private alerts resume; missed fills are recovered.', 'buy'),
])
def test_format_status_connection_events(event: dict[str, Any], title: str, description: str,
                                         color: str) -> None:
    embed = bot.format_status(event)
    assert embed == {'title': title, 'description': description, 'color': bot.COLOR[color]}


def test_format_status_auth_rejected_escapes_reason() -> None:
    embed = bot.format_status({'event': 'auth_rejected', 'reason': 'Params Error @everyone'})
    assert embed is not None
    assert embed['title'] == 'Bybit rejected the API key'
    assert embed['description'].startswith('Params Error @\u200beveryone\nPrivate alerts are paused')
    assert embed['color'] == bot.COLOR['error']


def test_format_status_topic_rejected() -> None:
    embed = bot.format_status({'event': 'topic_rejected', 'topic': 'kline.7.BTCUSDT',
                               'reason': 'error:handler not found,topic:kline.7.BTCUSDT'})
    assert embed is not None
    assert embed['title'] == 'Bybit refused topic kline.7.BTCUSDT'
    assert embed['description'].startswith('error:handler not found,topic:kline.7.BTCUSDT\n')
    assert 'BYBIT_SYMBOL' in embed['description']


def test_format_status_key_expiry() -> None:
    embed = bot.format_status({'event': 'key_expiry', 'days': 5, 'expires': '2026-01-01T00:00:00Z'})
    assert embed is not None
    assert embed['title'] == 'API key expires in 5 day(s)'
    assert embed['description'].startswith('Expiry: 2026-01-01T00:00:00Z.')
    assert embed['color'] == bot.COLOR['warn']


@pytest.mark.parametrize('event', [{'event': 'disconnected', 'stream': 'public', 'reason': 'x'},
                                   {'event': 'ready', 'stream': 'private'}, {}])
def test_format_status_other_events_give_nothing(event: dict[str, Any]) -> None:
    assert bot.format_status(event) is None


@pytest.mark.parametrize(('seconds', 'text'), [
    (0, '0 s'), (119.4, '119 s'), (120, '2 min 0 s'), (7199, '119 min 59 s'),
    (7200, '2 h 0 min'), (90061, '25 h 1 min')])
def test_duration(seconds: float, text: str) -> None:
    assert bot.duration(seconds) == text


# format_fallback / startup / shutdown ############################################################

def test_format_fallback_lists_essentials_escaped(fill: dict[str, Any]) -> None:
    raw = [dict(fill, execId='@everyone'), 'plain **text**', {'other': '@here'}]
    embed = bot.format_fallback('execution', raw, 'KeyError: boom')
    assert embed['title'] == 'execution event (raw)'
    lines = embed['description'].split('\n')
    assert lines[0] == ('symbol=BTCUSDT, side=Sell, execType=Trade, execQty=0.5, '
                        'execPrice=95900.1, orderId=9aac161b\\-8ed6\\-450d\\-9cab\\-c5cc67c21784, '
                        'execId=@\u200beveryone')
    assert lines[1] == 'plain \\*\\*text\\*\\*'
    assert lines[2] == '{"other": "@\u200bhere"}'
    assert embed['footer'] == {'text': 'formatter error: KeyError: boom'}
    assert embed['color'] == bot.COLOR['warn']


def test_format_fallback_caps_items_and_handles_scalars() -> None:
    embed = bot.format_fallback('order', [{'orderId': str(i)} for i in range(15)], 'E')
    assert embed['description'].split('\n') == [f'orderId={i}' for i in range(10)]
    assert bot.format_fallback('wallet', None, 'E')['description'] == 'None'
    assert bot.format_fallback('wallet', [], 'E')['description'] == '(an empty event)'


def test_format_startup() -> None:
    embed = bot.format_startup({'categories': ['linear', 'inverse'], 'env': 'testnet',
                                'alerts': ['orders', 'fills', 'candles'],
                                'candles': 'BTCUSD × 1m', 'positions': 'flat',
                                'balances': '0.5 BTC', 'total_equity': '40000.00 USD',
                                'api_key': 'read-only',
                                'backlog': '2 alert(s) from the last run, delivered first'})
    assert embed['title'] == 'bybit-ws-notify started'
    assert fields(embed) == {'Watching': 'linear, inverse (testnet)',
                             'Alerts': 'orders, fills, candles', 'Candles': 'BTCUSD × 1m',
                             'Positions': 'flat', 'Balances': '0.5 BTC',
                             'Total equity': '40000.00 USD', 'API key': 'read-only',
                             'Backlog': '2 alert(s) from the last run, delivered first'}
    assert embed['footer']['text'] == f'bybit-ws-notify {bot.__version__}'


def test_format_startup_minimal() -> None:
    embed = bot.format_startup({'categories': [], 'env': 'mainnet', 'alerts': []})
    assert fields(embed) == {'Watching': 'candles only (mainnet)', 'Alerts': 'none'}


def test_format_shutdown() -> None:
    embed = bot.format_shutdown('SIGTERM', 3725.4)
    assert embed['title'] == 'bybit-ws-notify stopped'
    assert fields(embed) == {'Reason': 'SIGTERM', 'Uptime': '62 min 5 s'}
    assert embed['color'] == bot.COLOR['muted']


# Numbers and times ###############################################################################

@pytest.mark.parametrize(('value', 'places', 'text'), [
    ('0.00102964', None, '0.00102964'), ('26864.40', None, '26864.4'), ('1E+3', None, '1000'),
    ('-0.000', None, '0'), ('', None, '-'), (None, None, '-'), ('NaN', None, '-'),
    ('Infinity', None, '-'), ('abc', None, '-'), (True, None, '-'),
    ('10262.91335023', 2, '10262.91'), ('9556.6056555', 2, '9556.61'), ('0.2345', 3, '0.234')])
def test_fmt_num(value: Any, places: int | None, text: str) -> None:
    assert bot.fmt_num(value, places) == text


def test_times() -> None:
    assert bot.fmt_time_ms('1672324800000') == '2022-12-29 14:40:00 UTC'
    assert bot.fmt_time_ms('x') == '-'
    assert bot.iso_ms(1672324800000) == '2022-12-29T14:40:00+00:00'
    assert bot.iso_ms(None) is None


# Issue 7: what real Bybit messages showed ########################################################
# Payloads named realshaped_* are written from the and bybit_v5.md's field lists, not
# official examples.

SPOT = bot.units_for('spot', 'BTCUSDT')


@pytest.mark.parametrize(('value', 'coin', 'text'), [
    ('1037.5', 'USDT', '1037.50'), ('1000', 'USDC', '1000.00'), ('26.3725275', 'USDT', '26.37'),
    ('-0.005', 'USDT', '-0.005'),           # under a cent: keeps its digits
    ('0.0000125', 'USD', '0.0000125'), ('0', 'USDT', '0.00'), ('-0.001', 'USDT', '-0.001'),
    ('0.125', 'USDT', '0.13'),             # half up, as money is rounded
    ('0.00102964', 'BTC', '0.00102964'), ('0.123456789', 'ETH', '0.12345679'),
    ('', 'USDT', ''), (None, 'BTC', ''), ('nan', 'USDT', '')])
def test_fmt_money(value: Any, coin: str, text: str) -> None:
    assert bot.fmt_money(value, coin) == text


def test_fmt_money_signed() -> None:
    assert bot.fmt_money('10', 'USDT', signed=True) == '+10.00'
    assert bot.fmt_money('-9.991', 'USDT', signed=True) == '-9.99'
    assert bot.fmt_money('0', 'BTC', signed=True) == '+0'


@pytest.mark.parametrize(('side', 'fee_currency', 'coin'), [
    ('Buy', None, 'BTC'), ('Sell', None, 'USDT'), ('Buy', '', 'BTC'), ('Buy', 'MNT', 'MNT')])
def test_spot_fee_coin(side: str, fee_currency: str | None, coin: str) -> None:
    spot_fill = ws_data('realshaped_ws_execution_spot_no_feecurrency.json')[0]
    spot_fill = dict(spot_fill, side=side, orderType='Limit', orderQty='0.000104')
    if fee_currency is not None:
        spot_fill['feeCurrency'] = fee_currency
    assert fields(bot.format_execution([spot_fill], SPOT))['Fee'] == f'0.000000104 {coin}'


def test_linear_fee_coin_without_fee_currency_is_the_settle_coin(fill: dict[str, Any]) -> None:
    del fill['feeCurrency']
    assert fields(bot.format_execution([dict(fill, extraFees='')], LINEAR))['Fee'] == \
        '26.3725275 USDT'


def test_spot_market_buy_without_market_unit_is_sized_in_quote() -> None:
    order = ws_data('realshaped_ws_order_spot_market_buy_2023.json')[0]
    assert 'marketUnit' not in order
    embed = bot.format_order(order, SPOT)
    assert embed['title'] == 'Order Filled: Buy Market 10 USDT BTCUSDT spot'
    assert fields(embed)['Filled'] == '0.000104 BTC for 9.98631 / 10 USDT'
    assert fields(embed)['Avg price'] == '96022.2'
    # marketUnit decides when present; a spot market sell, and a linear market buy, are in coin.
    assert bot.format_order(dict(order, marketUnit='baseCoin', qty='0.0001'), SPOT)['title'] == \
        'Order Filled: Buy Market 0.0001 BTC BTCUSDT spot'
    assert '0.01 BTC' in bot.format_order(dict(order, side='Sell', qty='0.01'), SPOT)['title']
    assert '10 BTC' in bot.format_order(dict(order, category='linear'), SPOT)['title']


def test_spot_market_buy_fill_against_a_quote_order_qty() -> None:
    spot_fill = ws_data('realshaped_ws_execution_spot_no_feecurrency.json')[0]
    got = fields(bot.format_execution([spot_fill], SPOT))
    assert got['Filled'] == '0.000104 BTC for 9.9862984 / 10 USDT'  # not "0.000104 / 10 BTC"


def test_closing_fill_without_exec_pnl_shows_no_realised_pnl() -> None:
    close = ws_data('realshaped_ws_execution_linear_close_no_execpnl.json')[0]
    assert 'execPnl' not in close and close['closedSize'] == '0.01'
    got = fields(bot.format_execution([close], LINEAR))
    assert 'Realised PnL' not in got  # it showed "Realised PnL: 0 USDT"
    with_pnl = dict(close, execId='b', execPnl='-1.2345')
    assert fields(bot.format_execution([with_pnl], LINEAR))['Realised PnL'] == '-1.23 USDT'
    # One closing fill of the group without execPnl: a partial sum would be a made-up figure.
    assert 'Realised PnL' not in fields(bot.format_execution([with_pnl, close], LINEAR))


def test_extra_fees_are_added_to_the_fee_or_shown_beside_it(fill: dict[str, Any]) -> None:
    gst = {'feeCoin': 'USDT', 'feeType': 'GST', 'subFeeType': 'IND_GST', 'feeRate': '0.0000675',
           'fee': '0.006403779'}
    inr = {'feeCoin': 'INR', 'feeType': 'TDS', 'subFeeType': '', 'feeRate': '0.01', 'fee': '5'}
    two = [dict(fill, execId='a', extraFees=[gst]), dict(fill, execId='b', extraFees=[gst, inr])]
    got = fields(bot.format_execution(two, LINEAR))
    # 2 x 26.3725275 + 2 x 0.006403779 = 52.757862558
    assert got['Fee'] == '52.757862558 USDT (incl. GST 0.012807558)'
    assert got['Extra fees'] == 'TDS 5 INR'
    as_text = dict(fill, extraFees=json.dumps([gst]))      # the same list sent as a JSON string
    assert fields(bot.format_execution([as_text], LINEAR))['Fee'] == \
        '26.378931279 USDT (incl. GST 0.006403779)'
    assert 'incl.' not in fields(bot.format_execution([dict(fill, extraFees='')], LINEAR))['Fee']


def test_funding_paid_and_received_official_shape() -> None:
    funding = ws_data('realshaped_ws_execution_funding.json')[0]
    embed = bot.format_execution([funding], LINEAR)
    assert embed['title'] == 'Funding paid: 4.750025 USDT on BTCUSDT Long 0.5 BTC'
    assert fields(embed) == {'Amount': '4.750025 USDT paid', 'Position': 'Long 0.5 BTC',
                             'Mark price': '95000.5', 'Funding rate': '0.01%'}
    received = bot.format_execution([dict(funding, execFee='-0.061', feeRate='-0.00005',
                                          side='Sell')], LINEAR)
    assert received['title'] == 'Funding received: 0.061 USDT on BTCUSDT Short 0.5 BTC'
    assert fields(received)['Funding rate'] == '-0.005%'
    inverse = bot.format_execution([dict(funding, symbol='BTCUSD', execQty='300',
                                         execFee='0.00000316', feeCurrency='')], INVERSE)
    assert inverse['title'] == 'Funding paid: 0.00000316 BTC on BTCUSD Long 300 USD'


@pytest.mark.parametrize(('code', 'words'), [
    ('EC_CancelForNoFullFill', 'the rest was cancelled (not fully filled)'),
    ('CancelByUser', 'cancelled by you'),
    ('CancelByTpSlTsClear', 'cancelled: its TP/SL was cleared'),
    ('EC_ReachMaxPositionLimit', 'reach max position limit'),   # not in the table: spelled out
    ('EC_Weird_*Code*', r'weird \*code\*')])
def test_reason_words(code: str, words: str) -> None:
    assert bot.reason_words(code) == words


def test_ioc_rest_cancelled_is_not_a_failure() -> None:
    linear, spot = ws_data('realshaped_ws_order_ioc_rest_cancelled.json')
    embed = bot.format_order(linear, LINEAR)
    assert embed['title'] == 'Order Partially filled, rest cancelled: Sell Market 0.5 BTC BTCUSDT'
    assert fields(embed) == {'Status': 'Partially filled, rest cancelled', 'Side': 'Sell',
                             'Filled': '0.3 / 0.5 BTC', 'Avg price': '95880.2',
                             'Reason': 'the rest was cancelled (not fully filled)'}
    assert embed['color'] == bot.COLOR['sell']
    assert embed['footer']['text'] == ('order b4d5a6c7-1111-4e2f-9a3b-1c2d3e4f5a6b · '
                                       'EC_CancelForNoFullFill')
    embed = bot.format_order(spot, SPOT)
    assert embed['title'] == ('Order Partially filled, rest cancelled: Buy Limit 0.002 BTC '
                              'BTCUSDT spot @ 96000')
    assert fields(embed)['Status'] == 'Partially filled, rest cancelled'
    # Nothing filled: a plain Cancelled.
    nothing = dict(linear, cumExecQty='0', avgPrice='', rejectReason='EC_NoImmediateQtyToFill')
    assert bot.format_order(nothing, LINEAR)['title'].startswith('Order Cancelled: ')


def test_position_without_cur_realised_pnl_has_no_pnl_field() -> None:
    row = ws_data('realshaped_ws_position_no_curRealisedPnl.json')[0]
    cur = bot.position_view(row)
    embed = bot.format_position('opened', bot.flat_position(cur), cur, LINEAR)
    got = fields(embed)
    assert 'Realised PnL' not in got     # it showed "- USDT"
    assert 'Liq. price' not in got       # liqPrice "": it showed "-"
    assert got == {'Side': 'Long', 'Size': '0 → 0.02 BTC', 'Entry': '16811.5',
                   'Mark': '16887.85', 'Unrealised PnL': '1.53 USDT', 'Leverage': '10x'}


def test_classic_spot_wallet_leaves_out_what_bybit_left_empty() -> None:
    account = ws_data('realshaped_ws_wallet_classic_spot.json')[0]
    embed = bot.format_wallet('USDT', '1000', '990.01369', account, account['coin'][0])
    assert embed['title'] == 'Balance USDT: 1000.00 → 990.01 (-9.99)'
    assert fields(embed) == {'Wallet balance': '990.01 USDT', 'Change': '-9.99 USDT'}
    assert embed['footer']['text'] == 'SPOT wallet'


def test_borrowed_balance_is_shown_as_borrowed() -> None:
    account = ws_data('realshaped_ws_wallet_unified_borrow.json')[0]
    row = account['coin'][0]
    embed = bot.format_wallet('USDT', '1000.2', '-499.8912', account, row)
    assert embed['title'] == 'Balance USDT: 1000.20 → -499.89 (-1500.09), 500.11 borrowed'
    assert fields(embed) == {'Wallet balance': '-499.89 USDT', 'Change': '-1500.09 USDT',
                             'Borrowed': '500.11 USDT', 'Equity': '-499.89 USDT',
                             'Account equity': '1510.83 USD', 'Available': '1402.63 USD'}
    only_spot = dict(row, borrowAmount='', spotBorrow='20')
    assert fields(bot.format_wallet('USDT', '1', '2', account, only_spot))['Borrowed'] == \
        '20.00 USDT'
    assert bot.describe_balances([account]) == (
        '-499.89 USDT, 500.11 USDT borrowed', '1510.83 USD')


def test_startup_descriptions_leave_out_missing_values() -> None:
    account = ws_data('realshaped_ws_wallet_classic_spot.json')[0]
    # equity "": not "(equity -)"; a classic wallet sends no totalEquity: none shown
    assert bot.describe_balances([account]) == ('990.01 USDT', '')
    assert bot.describe_balances([]) == ('no balance', '')          # not an invented 0
    row = dict(ws_data('realshaped_ws_position_no_curRealisedPnl.json')[0], unrealisedPnl='')
    assert bot.describe_positions([('linear', [row])]) == 'BTCUSDT Long 0.02 BTC @ 16811.5'
    assert bot.describe_positions([('inverse', [rest_rows('rest_position_list.json')[0]])]) == (
        'BTCUSD Short 300 USD @ 27464.50441675, uPnL -0.00029413 BTC')


def test_spot_market_buy_fill_without_exec_value() -> None:
    spot_fill = dict(ws_data('realshaped_ws_execution_spot_no_feecurrency.json')[0], execValue='')
    assert fields(bot.format_execution([spot_fill], SPOT))['Filled'] == '0.000104 BTC of 10 USDT'
