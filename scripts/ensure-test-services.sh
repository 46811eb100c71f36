#!/usr/bin/env bash
# npm's pretest: installs what the tests run against that npm cannot bring — redis-server (the
# shared rate limit is tested against a real one) — from Debian's packages, where this machine
# lets us (root, or passwordless sudo, and apt-get). It never fails the run: where it cannot
# install, it says so, and the test that needs the server reports itself as not run.
set -u
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-services: NOT INSTALLED redis-server (no apt-get here); the Redis rate-limit test will not run" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-test-services: NOT INSTALLED redis-server (not root, no sudo); the Redis rate-limit test will not run" >&2
    exit 0
  fi
fi
echo "ensure-test-services: installing redis-server from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1; then
  $SUDO apt-get update >/dev/null 2>&1
  $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 ||
    echo "ensure-test-services: NOT INSTALLED redis-server (apt-get failed); the Redis rate-limit test will not run" >&2
fi
exit 0
