#!/bin/sh
# hub-healthcheck: liveness/readiness probe for the Jishijiu Hub container (Docker HEALTHCHECK and
# Kubernetes exec probes). Installed in the image as /usr/local/bin/hub-healthcheck.
#
#   hub-healthcheck ready  GET /readyz on the mTLS port with the probe client certificate.
#                          Exit 0 only on 200 (database reachable, every CRL fresh, signing key loaded).
#   hub-healthcheck live   GET /metrics on the plain-HTTP admin listener: the process is up and serving.
#                          Deliberately independent of the database and of CRL freshness, so a stale CRL
#                          or a database outage never makes an orchestrator restart the hub in a loop.
#   hub-healthcheck auto   `ready` if the probe certificate files exist, else `live` (Docker default).
#
# Environment (all optional):
#   HUB_PROBE_DIR          directory with probe.pem, probe.key, server-ca.pem   (/etc/hub/probe)
#   HUB_PROBE_SERVER_NAME  a DNS name in the server certificate's SAN          (localhost)
#   HUB_PROBE_PORT         mTLS port                                            (8443)
#   HUB_PROBE_ADMIN        admin listener host:port                             (127.0.0.1:9464)
#
# The mTLS call always connects to 127.0.0.1 but verifies the server certificate for
# HUB_PROBE_SERVER_NAME against server-ca.pem (curl --connect-to), so no verification is switched off.
set -eu

mode=${1:-auto}
dir=${HUB_PROBE_DIR:-/etc/hub/probe}
name=${HUB_PROBE_SERVER_NAME:-localhost}
port=${HUB_PROBE_PORT:-8443}
admin=${HUB_PROBE_ADMIN:-127.0.0.1:9464}

have_probe_cert() {
    [ -r "$dir/probe.pem" ] && [ -r "$dir/probe.key" ] && [ -r "$dir/server-ca.pem" ]
}

ready() {
    curl --silent --show-error --fail --max-time 5 --output /dev/null \
        --cacert "$dir/server-ca.pem" --cert "$dir/probe.pem" --key "$dir/probe.key" \
        --connect-to "::127.0.0.1:$port" "https://$name:$port/readyz"
}

live() {
    curl --silent --show-error --fail --max-time 5 --output /dev/null "http://$admin/metrics"
}

case "$mode" in
    ready)
        if ! have_probe_cert; then
            echo "hub-healthcheck: probe certificate missing in $dir (probe.pem, probe.key, server-ca.pem)" >&2
            exit 1
        fi
        ready
        ;;
    live)
        live
        ;;
    auto)
        if have_probe_cert; then ready; else live; fi
        ;;
    *)
        echo "usage: hub-healthcheck [ready|live|auto]" >&2
        exit 2
        ;;
esac
