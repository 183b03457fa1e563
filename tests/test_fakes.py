"""Self-tests for the fakes: they must behave as the reference docs say before other tests trust them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import websocket
from fake_bybit import (
    OPTION_SYMBOL,
    PUBLIC_CATEGORIES,
    FakeBybit,
    sign_rest,
    sign_ws_auth,
)
from fake_discord import FakeDiscord


@pytest.fixture(scope="module")
def bybit() -> Iterator[FakeBybit]:
    with FakeBybit() as fake:
        yield fake


@pytest.fixture()
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


def ws_connect(url: str) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=5)


def ask(ws: websocket.WebSocket, msg: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(msg))
    return json.loads(ws.recv())


def auth_msg(fake: FakeBybit, *, secret: str | None = None, expires_in_ms: int = 10_000) -> dict[str, Any]:
    expires = int(time.time() * 1000) + expires_in_ms
    signature = sign_ws_auth(secret or fake.api_secret, expires)
    return {"op": "auth", "args": [fake.api_key, expires, signature]}


def signed_get(fake: FakeBybit, path: str, params: dict[str, Any], *, secret: str | None = None) -> requests.Response:
    query = urlencode(params)
    ts = str(int(time.time() * 1000))
    headers = {
        "X-BAPI-API-KEY": fake.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": sign_rest(secret or fake.api_secret, ts, fake.api_key, "5000", query),
    }
    return requests.get(f"{fake.rest_url}{path}?{query}", headers=headers, timeout=5)


# FakeBybit: WebSocket ##########################################################


def test_private_auth_ok_and_failures(bybit: FakeBybit) -> None:
    ws = ws_connect(bybit.private_url)
    try:
        denied = ask(ws, {"op": "subscribe", "args": ["execution"]})
        assert denied == {"success": False, "ret_msg": "Request not authorized", "op": "subscribe",
                          "conn_id": denied["conn_id"]}
        bad = ask(ws, auth_msg(bybit, secret="wrong-secret"))
        assert bad["success"] is False and bad["ret_msg"] == "error:invalid apikey or signature"
        expired = ask(ws, auth_msg(bybit, expires_in_ms=-1000))
        assert expired["success"] is False and expired["ret_msg"] == "Params Error"
        ok = ask(ws, {**auth_msg(bybit), "req_id": "a1"})
        assert ok == {"success": True, "ret_msg": "", "op": "auth", "conn_id": ok["conn_id"], "req_id": "a1"}
        assert [a["ok"] for a in bybit.auth_attempts[-3:]] == [False, False, True]
    finally:
        ws.close()


def test_pong_shapes_per_channel(bybit: FakeBybit) -> None:
    linear, spot, private = (ws_connect(u) for u in (bybit.public_url_for("linear"), bybit.public_url_for("spot"),
                                                      bybit.private_url))
    try:
        pong = ask(linear, {"op": "ping"})
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"], "req_id": "", "op": "ping"}
        pong = ask(spot, {"op": "ping", "req_id": "x"})
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"], "op": "ping"}
        pong = ask(private, {"op": "ping", "req_id": "test"})
        assert set(pong) == {"req_id", "op", "args", "conn_id"} and pong["op"] == "pong"
        assert pong["req_id"] == "test" and abs(int(pong["args"][0]) - time.time() * 1000) < 5000
        assert "req_id" not in ask(private, {"op": "ping"})
    finally:
        for ws in (linear, spot, private):
            ws.close()


def test_subscribe_acks_and_invalid_symbol(bybit: FakeBybit) -> None:
    linear, spot = ws_connect(bybit.public_url_for("linear")), ws_connect(bybit.public_url_for("spot"))
    try:
        ack = ask(linear, {"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
        assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"], "req_id": "", "op": "subscribe"}
        bad = ask(linear, {"op": "subscribe", "req_id": "r2", "args": ["tickers.BTCUSDT", "publicTrade.NOTASYMBOL"]})
        assert bad == {"success": False, "ret_msg": "error:handler not found,topic:publicTrade.NOTASYMBOL",
                       "conn_id": ack["conn_id"], "req_id": "r2", "op": "subscribe"}
        dup = ask(linear, {"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
        assert dup["success"] is False and dup["ret_msg"] == "error:already subscribed,topic:kline.1.BTCUSDT"
        assert ask(linear, {"op": "subscribe", "args": ["orderbook.500.BTCUSDT"]})["success"] is False
        # The whole bad request failed: its valid topic was not subscribed either.
        assert not any("tickers.BTCUSDT" in subs for subs in bybit.subscriptions("public"))
        ack = ask(spot, {"op": "subscribe", "req_id": "10001", "args": ["tickers.BTCUSDT"]})
        assert ack == {"success": True, "ret_msg": "subscribe", "conn_id": ack["conn_id"], "req_id": "10001",
                       "op": "subscribe"}
        too_many = ask(spot, {"op": "subscribe", "args": [f"tickers.C{i}USDT" for i in range(11)]})
        assert too_many["success"] is False
    finally:
        linear.close()
        spot.close()


def test_option_public_stream_pong_acks_and_no_kline(bybit: FakeBybit) -> None:
    assert "option" in PUBLIC_CATEGORIES and bybit.public_url_for("option").endswith("/v5/public/option")
    option = ws_connect(bybit.public_url_for("option"))
    try:
        pong = ask(option, {"op": "ping", "req_id": "p1"})
        assert set(pong) == {"args", "op"} and pong["op"] == "pong"
        assert abs(int(pong["args"][0]) - time.time() * 1000) < 5000
        book, ticker = f"orderbook.25.{OPTION_SYMBOL}", f"tickers.{OPTION_SYMBOL}"
        ack = ask(option, {"op": "subscribe", "req_id": "s1", "args": [book, ticker]})
        assert ack == {"success": True, "conn_id": ack["conn_id"],
                       "data": {"failTopics": [], "successTopics": [book, ticker]}, "type": "COMMAND_RESP"}
        # No option kline on Bybit; linear book depths and duplicates fail topic by topic.
        kline, trade = f"kline.1.{OPTION_SYMBOL}", "publicTrade.BTC"
        bad = ask(option, {"op": "subscribe", "args": [kline, f"orderbook.50.{OPTION_SYMBOL}", ticker, trade]})
        assert bad["success"] is False and bad["type"] == "COMMAND_RESP"
        assert bad["data"] == {"failTopics": [kline, f"orderbook.50.{OPTION_SYMBOL}", ticker],
                               "successTopics": [trade]}
        bybit.wait_subscribed(trade)
        assert not any(kline in subs for subs in bybit.subscriptions("public"))
        assert bybit.push_public(ticker, {"symbol": OPTION_SYMBOL}, category="linear") == 0
        assert bybit.push_public(ticker, {"symbol": OPTION_SYMBOL}, category="option") == 1
        assert json.loads(option.recv())["data"] == {"symbol": OPTION_SYMBOL}
        off = ask(option, {"op": "unsubscribe", "args": [trade]})
        assert off["success"] is True and off["data"]["successTopics"] == [trade]
        assert not any(trade in subs for subs in bybit.subscriptions("public"))
    finally:
        option.close()


def test_publish_and_private_push_reach_subscribers(bybit: FakeBybit) -> None:
    pub, priv = ws_connect(bybit.public_url_for("linear")), ws_connect(bybit.private_url)
    try:
        ask(pub, {"op": "subscribe", "args": ["kline.5.BTCUSDT"]})
        assert ask(priv, auth_msg(bybit))["success"] is True
        ack = ask(priv, {"op": "subscribe", "args": ["execution.linear"]})
        assert ack == {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": ack["conn_id"]}
        bybit.wait_subscribed("kline.5.BTCUSDT")
        bybit.wait_subscribed("execution.linear")

        assert bybit.publish("kline.5.BTCUSDT", {"topic": "kline.5.BTCUSDT", "data": [1]}) == 1
        assert json.loads(pub.recv()) == {"topic": "kline.5.BTCUSDT", "data": [1]}

        assert bybit.push_private("execution", [bybit.make_execution(category="spot")]) == 0
        fill = bybit.make_execution()
        assert bybit.add_execution(fill) == 1
        msg = json.loads(priv.recv())
        assert msg["topic"] == "execution.linear" and msg["data"] == [fill]
        assert set(msg) == {"id", "topic", "creationTime", "data"}
    finally:
        pub.close()
        priv.close()


def test_all_in_one_execution_gets_every_category_and_wallet_many_coins(bybit: FakeBybit) -> None:
    everything, options_only = ws_connect(bybit.private_url), ws_connect(bybit.private_url)
    try:
        for ws in (everything, options_only):
            assert ask(ws, auth_msg(bybit))["success"] is True
        assert ask(everything, {"op": "subscribe", "args": ["execution", "wallet"]})["success"] is True
        assert ask(options_only, {"op": "subscribe", "args": ["execution.option"]})["success"] is True
        bybit.wait_subscribed("wallet")
        bybit.wait_subscribed("execution.option")
        fills = [bybit.make_execution(category=c) for c in ("linear", "inverse", "spot", "option")]
        bybit.push_private("execution", fills)
        msg = json.loads(everything.recv())
        assert msg["topic"] == "execution" and msg["data"] == fills
        msg = json.loads(options_only.recv())
        assert msg["topic"] == "execution.option" and msg["data"] == [fills[3]]
        wallet = bybit.make_wallet_coins({"USDT": "1000", "BTC": "0.5", "USDC": "200"})
        bybit.push_private("wallet", [wallet])
        msg = json.loads(everything.recv())
        assert msg["topic"] == "wallet" and [c["coin"] for c in msg["data"][0]["coin"]] == ["USDT", "BTC", "USDC"]
    finally:
        everything.close()
        options_only.close()


def test_unknown_path_rejected_and_drop_aborts(bybit: FakeBybit) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        ws_connect(bybit.ws_base + "/realtime")
    assert err.value.status_code == 404
    ws = ws_connect(bybit.private_url)
    try:
        bybit.wait_connections("private", 1)
        before = bybit.private_connects
        assert bybit.drop("private") >= 1
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
            ws.recv()
        assert bybit.private_connects == before
    finally:
        ws.close()


def test_silent_swallows_replies(bybit: FakeBybit) -> None:
    ws = ws_connect(bybit.public_url_for("inverse"))
    try:
        bybit.silent.add("public")
        ws.settimeout(0.3)
        ws.send(json.dumps({"op": "ping"}))
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        bybit.silent.discard("public")
        ws.settimeout(5)
        assert ask(ws, {"op": "ping"})["ret_msg"] == "pong"
        assert ("public", {"op": "ping"}) in bybit.received
    finally:
        bybit.silent.clear()
        ws.close()


# FakeBybit: REST ##############################################################


def test_rest_signature_checks(bybit: FakeBybit) -> None:
    ok = signed_get(bybit, "/v5/user/query-api", {}).json()
    assert ok["retCode"] == 0 and ok["result"]["readOnly"] == 1 and ok["result"]["apiKey"] == bybit.api_key
    bad = signed_get(bybit, "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, secret="nope").json()
    assert bad["retCode"] == 10004 and bad["retMsg"].startswith("error sign!")
    assert set(bad) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert requests.get(bybit.rest_url + "/v5/market/time", timeout=5).json()["retCode"] == 0


def test_rest_post_is_405_and_recorded(bybit: FakeBybit) -> None:
    resp = requests.post(bybit.rest_url + "/v5/order/create", json={"symbol": "BTCUSDT"}, timeout=5)
    assert resp.status_code == 405
    assert any(v.startswith("POST /v5/order/create") for v in bybit.rest_violations)


def test_execution_list_paginates_descending(bybit: FakeBybit) -> None:
    base = bybit.server_time_ms() - 60_000
    fills = [bybit.make_execution(symbol="PAGEUSDT", execTime=str(base + i * 10)) for i in range(7)]
    for fill in fills:
        bybit.add_execution(fill, push=False)
    got: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(10):
        params = {"category": "linear", "symbol": "PAGEUSDT", "limit": 3, "startTime": base - 1}
        if cursor:
            params["cursor"] = cursor
        result = signed_get(bybit, "/v5/execution/list", params).json()["result"]
        got += result["list"]
        cursor = result["nextPageCursor"]
        if not cursor:
            break
    assert [e["execId"] for e in got] == [f["execId"] for f in reversed(fills)]
    assert signed_get(bybit, "/v5/execution/list", {"symbol": "BTCUSDT"}).json()["retCode"] == 10001


def test_factories_have_realistic_defaults_per_category(bybit: FakeBybit) -> None:
    linear = bybit.make_execution()
    assert (linear["category"], linear["symbol"], linear["execQty"], linear["feeCurrency"]) == \
        ("linear", "BTCUSDT", "0.001", "USDT")
    inverse = bybit.make_execution(category="inverse")
    assert (inverse["symbol"], inverse["execQty"], inverse["feeCurrency"]) == ("BTCUSD", "100", "BTC")
    assert float(inverse["execFee"]) < 1e-5 and float(inverse["execValue"]) < 0.01  # in BTC
    spot_buy, spot_sell = bybit.make_execution(category="spot"), bybit.make_execution(category="spot", side="Sell")
    assert (spot_buy["symbol"], spot_buy["feeCurrency"], spot_sell["feeCurrency"]) == ("BTCUSDT", "BTC", "USDT")
    assert not {"closedSize", "execPnl", "createType"} & set(spot_buy)
    assert bybit.make_execution(category="spot", feeCurrency="")["feeCurrency"] == ""
    option = bybit.make_execution(category="option")
    assert (option["symbol"], option["execQty"], option["feeCurrency"]) == (OPTION_SYMBOL, "0.1", "USDC")
    assert all(option[f] for f in ("markIv", "tradeIv", "indexPrice", "underlyingPrice"))
    explicit = bybit.make_execution(category="inverse", symbol="ETHUSD", execQty="7")
    assert (explicit["symbol"], explicit["execQty"], explicit["category"]) == ("ETHUSD", "7", "inverse")

    assert bybit.make_order()["symbol"] == "BTCUSDT" and bybit.make_order()["createType"] == "CreateByUser"
    assert (bybit.make_order(category="inverse")["symbol"], bybit.make_order(category="inverse")["qty"]) == \
        ("BTCUSD", "100")
    assert "createType" not in bybit.make_order(category="spot")
    assert bybit.make_order(category="option")["symbol"] == OPTION_SYMBOL

    inverse_pos = bybit.make_position(category="inverse")
    assert (inverse_pos["symbol"], inverse_pos["size"]) == ("BTCUSD", "100")
    assert float(inverse_pos["positionValue"]) < 0.01  # BTC, not USD
    option_pos = bybit.make_position(category="option", ws=True)
    assert option_pos["symbol"] == OPTION_SYMBOL and "entryPrice" in option_pos and "avgPrice" not in option_pos
    assert all(option_pos[g] for g in ("delta", "gamma", "vega", "theta"))
    assert "delta" not in bybit.make_position()
    with pytest.raises(ValueError):
        bybit.make_position(category="spot")


def test_wallet_of_many_coins_and_coin_filter(bybit: FakeBybit) -> None:
    wallet = bybit.make_wallet_coins({"USDT": "1000", "BTC": "0.5", "USDC": "200"})
    rows = {c["coin"]: c for c in wallet["coin"]}
    assert rows["BTC"]["walletBalance"] == "0.5" and rows["BTC"]["usdValue"] == "47925"
    assert wallet["totalEquity"] == wallet["totalWalletBalance"] == "49125"
    assert bybit.make_wallet_coins({"ETH": "2"}, prices={"ETH": "3000"})["totalEquity"] == "6000"
    with pytest.raises(ValueError):
        bybit.make_wallet_coins({"NOPRICE": "1"})
    saved = bybit.wallet
    bybit.wallet = wallet
    try:
        every = signed_get(bybit, "/v5/account/wallet-balance", {"accountType": "UNIFIED"}).json()
        assert [c["coin"] for c in every["result"]["list"][0]["coin"]] == ["USDT", "BTC", "USDC"]
        some = signed_get(bybit, "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "BTC,USDC"}).json()
        assert [c["coin"] for c in some["result"]["list"][0]["coin"]] == ["BTC", "USDC"]
        assert some["result"]["list"][0]["totalEquity"] == "49125"
    finally:
        bybit.wallet = saved


def test_rest_serves_every_category_side_by_side_without_row_category() -> None:
    categories = ("linear", "inverse", "spot", "option")
    with FakeBybit() as fake:
        for category in categories:
            fake.add_execution(fake.make_execution(category=category), push=False)
            fake.open_orders.append(fake.make_order(category=category))
            fake.order_history.append(fake.make_order(category=category, orderStatus="Filled"))
        fake.positions += [
            fake.make_position(),
            fake.make_position(category="inverse"),
            fake.make_position(category="inverse", symbol="ETHUSD", size="0", side=""),
            fake.make_position(category="option"),
            fake.make_position(category="option", symbol="ETH-31DEC27-4000-P"),
            fake.make_position(category="option", symbol="BTC-31DEC27-90000-P", size="0", side=""),
        ]
        symbols = {"linear": "BTCUSDT", "inverse": "BTCUSD", "spot": "BTCUSDT", "option": OPTION_SYMBOL}
        for category in categories:
            for path in ("/v5/execution/list", "/v5/order/realtime", "/v5/order/history"):
                params = {"category": category, **({"settleCoin": "USDT"} if category == "linear" else {})}
                result = signed_get(fake, path, params).json()["result"]
                assert result["category"] == category
                assert [row["symbol"] for row in result["list"]] == [symbols[category]], (path, category)
                assert all("category" not in row for row in result["list"])
        assert signed_get(fake, "/v5/order/realtime", {"category": "linear"}).json()["retCode"] == 10001
        assert all("category" in e for e in fake.executions)  # the stored model keeps it for WS pushes

        def positions(params: dict[str, Any]) -> dict[str, Any]:
            return signed_get(fake, "/v5/position/list", params).json()

        assert positions({"category": "linear"})["retCode"] == 10001
        spot = positions({"category": "spot"})
        assert spot["retCode"] == 10001 and "Illegal category" in spot["retMsg"]
        assert [p["symbol"] for p in positions({"category": "inverse"})["result"]["list"]] == ["BTCUSD"]
        assert positions({"category": "inverse", "symbol": "ETHUSD"})["result"]["list"][0]["size"] == "0"
        option = positions({"category": "option"})["result"]
        assert sorted(p["symbol"] for p in option["list"]) == sorted([OPTION_SYMBOL, "ETH-31DEC27-4000-P"])
        assert all("category" not in p and p["delta"] for p in option["list"])
        only_eth = positions({"category": "option", "baseCoin": "ETH"})["result"]["list"]
        assert [p["symbol"] for p in only_eth] == ["ETH-31DEC27-4000-P"]

        assert len(fake.rest_calls("/v5/position/list", "option")) == 2
        assert len(fake.rest_calls("/v5/order/realtime", "linear")) == 2
        assert len(fake.rest_calls("/v5/execution/list")) == 4
        assert len(fake.rest_calls(category="spot")) == 4


def test_restart_reuses_ports_without_leaking_threads() -> None:
    # Compare thread sets, not counts: threads of earlier tests may still be finishing.
    before = set(threading.enumerate())
    fake = FakeBybit().start()
    urls = (fake.private_url, fake.rest_url)
    fake.stop()
    fake.start()
    assert (fake.private_url, fake.rest_url) == urls
    fake.stop()
    with FakeDiscord():
        pass
    assert [t.name for t in set(threading.enumerate()) - before] == []


# FakeDiscord ##################################################################


def embed_payload(**extra: Any) -> dict[str, Any]:
    return {
        "embeds": [{"title": "Fill BTCUSDT", "description": "Buy 0.001 @ 95850",
                    "fields": [{"name": "Side", "value": "Buy", "inline": True}]}],
        "allowed_mentions": {"parse": []},
        **extra,
    }


def test_discord_accepts_valid_embed(discord: FakeDiscord) -> None:
    resp = requests.post(discord.url_v10, params={"wait": "true"}, json=embed_payload(), timeout=5)
    assert resp.status_code == 200 and resp.json()["id"].isdigit()
    assert resp.headers["X-RateLimit-Limit"] == "5" and resp.headers["X-RateLimit-Remaining"] == "4"
    assert resp.headers["Via"] == "1.1 google"
    assert discord.embeds()[0]["title"] == "Fill BTCUSDT" and discord.violations == []


def test_discord_rejects_bad_payloads(discord: FakeDiscord) -> None:
    long = requests.post(discord.url, params={"wait": "true"}, timeout=5,
                         json={"content": "x" * 2001, "allowed_mentions": {"parse": []}})
    assert long.status_code == 400 and long.json()["code"] == 50035
    assert long.json()["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    no_mentions = requests.post(discord.url, params={"wait": "true"}, json={"content": "hi"}, timeout=5)
    assert no_mentions.status_code == 400 and "allowed_mentions" in no_mentions.json()["errors"]
    empty = requests.post(discord.url, params={"wait": "true"}, json={"allowed_mentions": {"parse": []}}, timeout=5)
    assert empty.status_code == 400 and empty.json()["code"] == 50006
    assert len(discord.rejected) == 3 and discord.messages == []
    assert any("allowed_mentions" in v for v in discord.violations)


def test_discord_scripted_429_then_success(discord: FakeDiscord) -> None:
    discord.fail_next(1, 429, retry_after=0.2)
    first = requests.post(discord.url, params={"wait": "true"}, json=embed_payload(), timeout=5)
    assert first.status_code == 429 and first.json()["retry_after"] == 0.2
    assert first.headers["X-RateLimit-Scope"] == "user" and "Retry-After" in first.headers
    time.sleep(first.json()["retry_after"])
    second = requests.post(discord.url, params={"wait": "true"}, json=embed_payload(), timeout=5)
    assert second.status_code == 200 and len(discord.messages) == 1
    assert discord.count_status(429) == 1


def test_discord_bucket_and_deleted_webhook() -> None:
    with FakeDiscord(limit=2, window_s=0.5) as discord:
        codes = [requests.post(discord.url, params={"wait": "true"}, json=embed_payload(), timeout=5).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429] and len(discord.rate_limited) == 1
        discord.delete_webhook()
        gone = requests.post(discord.url, params={"wait": "true"}, json=embed_payload(), timeout=5)
        assert gone.status_code == 404 and gone.json() == {"message": "Unknown Webhook", "code": 10015}
        wrong = requests.post(discord.url + "x", json=embed_payload(), timeout=5)
        assert wrong.status_code == 404
        discord.restore_webhook()
        wrong = requests.post(discord.url + "x", json=embed_payload(), timeout=5)
        assert wrong.status_code == 401 and wrong.json()["code"] == 50027
