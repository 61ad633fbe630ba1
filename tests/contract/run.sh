#!/usr/bin/env bash
# Contract test (issue 10 finding 8b): schemathesis, property-based, against the OpenAPI
# description a running demo hub serves, over mutual TLS, once as the demo caseworker and once as
# the demo auditor (so the log routes are exercised past their 403). Checks: no server error, no
# undocumented status code or content type, responses conform to their schemas, and no invalid
# input accepted (negative_data_rejection: a request that violates the description must get a 4xx).
# Path parameters named `id` are seeded with a real verification the caseworker ran (and, on the
# case routes, a real case it filed), so those routes are exercised past their 404.
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

# A venv moved with its target directory keeps the old interpreter path: make it again.
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  rm -rf "$VENV"
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

# Seed: record the sample household's letter, run its verification, keep the ids.
SAMPLES="$DIR/demo/samples"
CW=(--cacert "$PKI/ca.pem" --cert "$PKI/caseworker.pem" --key "$PKI/caseworker.key")
AUTH_ID="$(curl -sS --fail "${CW[@]}" -H 'content-type: application/json' \
  --data @"$SAMPLES/xuzhuang-dibao.letter.json" "$BASE/v1/authorizations" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
python3 - "$SAMPLES/xuzhuang-dibao.json" "$AUTH_ID" >"$DIR/seed-request.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); r["authorization_id"] = sys.argv[2]; print(json.dumps(r))
PY
VERIFICATION_ID="$(curl -sS --fail "${CW[@]}" -H 'content-type: application/json' \
  --data @"$DIR/seed-request.json" "$BASE/v1/verifications" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
# And a case (救助案件) filed at the window for the same household's applicant.
python3 - "$SAMPLES/xuzhuang-dibao.json" >"$DIR/seed-case.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["household"]
a = next(m for m in h["members"] if m.get("relation") == "applicant")
print(json.dumps({
    "channel": "walk_in", "tier": "urgent", "hardship": "illness",
    "applicant": {"resident_id": a["resident_id"], "name": a["name"], "phone": "13800000000"},
    "township": h["registered_division"], "description": "contract test seed",
}))
PY
CASE_ID="$(curl -sS --fail "${CW[@]}" -H 'content-type: application/json' \
  --data @"$DIR/seed-case.json" "$BASE/v1/cases" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "seeded: authorization $AUTH_ID, verification $VERIFICATION_ID, case $CASE_ID"
cat >"$DIR/schemathesis.toml" <<TOML
[parameters]
"path.id" = "$VERIFICATION_ID"

[[operations]]
include-path-regex = "^/v1/cases/"
parameters = { "path.id" = "$CASE_ID" }
TOML

# From the temporary directory, so schemathesis' cache (.schemathesis/) stays out of the tree.
cd "$DIR"
status=0
for who in caseworker auditor; do
  echo "== schemathesis as the demo $who =="
  "$VENV/bin/schemathesis" --config-file "$DIR/schemathesis.toml" run "$DIR/openapi.json" \
    --url "$BASE" \
    --request-cert "$PKI/$who.pem" \
    --request-cert-key "$PKI/$who.key" \
    --tls-verify "$PKI/ca.pem" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --phases examples,fuzzing \
    --mode all \
    --max-examples "$MAX_EXAMPLES" \
    --rate-limit "${CONTRACT_RATE_LIMIT:-4/s}" \
    --workers 1 \
    --request-timeout 30 \
    --suppress-health-check all || status=1
done
exit "$status"
