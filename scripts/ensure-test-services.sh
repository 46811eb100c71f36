#!/usr/bin/env bash
# npm's pretest: installs what the tests run against that npm cannot bring, from Debian's
# packages, where this machine lets us (root, or passwordless sudo, and apt-get):
# - redis-server: the shared rate limit is tested against a real one;
# - chromium: the sign-in pages are tested in a real headless browser (driven by playwright-core).
# It never fails the run: where it cannot install, it says so, and the test that needs the
# program reports itself as not run.
set -u
SUDO=""
WHY=""
can_install() {
  if ! command -v apt-get >/dev/null 2>&1; then WHY="no apt-get here"; return 1; fi
  if [ "$(id -u)" != "0" ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else WHY="not root, no sudo"; return 1; fi
  fi
  return 0
}
# ensure <command> <package> <what goes unrun without it>
ensure() {
  if command -v "$1" >/dev/null 2>&1; then return 0; fi
  if ! can_install; then
    echo "ensure-test-services: NOT INSTALLED $2 ($WHY); $3 will not run" >&2
    return 0
  fi
  echo "ensure-test-services: installing $2 from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null 2>&1
    $SUDO apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 ||
      echo "ensure-test-services: NOT INSTALLED $2 (apt-get failed); $3 will not run" >&2
  fi
}
ensure redis-server redis-server "the Redis rate-limit test"
ensure chromium chromium "the sign-in pages' browser test"
exit 0
