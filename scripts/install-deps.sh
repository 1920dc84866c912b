#!/bin/sh
# Installs every Debian package mailark needs to build, test and benchmark.
# Idempotent: only missing packages are installed; safe to run on every `make`.
set -eu

BUILD="build-essential cmake ninja-build pkg-config ccache git
  libcurl4-openssl-dev libsqlite3-dev sqlite3 libzstd-dev libgmime-3.0-dev libglib2.0-dev libssl-dev libargon2-dev
  libboost-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libical-dev libexpat1-dev
  libgtest-dev libgmock-dev"
TEST="python3 swaks libpython3.11-testsuite procps isync curl python3-caldav vdirsyncer"
FUZZ="clang libclang-rt-14-dev"
BENCH="dovecot-core dovecot-lmtpd dovecot-imapd restic borgbackup radicale"

want="$BUILD $TEST"
# Node.js and npm from Debian unless the machine already has them (from elsewhere).
command -v node >/dev/null 2>&1 || want="$want nodejs"
command -v npm >/dev/null 2>&1 || want="$want npm"
[ "${1:-}" = "--bench" ] && want="$want $BENCH"
[ "${1:-}" = "--fuzz" ] && want="$want $FUZZ"

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # dovecot-core starts a system service on install; policy-rc.d keeps it from running.
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Test servers from npm (the S3 server behind the backup tests), pinned by the lock file.
here=$(dirname "$0")/..
if [ ! -f "$here/tests/npm/node_modules/.package-lock.json" ] ||
   [ "$here/tests/npm/package-lock.json" -nt "$here/tests/npm/node_modules/.package-lock.json" ]; then
  echo "installing npm test servers (tests/npm)" >&2
  npm ci --prefix "$here/tests/npm" --no-audit --no-fund --loglevel=error >/dev/null
fi
