"""Shared fixtures: the Bybit and Discord fakes, and the script run as a subprocess against them.

A test reads like the README: start the fakes, run `python bybit_ws_notify.py` with environment
variables pointing at them, make something happen on the fake exchange, and look at what the fake
Discord received.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_bybit import FakeBybit
from fake_discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'bybit_ws_notify.py'
sys.path.insert(0, str(ROOT))


class Bot:
    """bybit_ws_notify.py as a subprocess; its stdout and stderr are collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT)], env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding='utf-8',
            errors='replace')
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                         for stream in (self.proc.stdout, self.proc.stderr)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip('\n'))

    @property
    def output(self) -> str:
        with self._lock:
            return '\n'.join(self.lines)

    def wait_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first output line matching the regex; fails with the whole output on timeout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if regex.search(line):
                        return line
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers drain
                with self._lock:
                    for line in self.lines:
                        if regex.search(line):
                            return line
                raise AssertionError(f'bot exited ({self.proc.returncode}) before logging '
                                     f'{pattern!r}:\n{self.output}')
            time.sleep(0.05)
        raise AssertionError(f'no log line matching {pattern!r} in {timeout} s:\n{self.output}')

    def count_log(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait_exit(10)


@pytest.fixture
def bybit() -> Iterator[FakeBybit]:
    with FakeBybit() as fake:
        fake.wallet = fake.make_wallet('USDT', '1000')
        yield fake


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


def base_env(bybit: FakeBybit, discord: FakeDiscord, state_file: Path) -> dict[str, str]:
    """The environment a test run starts from: no inherited BYBIT_/DISCORD_ settings, the fakes'
    URLs, a linear BTCUSDT account, and short timers so faults show within seconds."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('BYBIT_', 'DISCORD_')) and k not in (
               'STATE_FILE', 'DOWN_ALERT_S', 'PING_INTERVAL_S', 'WATCHDOG_S', 'EXEC_COALESCE_S',
               'LOG_LEVEL', 'LOG_FILE', 'RECONNECT_MAX_S', 'REST_TIMEOUT_S', 'STOP_DRAIN_S')}
    env.update(bybit.env('linear'))
    env.update(BYBIT_SYMBOL='BTCUSDT', DISCORD_NOTIFY='true', DISCORD_WEBHOOK_URL=discord.url,
               STATE_FILE=str(state_file), PING_INTERVAL_S='1', WATCHDOG_S='3',
               DOWN_ALERT_S='2', EXEC_COALESCE_S='0.3', PYTHONUNBUFFERED='1')
    return env


@pytest.fixture
def run_bot(tmp_path: Path, bybit: FakeBybit, discord: FakeDiscord) -> Iterator[Callable[..., Bot]]:
    """start(**env_overrides) -> Bot. An override of None removes the variable."""
    bots: list[Bot] = []

    def start(**overrides: str | None) -> Bot:
        env = base_env(bybit, discord, tmp_path / 'state.json')
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        bot = Bot(env)
        bots.append(bot)
        return bot

    yield start
    for number, bot in enumerate(bots, 1):
        bot.kill()
        print(f'--- bot {number} output (exit {bot.proc.returncode}) ---\n{bot.output}')


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f'secret {secret[:4]}... leaked:\n{text}'


def titles(discord: FakeDiscord) -> list[str]:
    return [embed.get('title', '') for embed in discord.embeds()]


def state_ids(state: dict) -> list:
    """The execIds a state file recorded (saved as [execId, execTime], or execId alone)."""
    return [entry[0] if isinstance(entry, list) else entry for entry in state['fills']['ids']]
