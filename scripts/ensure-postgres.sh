#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist for the storage and end-to-end tests.
# The tests start their own throwaway cluster; this only installs Debian's package if missing.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian's packages for the database tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
else
  echo "PostgreSQL is not installed and cannot be installed here: its tests will skip" >&2
fi
