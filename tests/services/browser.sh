#!/usr/bin/env bash
# Test setup for the browser tests: Debian's chromium and Playwright's Python package.
# Playwright drives the system binary; nothing downloads a browser build. Every step is
# allowed to fail: the tests that need a browser then skip and say why.
set -u
PY="${1:-python3}"
say() { echo "tests/services/browser.sh: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
      >/dev/null 2>&1 || say "could not install chromium with apt-get"
  else
    say "chromium is missing and apt-get needs root; browser tests will skip"
  fi
fi
for module in playwright:playwright optuna_dashboard:optuna-dashboard; do
  "$PY" -c "import ${module%%:*}" 2>/dev/null \
    || "$PY" -m pip install --quiet "${module##*:}" >/dev/null 2>&1 \
    || say "could not pip install ${module##*:}"
done
exit 0
