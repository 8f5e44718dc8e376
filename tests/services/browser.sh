#!/usr/bin/env bash
# Test set-up for the browser tests: Debian's chromium, and a check that the Python packages
# that drive it are importable (`make install` installs playwright and optuna-dashboard from the
# `browser` and `dev` extras, pinned by constraints.txt). Playwright drives the system binary;
# nothing downloads a browser build. A step that fails says what failed and the script exits
# non-zero; the Makefile then fails `make test` under CI.
#   browser.sh [PYTHON]
set -euo pipefail
PY="${1:-python3}"
say() { echo "tests/services/browser.sh: $*" >&2; }
fail() { say "$*"; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "chromium is missing and there is no apt-get"
  [ "$(id -u)" = 0 ] || fail "chromium is missing and installing it with apt-get needs root"
  log=$(mktemp -t grokexp-browser.XXXXXX)
  trap 'rm -f "$log"' EXIT
  say "installing Debian's chromium with apt-get"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
      >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "apt-get could not install chromium (its last lines are above)"
  fi
  command -v chromium >/dev/null 2>&1 || fail "apt-get installed chromium but it is not on PATH"
fi
version=$(chromium --headless --no-sandbox --version 2>&1) \
  || fail "chromium does not run: $version"
version=${version##*$'\n'}  # Debian's launcher may print shell noise before the version

for module in playwright optuna_dashboard; do
  why=$("$PY" -c "import $module" 2>&1) \
    || fail "$PY cannot import $module (make install installs .[dev,postgres,browser]" \
            "with -c constraints.txt): ${why##*$'\n'}"
done
say "ready: $version; playwright $("$PY" -c \
  'from importlib.metadata import version; print(version("playwright"))')"
