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
from fake_bybit import FakeBybit, sign_rest, sign_ws_auth
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
