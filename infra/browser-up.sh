#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from Debian's packages, for the dashboard's
# browser tests (crates/hyperion-server/tests/it/browser.rs). Idempotent; needs root.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium and chromedriver are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: installing chromium needs root (apt-get install chromium chromium-driver)" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
chromium --version
