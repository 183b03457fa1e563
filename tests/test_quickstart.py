"""The README's quick start, run as written in a fresh folder: create the venv, install, run the
bot (against the fakes), install the dev requirements and run tests, all from that venv.

Offline (the default) the new venv is given this interpreter's installed packages through a .pth
file and pip runs with --no-index: `pip install -r ...` must then find every requirement already
satisfied, which checks the requirement files against what the suite runs on. With
QUICKSTART_PYPI=1 (CI, which has PyPI) pip installs from the index for real.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from conftest import ROOT, base_env
from fake_bybit import FakeBybit
from fake_discord import FakeDiscord

README = (ROOT / 'README.md').read_text(encoding='utf-8')


def quick_start_commands() -> list[str]:
    section = README.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    return [line for line in re.findall(r'```sh\n(.*?)\n```', section, re.DOTALL)
            if line.startswith('python3 -m venv')]


def test_readme_has_two_commands_one_runs_one_tests() -> None:
    run, test = quick_start_commands()
    assert run.endswith('.venv/bin/python bybit_ws_notify.py')
    assert 'requirements.txt' in run
    assert test.endswith('.venv/bin/python -m pytest -q')
    assert 'requirements-dev.txt' in test
    assert 'pip install' not in README.split('## Quick start', 1)[1].split('```sh', 1)[0]
    assert '/.venv/bin/python ' in README.split('```ini', 1)[1].split('```', 1)[0]  # systemd


def _step(folder: Path, command: str, env: dict[str, str]) -> None:
    command = re.sub(r'^python3 ', f'{sys.executable} ', command)
    result = subprocess.run(command, shell=True, cwd=str(folder), env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f'{command}\n{result.stdout}\n{result.stderr}'


def _offline(folder: Path) -> None:
    """Lend the new venv this interpreter's packages, so pip finds them installed."""
    lib = next((folder / '.venv' / 'lib').glob('python3*')) / 'site-packages'
    (lib / 'lend.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')


def test_quick_start_in_a_fresh_folder(tmp_path: Path, bybit: FakeBybit,
                                       discord: FakeDiscord) -> None:
    folder = tmp_path / 'bybit-ws-notify'
    folder.mkdir()
    for name in ('bybit_ws_notify.py', 'requirements.txt', 'requirements-dev.txt', 'README.md',
                 '.pytest.ini'):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / 'tests', folder / 'tests',
                    ignore=shutil.ignore_patterns('__pycache__', '.hypothesis'))
    online = os.environ.get('QUICKSTART_PYPI') == '1'
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHONPATH')}
    if not online:
        env.update(PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    run, test = quick_start_commands()
    create, install, start = run.split(' && ')
    _step(folder, create, env)
    if not online:
        _offline(folder)
    _step(folder, install, env)

    # The third part runs the bot: here against the fakes, until it is ready, then Ctrl-C.
    bot_env = {**base_env(bybit, discord, tmp_path / 'state.json'), **{
        k: v for k, v in env.items() if k.startswith('PIP_')}}
    proc = subprocess.Popen(f'exec {start}', shell=True, cwd=str(folder), env=bot_env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        bybit.wait_subscribed('execution', timeout=30)
        discord.wait_for(lambda es: any(e.get('title') == 'bybit-ws-notify started' for e in es),
                         timeout=30)
    finally:
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'Traceback' not in out

    create, install, pytest_ = test.split(' && ')
    _step(folder, create, env)
    _step(folder, install, env)
    _step(folder, f'{pytest_} tests/test_formatters.py', env)  # a quick file: the whole suite is this suite
