#!/usr/bin/env bash
# The system tools the Makefile needs, each installed on its own and only where missing.
#
#   .ci/setup_system.sh demo   espeak-ng + ffmpeg (`make demo`, the tests). A failure is fatal:
#                              nothing of the main job runs without them.
#   .ci/setup_system.sh web    Chromium (headless tests of the web player) and npm (the player's
#                              JavaScript, `vasa3d export`). Best effort: what cannot be installed is
#                              reported with the command to run, and the tests that need it skip.
#
# Why one package per apt call: Debian's `npm` depends on Debian's `nodejs`, which conflicts with
# NodeSource's `nodejs` (that one bundles npm). Asking apt for "chromium nodejs npm" in one go on a
# machine with NodeSource Node fails as a whole ("held broken packages", exit 100), so Chromium is
# never installed (issue 22). Here npm is never asked of apt when `npm` is on PATH, nodejs never when
# `node` is, and one refused package does not take the others down.
#
# Only bash builtins are used besides apt-get (and sudo when not root), so tests can run this with a
# stub apt-get on an otherwise empty PATH (tests/test_setup_system.py).
set -u

mode=${1:-}
case "$mode" in
  demo) fatal=1 ;;
  web) fatal=0 ;;
  *) echo "usage: $0 demo|web" >&2; exit 2 ;;
esac

have() { command -v "$1" >/dev/null 2>&1; }

sudo_cmd=()
if [ "${EUID:-$(id -u)}" -ne 0 ]; then
  if have sudo; then sudo_cmd=(sudo); fi
fi

# package -> the command that proves it is present
missing=()
if [ "$mode" = demo ]; then
  have espeak-ng || missing+=(espeak-ng)
  have ffmpeg || missing+=(ffmpeg)
else
  have chromium || have chromium-browser || have google-chrome || missing+=(chromium)
  if ! have npm; then
    # NodeSource's nodejs bundles npm, so a `node` without `npm` is Debian's nodejs: its npm is
    # Debian's `npm` package. Without any node, Debian's nodejs first, then its npm.
    have node || missing+=(nodejs)
    missing+=(npm)
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! have apt-get; then
  echo "[setup] missing: ${missing[*]}; this machine has no apt-get: install them with your package manager" >&2
  [ "$fatal" = 1 ] && exit 1 || exit 0
fi

echo "[setup] apt-get update"
"${sudo_cmd[@]}" apt-get update -qq >/dev/null || echo "[setup] apt-get update failed; trying the install anyway" >&2

failed=()
for pkg in "${missing[@]}"; do
  echo "[setup] apt-get install $pkg"
  if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
    failed+=("$pkg")
  fi
done

if [ ${#failed[@]} -eq 0 ]; then
  exit 0
fi
if [ "$fatal" = 1 ]; then
  echo "[setup] could not install ${failed[*]} (needed by make demo and the tests); install them and rerun: apt-get install ${failed[*]}" >&2
  exit 1
fi
echo "[setup] could not install ${failed[*]}: the web player's tests will be skipped and vasa3d export will say what is missing; to get them: apt-get install ${failed[*]} (npm: any Node.js with npm, e.g. NodeSource), then make setup-web" >&2
exit 0
