#!/bin/bash
# hub-crl-refresh: download CRLs and publish them atomically for the Jishijiu Hub's file polling.
# Installed as /usr/local/libexec/hub-crl-refresh; run by hub-crl-refresh.service.
#
#   hub-crl-refresh SOURCES CA_BUNDLE
#
# SOURCES: one "FILE URL" per line (blank lines and # comments ignored). For each line the CRL at URL
# (PEM or DER; http://, https:// or file://) is downloaded, converted to PEM, and published to FILE
# only if it is signed by a CA in CA_BUNDLE and its nextUpdate lies in the future. Publishing is a
# rename in FILE's directory, so the hub never reads a half-written file. A refused CRL leaves FILE as
# it was. Exit status: 0 if every source succeeded, 1 otherwise. Needs curl and openssl.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: hub-crl-refresh SOURCES CA_BUNDLE" >&2
    exit 2
fi
sources=$1
bundle=$2
[ -r "$sources" ] || { echo "hub-crl-refresh: cannot read sources file $sources" >&2; exit 2; }
[ -r "$bundle" ] || { echo "hub-crl-refresh: cannot read CA bundle $bundle" >&2; exit 2; }

failures=0

refresh() {
    local file=$1 url=$2 dir raw pem format next next_epoch
    dir=$(dirname -- "$file")
    raw=$(mktemp "$dir/.crl-raw.XXXXXX")
    pem=$(mktemp "$dir/.crl-pem.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the names are local to this call
    trap "rm -f -- '$raw' '$pem'" RETURN

    if ! curl --silent --show-error --fail --location --max-time 60 --output "$raw" -- "$url"; then
        echo "hub-crl-refresh: $file: download failed: $url" >&2
        return 1
    fi
    if grep -q -- '-----BEGIN X509 CRL-----' "$raw"; then format=PEM; else format=DER; fi
    if ! openssl crl -inform "$format" -in "$raw" -outform PEM -out "$pem" 2>/dev/null; then
        echo "hub-crl-refresh: $file: not a CRL ($format): $url" >&2
        return 1
    fi
    # OpenSSL 3.0 exits 0 even on "verify failure": look for the positive verdict instead.
    if ! openssl crl -in "$pem" -noout -CAfile "$bundle" 2>&1 | grep -q '^verify OK$'; then
        echo "hub-crl-refresh: $file: signature does not verify against $bundle: $url" >&2
        return 1
    fi
    next=$(openssl crl -in "$pem" -noout -nextupdate | sed -n 's/^nextUpdate=//p')
    if [ -z "$next" ] || [ "$next" = "NONE" ]; then
        echo "hub-crl-refresh: $file: CRL has no nextUpdate: $url" >&2
        return 1
    fi
    next_epoch=$(date -u -d "$next" +%s)
    if [ "$next_epoch" -le "$(date -u +%s)" ]; then
        echo "hub-crl-refresh: $file: CRL expired at $next (nextUpdate); keeping the old file: $url" >&2
        return 1
    fi
    if [ -f "$file" ] && cmp -s -- "$pem" "$file"; then
        echo "hub-crl-refresh: $file: unchanged (nextUpdate $next)"
        return 0
    fi
    chmod 0644 -- "$pem"
    mv -f -- "$pem" "$file"
    echo "hub-crl-refresh: $file: published (nextUpdate $next)"
}

while read -r file url rest || [ -n "${file:-}" ]; do
    case "${file:-}" in '' | '#'*) continue ;; esac
    if [ -z "${url:-}" ] || [ -n "${rest:-}" ]; then
        echo "hub-crl-refresh: $sources: expected \"FILE URL\", got: $file ${url:-} ${rest:-}" >&2
        failures=$((failures + 1))
        continue
    fi
    refresh "$file" "$url" || failures=$((failures + 1))
done < "$sources"

if [ "$failures" -gt 0 ]; then
    echo "hub-crl-refresh: $failures source(s) failed" >&2
    exit 1
fi
