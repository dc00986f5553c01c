"""The Makefile's system set-up (.ci/setup_system.sh) against a simulated apt: a stub ``apt-get`` on
an otherwise empty PATH that records every call and "installs" a package by creating its command.
It refuses Debian's ``npm`` next to NodeSource's ``nodejs`` as real apt does ("held broken
packages", exit 100; issue 22), so a set-up that asks for npm there fails these tests."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "setup_system.sh"
BASH = "/bin/bash"

# package -> the command it provides
COMMANDS = {"espeak-ng": "espeak-ng", "ffmpeg": "ffmpeg", "chromium": "chromium", "nodejs": "node",
            "npm": "npm"}

STUB_APT = """#!/bin/bash
echo "$*" >> "$APT_LOG"
[ "$1" = update ] && exit 0
pkg="${@: -1}"
if [ "$pkg" = npm ] && [ -e "$STUB_BIN/.nodesource" ]; then
  echo "E: Unable to correct problems, you have held broken packages." >&2
  exit 100
fi
case "$pkg" in
  nodejs) cmd=node ;;
  *) cmd="$pkg" ;;
esac
printf '#!/bin/bash\\n' > "$STUB_BIN/$cmd"
/bin/chmod +x "$STUB_BIN/$cmd"
"""


def _machine(tmp_path, present: tuple[str, ...], nodesource: bool = False) -> pathlib.Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(STUB_APT)
    (bin_dir / "apt-get").chmod(0o755)
    for cmd in present:
        (bin_dir / cmd).write_text("#!/bin/bash\n")
        (bin_dir / cmd).chmod(0o755)
    if nodesource:
        (bin_dir / ".nodesource").touch()
    return bin_dir


def _run(bin_dir: pathlib.Path, mode: str):
    log = bin_dir.parent / "apt.log"
    env = {"PATH": str(bin_dir), "APT_LOG": str(log), "STUB_BIN": str(bin_dir), "HOME": str(bin_dir.parent)}
    proc = subprocess.run([BASH, str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.is_file() else []
    installs = [c.split()[-1] for c in calls if c.startswith("install")]
    return proc, calls, installs


pytestmark = pytest.mark.skipif(not os.access(BASH, os.X_OK), reason="needs /bin/bash")


def test_nothing_installed(tmp_path):
    bin_dir = _machine(tmp_path, ())
    proc, calls, installs = _run(bin_dir, "demo")
    assert proc.returncode == 0, proc.stderr
    assert installs == ["espeak-ng", "ffmpeg"]  # one package per call; no web tools for the demo
    proc, calls, installs = _run(bin_dir, "web")
    assert proc.returncode == 0, proc.stderr
    assert installs == ["espeak-ng", "ffmpeg", "chromium", "nodejs", "npm"]
    assert all((bin_dir / c).is_file() for c in COMMANDS.values())


def test_nodesource_node_present(tmp_path):
    """NodeSource's nodejs bundles npm: only Chromium is asked of apt, never npm or nodejs."""
    bin_dir = _machine(tmp_path, ("node", "npm"), nodesource=True)
    proc, _, installs = _run(bin_dir, "demo")
    assert proc.returncode == 0 and installs == ["espeak-ng", "ffmpeg"], proc.stderr
    proc, _, installs = _run(bin_dir, "web")
    assert proc.returncode == 0, proc.stderr
    assert installs == ["espeak-ng", "ffmpeg", "chromium"]
    assert (bin_dir / "chromium").is_file()


def test_node_without_npm_is_best_effort(tmp_path):
    """A refused npm (the conflict above) does not stop Chromium, and the web set-up says what to do."""
    bin_dir = _machine(tmp_path, ("node",), nodesource=True)
    proc, _, installs = _run(bin_dir, "web")
    assert proc.returncode == 0
    assert installs == ["chromium", "npm"]
    assert (bin_dir / "chromium").is_file()
    assert "could not install npm" in proc.stderr and "make setup-web" in proc.stderr


def test_everything_present(tmp_path):
    bin_dir = _machine(tmp_path, tuple(COMMANDS.values()))
    for mode in ("demo", "web"):
        proc, calls, _ = _run(bin_dir, mode)
        assert proc.returncode == 0 and calls == [], (mode, calls, proc.stderr)  # not even `apt-get update`


def test_demo_tool_refused_is_fatal(tmp_path):
    bin_dir = _machine(tmp_path, ("ffmpeg",))
    (bin_dir / "apt-get").write_text('#!/bin/bash\necho "$*" >> "$APT_LOG"\n[ "$1" = update ] || exit 100\n')
    proc, _, installs = _run(bin_dir, "demo")
    assert proc.returncode == 1 and installs == ["espeak-ng"]
    assert "could not install espeak-ng" in proc.stderr
