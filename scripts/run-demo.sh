#!/bin/sh
# `make run`: a data directory under ./var with a demo tenant and user, the server on
# loopback in the foreground, and how to connect. Ctrl-C stops it.
set -eu
BIN=$1
DATA=$2
CONF="$DATA/mailark.toml"
DEMO_USER=demo@demo.test
DEMO_PASS=demo-password

if [ ! -f "$CONF" ]; then
  "$BIN" init "$DATA" --ephemeral-ports
fi
if ! grep -q '^\[imap\]' "$CONF"; then
  echo "note: $CONF predates IMAP; remove $DATA to start over with IMAP enabled" >&2
fi
if ! grep -q '^\[http\]' "$CONF"; then
  echo "note: $CONF predates CalDAV/CardDAV; remove $DATA to start over with them enabled" >&2
fi
export MAILARK_CONFIG="$(cd "$DATA" && pwd)/mailark.toml"
"$BIN" tenant list | grep -q '^demo.test ' || "$BIN" tenant add demo.test
if ! "$BIN" user list | grep -q "^$DEMO_USER "; then
  echo "$DEMO_PASS" | "$BIN" user add "$DEMO_USER" --password-stdin
fi

rm -f "$DATA/ports.json"
"$BIN" serve &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID; exit 0' INT TERM
i=0
while [ ! -s "$DATA/ports.json" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then echo "mailark did not start" >&2; exit 1; fi
  sleep 0.1
done
port() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$DATA/ports.json"; }
LMTP=$(port lmtp)
IMAP=$(port imap)
IMAPS=$(port imaps)
HTTP=$(port http)
HTTPS=$(port https)
cat <<INFO

mailark is running (pid $PID), data in $DATA
  LMTP      127.0.0.1:$LMTP
  IMAP      127.0.0.1:$IMAP   (STARTTLS; plaintext login allowed on loopback)
  IMAPS     127.0.0.1:$IMAPS  (TLS, self-signed certificate $DATA/tls/cert.pem)
  CalDAV    http://127.0.0.1:$HTTP/  and  https://localhost:$HTTPS/  (calendars, contacts)
  demo user $DEMO_USER  password $DEMO_PASS

Send a message:
  swaks --protocol LMTP --server 127.0.0.1:$LMTP --to $DEMO_USER
Read it:
  curl -u $DEMO_USER:$DEMO_PASS 'imap://127.0.0.1:$IMAP/INBOX;UID=1'
  curl --cacert $DATA/tls/cert.pem -u $DEMO_USER:$DEMO_PASS 'imaps://localhost:$IMAPS/INBOX' -X 'UID SEARCH ALL'
  (any mail client: server 127.0.0.1, port $IMAPS, SSL/TLS, user $DEMO_USER)
Calendars and contacts (Thunderbird, DAVx5, Apple: server URL http://127.0.0.1:$HTTP/):
  curl -u $DEMO_USER:$DEMO_PASS -X PROPFIND -H 'Depth: 1' http://127.0.0.1:$HTTP/dav/calendars/$DEMO_USER/
Look at it:
  export MAILARK_CONFIG=$MAILARK_CONFIG
  $BIN stats; $BIN check; $BIN replay --list
Ctrl-C stops the server.

INFO
wait $PID
