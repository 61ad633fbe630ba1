#!/usr/bin/env bash
# Contract test (issue 10 finding 8b): schemathesis, property-based, against the OpenAPI
# description a running demo hub serves, as the demo caseworker over mutual TLS. Checks: no server
# error, no undocumented status code or content type, responses conform to their schemas.
# Bounded: a few examples per operation, a few minutes at most on 2 cores.
#
# Usage: tests/contract/run.sh [path/to/hub-binary]   (default: target/debug/hub)
# Env:   CONTRACT_MAX_EXAMPLES (default 10), CONTRACT_PORT (default 18443).
# Installs schemathesis into target/contract-venv if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
HUB="${1:-target/debug/hub}"
PORT="${CONTRACT_PORT:-18443}"
ADMIN_PORT=$((PORT + 1))
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-10}"
VENV="${CONTRACT_VENV:-target/contract-venv}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi
VENV="$(cd "$VENV" && pwd)"
"$VENV/bin/schemathesis" --version

[ -x "$HUB" ] || cargo build --locked -p hub --bin hub
DIR="$(mktemp -d)"
LOG="$DIR/hub.log"
"$HUB" demo --data-dir "$DIR/demo" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" >"$LOG" 2>&1 &
HUB_PID=$!
cleanup() { kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
  grep -q "hub listening on" "$LOG" && break
  kill -0 "$HUB_PID" 2>/dev/null || { cat "$LOG" >&2; echo "demo hub exited" >&2; exit 1; }
  sleep 1
done
grep -q "hub listening on" "$LOG" || { cat "$LOG" >&2; echo "demo hub did not start" >&2; exit 1; }

PKI="$DIR/demo/pki"
BASE="https://127.0.0.1:$PORT"
# The description as served, fetched with the same client certificate.
curl -sS --fail --cacert "$PKI/ca.pem" --cert "$PKI/caseworker.pem" --key "$PKI/caseworker.key" \
  "$BASE/v1/openapi.json" -o "$DIR/openapi.json"

# From the temporary directory, so schemathesis' cache (.schemathesis/) stays out of the tree.
cd "$DIR"
"$VENV/bin/schemathesis" run "$DIR/openapi.json" \
  --url "$BASE" \
  --request-cert "$PKI/caseworker.pem" \
  --request-cert-key "$PKI/caseworker.key" \
  --tls-verify "$PKI/ca.pem" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --rate-limit "${CONTRACT_RATE_LIMIT:-4/s}" \
  --workers 1 \
  --request-timeout 30 \
  --suppress-health-check all
