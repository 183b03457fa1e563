"""Fake Discord webhook endpoint for tests.

A ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) in a daemon thread that validates
Execute Webhook bodies the way ``shared/docs/discord.md`` sections 1-3 describe, keeps a real
per-webhook rate-limit bucket, and can be scripted to fail (429s, IP bans, 5xx, deleted
webhook, hangs)::

    with FakeDiscord() as discord:
        ...run the script with DISCORD_WEBHOOK_URL=discord.url...
        embeds = discord.wait_for(lambda e: any("BTCUSDT" in str(x) for x in e), timeout=10)

A restarted instance (``stop()`` then ``start()``) binds the same port again when it can.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tracking_http import TrackingHTTPServer

HOST = "127.0.0.1"
DISCORD_EPOCH_MS = 1_420_070_400_000
ALLOWED_FLAGS = 4 | 4096 | 32768  # SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2
IP_BAN_MESSAGE = (
    "You are being blocked from accessing our API temporarily due to exceeding our rate limits "
    "frequently. Please read our docs at https://discord.com/developers/docs/topics/rate-limits "
    "to prevent this moving forward."
)
logger = logging.getLogger(__name__)
_WEBHOOK_PATH = re.compile(r"^/api(?:/v(?P<version>\d+))?/webhooks/(?P<id>[^/]+)/(?P<token>[^/]+)/?$")


class _Reply:
    """One HTTP response to write."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(obj).encode(), "application/json", headers)


class _Handler(BaseHTTPRequestHandler):
    """Routes every HTTP method to FakeDiscord._handle."""

    server: TrackingHTTPServer
    # Discord keeps connections open, as requests.Session expects; and, as a real server, it does
    # not hold the body of a reply back for the ACK of its headers (Nagle + delayed ACK: 40 ms).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 10

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_PUT(self) -> None:
        self.server.owner._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.owner._handle(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.owner._handle(self, "DELETE")


class _ErrorTree:
    """Builds Discord's nested 50035 ``errors`` object."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: list[Any], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def check_str(self, path: list[Any], value: Any, max_len: int, required: bool = False) -> int:
        """Validate an optional/required string; return its length (0 if absent/invalid)."""
        if value is None:
            if required:
                self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return 0
        if not isinstance(value, str):
            self.add(path, "BASE_TYPE_STRING", "Must be a valid string.")
            return 0
        if required and not value.strip():
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        if len(value) > max_len:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {max_len} or fewer in length.")
        return len(value)


class FakeDiscord:
    """In-process fake of a Discord Execute Webhook endpoint with validation, rate limits and faults.

    Records: ``messages`` (accepted), ``rejected`` (400s), ``requests`` (everything),
    ``violations`` (client-policy breaches), ``rate_limited`` (bucket 429s).
    """

    def __init__(
        self,
        webhook_id: str = "123456789012345678",
        token: str = "fake-token-Do_Not-Leak",
        limit: int = 5,
        window_s: float = 2.0,
    ) -> None:
        self.webhook_id = webhook_id
        self.token = token
        self.limit = limit
        self.window_s = window_s
        self.channel_id = "987654321098765432"
        self.bucket_id = "a06de2d5c9dc2b4e8f1c2d3e4f5a6b7c"
        self.enforce_bucket = True
        self.latency_s = 0.0
        self.poison: str | None = None  # an embed containing this text is refused (400 50035)

        self.messages: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.rate_limited: list[dict[str, Any]] = []

        self._lock = threading.RLock()
        self._remaining = limit
        self._reset_at = 0.0  # monotonic; 0 = window not started
        self._scripted: list[list[Any]] = []  # [count, reply-factory]
        self._fail_until = 0.0
        self._fail_status = 0
        self._hang: list[float] = []  # [count, seconds]
        self._deleted = False
        self._last_id = 0

        self._stopping = threading.Event()
        self._http: TrackingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # Lifecycle ##################################################################

    def start(self) -> FakeDiscord:
        """Start serving (reusing the previous port on a restart)."""
        if self._http is not None:
            return self
        self._stopping.clear()
        try:
            self._http = TrackingHTTPServer((HOST, self._port), _Handler, self, "fake-discord-req")
        except OSError:
            if self._port == 0:
                raise
            self._http = TrackingHTTPServer((HOST, 0), _Handler, self, "fake-discord-req")
        self._port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-discord"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hung requests and join every thread. Idempotent."""
        if self._http is None:
            return
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._http.close_active()
        if self._thread is not None:
            self._thread.join(10)
        self._http = None
        self._thread = None

    def __enter__(self) -> FakeDiscord:  # noqa: PYI034 (typing.Self needs 3.11)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self._port}"

    @property
    def url(self) -> str:
        """Webhook URL as Discord's UI shows it (unversioned)."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.token}"

    @property
    def url_v10(self) -> str:
        """Versioned webhook URL (``/api/v10/...``)."""
        return f"{self.base_url}/api/v10/webhooks/{self.webhook_id}/{self.token}"

    # Inspection #################################################################

    def embeds(self) -> list[dict[str, Any]]:
        """All accepted embeds, flattened in arrival order."""
        with self._lock:
            return [e for m in self.messages for e in (m["payload"].get("embeds") or [])]

    def contents(self) -> list[str]:
        """The ``content`` of every accepted message (empty string when absent)."""
        with self._lock:
            return [m["payload"].get("content") or "" for m in self.messages]

    def count_status(self, code: int) -> int:
        """How many requests were answered with HTTP ``code``."""
        with self._lock:
            return sum(1 for r in self.requests if r["status"] == code)

    def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll ``embeds()`` until ``pred(embeds)`` is true; AssertionError with a dump on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            embeds = self.embeds()
            if pred(embeds):
                return embeds
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for Discord embeds\n{self.dump()}")
            time.sleep(0.02)

    def wait_messages(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` messages were accepted; returns the message records."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {n} Discord messages\n{self.dump()}")
            time.sleep(0.02)

    def dump(self) -> str:
        """Human-readable summary of everything received, for assertion messages."""
        with self._lock:
            lines = [f"accepted {len(self.messages)} message(s):"]
            lines += ["  " + json.dumps(m["payload"], ensure_ascii=False)[:2000] for m in self.messages]
            lines.append(f"rejected {len(self.rejected)}:")
            lines += [f"  {json.dumps(r['response'])[:500]} <- {str(r['payload'])[:500]}" for r in self.rejected]
            lines.append("statuses: " + ", ".join(str(r["status"]) for r in self.requests))
            if self.violations:
                lines.append("violations: " + "; ".join(self.violations))
        return "\n".join(lines)

    # Scripted failures ##########################################################

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        retry_after: float | None = None,
        body: str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``n`` POSTs get this response instead of being processed.

        A 429 gets rate-limit headers, ``Retry-After`` and a JSON ``retry_after`` body
        (``retry_after`` defaults to 1.0 s). ``headers`` are added on top (a ``None`` value
        removes a header).
        """

        def make() -> _Reply:
            if status == 429:
                reply = self._rate_limit_reply(retry_after if retry_after is not None else 1.0, "user")
            else:
                reply = _Reply.json(status, {"message": f"{status}: {_reason(status)}", "code": 0},
                                    {"Via": "1.1 google"})
            if body is not None:
                if isinstance(body, dict):
                    reply.body, reply.content_type = json.dumps(body).encode(), "application/json"
                else:
                    reply.body, reply.content_type = body.encode(), "text/plain"
            for name, value in (headers or {}).items():
                if value is None:
                    reply.headers.pop(name, None)
                else:
                    reply.headers[name] = value
            return reply

        with self._lock:
            self._scripted.append([n, make])

    def pass_next(self, n: int) -> None:
        """The next ``n`` POSTs are processed normally: a placeholder between scripted faults,
        so that, for instance, the third POST from now can be the 429."""
        with self._lock:
            self._scripted.append([n, lambda: None])

    def ip_ban(self, n: int) -> None:
        """Next ``n`` POSTs: Cloudflare IP-ban 429 (JSON code 0, no rate-limit headers, no Via)."""
        body = json.dumps({"code": 0, "message": IP_BAN_MESSAGE}).encode()
        with self._lock:
            self._scripted.append([n, lambda: _Reply(429, body, "application/json")])

    def cloudflare_1015(self, n: int) -> None:
        """Next ``n`` POSTs: Cloudflare 1015 page (429, text/plain ``error code: 1015``, no headers)."""
        with self._lock:
            self._scripted.append([n, lambda: _Reply(429, b"error code: 1015", "text/plain")])

    def fail_for(self, seconds: float, status: int) -> None:
        """Every POST during the next ``seconds`` gets ``status`` (text body; a 429 gets retry info)."""
        with self._lock:
            self._fail_until = time.monotonic() + seconds
            self._fail_status = status

    def delete_webhook(self) -> None:
        """From now on answer 404 Unknown Webhook (10015)."""
        self._deleted = True

    def restore_webhook(self) -> None:
        """Undo delete_webhook()."""
        self._deleted = False

    def hang_next(self, n: int, seconds: float) -> None:
        """The next ``n`` POSTs sleep ``seconds`` then answer 200; they are never recorded as accepted."""
        with self._lock:
            self._hang = [n, seconds]

    def reset_bucket(self) -> None:
        """Refill the rate-limit bucket now."""
        with self._lock:
            self._remaining = self.limit
            self._reset_at = 0.0

    # Request handling ###########################################################

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _rl_headers(self, now: float) -> dict[str, str]:
        reset_after = max(0.0, self._reset_at - now) if self._reset_at else self.window_s
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self._remaining if self._reset_at and now < self._reset_at else self.limit),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket_id,
            "Via": "1.1 google",
        }

    def _rate_limit_reply(self, retry_after: float, scope: str) -> _Reply:
        retry_after = round(max(retry_after, 0.001), 3)
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": self.bucket_id,
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        return _Reply.json(429, body, headers)

    def _next_id(self) -> str:
        with self._lock:
            snowflake = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last_id = max(snowflake, self._last_id + 1)
            return str(self._last_id)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        t = time.monotonic()
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length > 0 else b""
        record: dict[str, Any] = {
            "method": method,
            "path": h.path,
            "status": 0,
            "t": t,
            "wall": time.time(),
            "headers": dict(h.headers.items()),
            "body": raw.decode("utf-8", "replace"),
        }
        try:
            reply = self._dispatch(h, method, split.path, parse_qs(split.query), raw, record)
        except Exception as exc:  # a bug in the fake: answer 500 rather than hang the client
            logger.exception("fake_discord failed on %s %s", method, _redact(split.path))
            reply = _Reply.json(500, {"message": f"fake_discord internal error: {exc!r}", "code": 0})
        self._sleep(self.latency_s)
        record["status"] = reply.status
        with self._lock:
            self.requests.append(record)
        try:
            h.send_response(reply.status)
            if reply.status != 204:
                h.send_header("Content-Type", reply.content_type)
                h.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                h.send_header(name, value)
            h.end_headers()
            if reply.status != 204:
                h.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _dispatch(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        record: dict[str, Any],
    ) -> _Reply:
        now = time.monotonic()
        match = _WEBHOOK_PATH.match(path)
        if match is None:
            return _Reply.json(404, {"message": "404: Not Found", "code": 0}, {"Via": "1.1 google"})
        with self._lock:
            base_headers = self._rl_headers(now)
        if self._deleted:
            return _Reply.json(404, {"message": "Unknown Webhook", "code": 10015}, base_headers)
        if match["id"] != self.webhook_id or match["token"] != self.token:
            return _Reply.json(401, {"message": "Invalid Webhook Token", "code": 50027}, base_headers)
        if method == "GET":
            return _Reply.json(200, {
                "application_id": None, "avatar": None, "channel_id": self.channel_id,
                "guild_id": "111111111111111111", "id": self.webhook_id, "name": "Fake Hook",
                "type": 1, "token": self.token,
            }, base_headers)
        if method != "POST":
            return _Reply.json(405, {"message": "405: Method Not Allowed", "code": 0}, base_headers)

        wait = (query.get("wait") or [""])[-1].lower() in ("true", "1")
        if not wait:
            self.violations.append(f"POST {_redact(path)} without wait=true")

        # Scripted faults, most specific first.
        with self._lock:
            hang = self._hang[1] if self._hang and self._hang[0] > 0 else None
            if hang is not None:
                self._hang[0] -= 1
            factory = None
            while self._scripted and factory is None:
                if self._scripted[0][0] > 0:
                    self._scripted[0][0] -= 1
                    factory = self._scripted[0][1]
                if self._scripted[0][0] <= 0:
                    self._scripted.pop(0)
            fail_status = self._fail_status if now < self._fail_until else 0
            fail_left = self._fail_until - now
        if hang is not None:
            record["hung"] = True
            self._sleep(hang)
            return _Reply.json(200, {"id": self._next_id(), "channel_id": self.channel_id}, base_headers)
        scripted = factory() if factory is not None else None
        if scripted is not None:
            record["scripted"] = True
            return scripted
        if fail_status:
            record["scripted"] = True
            if fail_status == 429:
                return self._rate_limit_reply(fail_left, "shared")
            return _Reply(fail_status, f"{fail_status} {_reason(fail_status)}".encode(), "text/plain",
                          {"Via": "1.1 google"})

        # The per-webhook bucket.
        with self._lock:
            if not self._reset_at or now >= self._reset_at:
                self._remaining = self.limit
                self._reset_at = now + self.window_s
            if self._remaining <= 0 and self.enforce_bucket:
                retry_after = self._reset_at - now
                self.rate_limited.append({"t": now, "retry_after": retry_after})
                return self._rate_limit_reply(retry_after, "user")
            self._remaining = max(0, self._remaining - 1)
            headers = self._rl_headers(now)

        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        payload: Any = raw.decode("utf-8", "replace")
        if content_type != "application/json":
            response: dict[str, Any] = {
                "code": 50035, "message": "Invalid Form Body",
                "errors": {"_errors": [{"code": "CONTENT_TYPE_INVALID",
                                        "message": f"Expected application/json, got {content_type or 'none'}"}]},
            }
            return self._reject(payload, 400, response, headers, record)
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._reject(payload, 400, {"code": 50109, "message": "The request body contains invalid JSON."},
                                headers, record)
        if not isinstance(payload, dict):
            return self._reject(payload, 400, {"code": 50035, "message": "Invalid Form Body", "errors": {
                "_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]
            }}, headers, record)

        error = self._validate(payload)
        if error is None and self.poison and self.poison in json.dumps(payload.get("embeds") or []):
            # A rule the client did not foresee (say, a bad embed url): Discord names the field.
            error = {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"url": {
                "_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}}}}}
        if error is not None:
            return self._reject(payload, 400, error, headers, record)

        msg_id = self._next_id()
        with self._lock:
            self.messages.append({"payload": payload, "t": time.monotonic(), "wall": time.time(), "id": msg_id})
        record["accepted"] = True
        if not wait:
            return _Reply(204, b"", "application/json", headers)
        embeds = [dict(e, type="rich") for e in payload.get("embeds") or []]
        return _Reply.json(200, {
            "id": msg_id, "type": 0, "content": payload.get("content") or "", "channel_id": self.channel_id,
            "author": {"bot": True, "id": self.webhook_id, "username": payload.get("username") or "Fake Hook",
                       "avatar": None, "discriminator": "0000"},
            "attachments": [], "embeds": embeds, "mentions": [], "mention_roles": [], "pinned": False,
            "mention_everyone": False, "tts": bool(payload.get("tts")),
            "timestamp": datetime.now(timezone.utc).isoformat(), "edited_timestamp": None,
            "flags": payload.get("flags") or 0, "components": [], "webhook_id": self.webhook_id,
        }, headers)

    def _reject(self, payload: Any, status: int, response: dict[str, Any], headers: dict[str, str],
                record: dict[str, Any]) -> _Reply:
        with self._lock:
            self.rejected.append(
                {"payload": payload, "t": time.monotonic(), "wall": time.time(), "status": status, "response": response}
            )
        record["rejected"] = True
        return _Reply.json(status, response, headers)

    def _validate(self, p: dict[str, Any]) -> dict[str, Any] | None:
        """Return a Discord error body for an invalid Execute Webhook payload, else None."""
        errs = _ErrorTree()
        errs.check_str(["content"], p.get("content"), 2000)
        username = p.get("username")
        if username is not None:
            errs.check_str(["username"], username, 80)
            if isinstance(username, str) and (
                not 1 <= len(username) <= 80
                or "discord" in username.lower()
                or "clyde" in username.lower()
                or username.strip().lower() in ("here", "everyone")
            ):
                errs.add(["username"], "USERNAME_INVALID", "Username is invalid")
        flags = p.get("flags")
        if flags is not None and (not isinstance(flags, int) or isinstance(flags, bool) or flags & ~ALLOWED_FLAGS):
            errs.add(["flags"], "MESSAGE_FLAGS_INVALID", "Invalid message flags")

        embeds = p.get("embeds")
        total = 0
        if embeds is not None:
            if not isinstance(embeds, list):
                errs.add(["embeds"], "BASE_TYPE_ARRAY", "Must be an array.")
                embeds = []
            elif len(embeds) > 10:
                errs.add(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            for i, embed in enumerate(embeds):
                total += self._validate_embed(errs, i, embed)
            if total > 6000:
                errs.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")

        allowed = p.get("allowed_mentions")
        if allowed != {"parse": []}:
            self.violations.append(f"allowed_mentions must be {{'parse': []}}, got {allowed!r}")
            errs.add(["allowed_mentions"], "FAKE_POLICY_ALLOWED_MENTIONS",
                     'Tests require allowed_mentions == {"parse": []}')

        if errs.tree:
            return {"code": 50035, "errors": errs.tree, "message": "Invalid Form Body"}
        content = p.get("content")
        if not (isinstance(content, str) and content.strip()) and not embeds:
            return {"message": "Cannot send an empty message", "code": 50006}
        return None

    @staticmethod
    def _validate_embed(errs: _ErrorTree, i: int, embed: Any) -> int:
        """Validate one embed; return its characters counted toward the 6000 total."""
        path: list[Any] = ["embeds", i]
        if not isinstance(embed, dict):
            errs.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return 0
        total = errs.check_str([*path, "title"], embed.get("title"), 256)
        total += errs.check_str([*path, "description"], embed.get("description"), 4096)
        errs.check_str([*path, "url"], embed.get("url"), 2048)
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFF):
            errs.add([*path, "color"], "NUMBER_TYPE_MAX", "int value should be <= 16777215 and >= 0.")
        timestamp = embed.get("timestamp")
        if timestamp is not None:
            try:
                datetime.fromisoformat(str(timestamp))
            except ValueError:
                errs.add([*path, "timestamp"], "DATE_TYPE_PARSE", f"Could not parse {timestamp}. Should be ISO8601.")
        for key, limit, sub in (("footer", 2048, "text"), ("author", 256, "name")):
            part = embed.get(key)
            if part is None:
                continue
            if not isinstance(part, dict):
                errs.add([*path, key], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            total += errs.check_str([*path, key, sub], part.get(sub), limit, required=True)
        fields = embed.get("fields")
        if fields is not None:
            if not isinstance(fields, list):
                errs.add([*path, "fields"], "BASE_TYPE_ARRAY", "Must be an array.")
                return total
            if len(fields) > 25:
                errs.add([*path, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for j, field in enumerate(fields):
                fpath = [*path, "fields", j]
                if not isinstance(field, dict):
                    errs.add(fpath, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                    continue
                total += errs.check_str([*fpath, "name"], field.get("name"), 256, required=True)
                total += errs.check_str([*fpath, "value"], field.get("value"), 1024, required=True)
                inline = field.get("inline")
                if inline is not None and not isinstance(inline, bool):
                    errs.add([*fpath, "inline"], "BASE_TYPE_BOOLEAN", "Must be either true or false.")
        return total


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _redact(path: str) -> str:
    """Drop the token from a webhook path for messages meant to be printed."""
    return re.sub(r"(/webhooks/[^/]+/)[^/?]+", r"\1<token>", path)
