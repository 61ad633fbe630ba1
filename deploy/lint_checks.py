#!/usr/bin/env python3
"""Consistency checks for deploy/ that generic linters cannot do (called by deploy/lint.sh).

    lint_checks.py k8s RENDERED.yaml     rendered kustomization + secrets.template.yaml
    lint_checks.py compose               compose/compose.yaml
    lint_checks.py dockerfile            docker/Dockerfile COPY sources
    lint_checks.py systemd               systemd stop timeouts vs. the shutdown grace
    lint_checks.py hub-configs OUTDIR    write every hub.toml with its paths moved under OUTDIR and
                                         placeholder files created, for `hub check-config`

Each check prints one line per problem and the script exits 1 if there was any. Needs PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path, PurePosixPath

import yaml

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
PROBLEMS: list[str] = []
# Default of server.shutdown_grace_ms in hub/src/config.rs.
DEFAULT_GRACE_MS = 20_000


def problem(where: str, message: str) -> None:
    PROBLEMS.append(f"{where}: {message}")


def load_all(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_hub_toml() -> tuple[str, dict]:
    """The hub.toml held by the hub-config Secret template."""
    for doc in load_all(DEPLOY / "k8s/secrets.template.yaml"):
        if doc.get("kind") == "Secret" and doc["metadata"]["name"] == "hub-config":
            text = doc["stringData"]["hub.toml"]
            return text, tomllib.loads(text)
    raise SystemExit("k8s/secrets.template.yaml: no hub-config Secret with hub.toml")


def grace_seconds(cfg: dict) -> float:
    return cfg.get("server", {}).get("shutdown_grace_ms", DEFAULT_GRACE_MS) / 1000


def config_paths(cfg: dict) -> list[tuple[str, str]]:
    """(key, path) for every file the hub config names."""
    tls, keys = cfg.get("tls", {}), cfg.get("keys", {})
    out = [(f"tls.{k}", tls[k]) for k in ("cert", "key", "client_ca") if k in tls]
    out += [("tls.crls", p) for p in tls.get("crls", [])]
    out += [(f"keys.{k}", keys[k]) for k in ("signing_key", "pseudonym_key", "data_key") if k in keys]
    return out


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------------------------- k8s


def check_k8s(rendered: Path) -> None:
    where = "k8s"
    docs = load_all(rendered)
    templates = load_all(DEPLOY / "k8s/secrets.template.yaml")
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind", "?"), []).append(d)
        if d.get("kind") != "Namespace" and d["metadata"].get("namespace") != "jishijiu-hub":
            problem(where, f"{d['kind']}/{d['metadata']['name']} is not in namespace jishijiu-hub")
    for kind in ("Namespace", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):
        if kind not in by_kind:
            problem(where, f"no {kind} in the kustomization")
    if "Ingress" in by_kind:
        problem(where, "an Ingress would terminate TLS and lose the client certificate: remove it")
    if "Secret" in by_kind:
        problem(where, "Secrets must not be in kustomization.yaml (placeholders would overwrite real keys)")

    # Every manifest in k8s/ is either in the kustomization or a declared example/template.
    kust = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kust.get("resources", []))
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        name = f.name
        if name == "kustomization.yaml" or ".example." in name or ".template." in name:
            continue
        if name not in listed:
            problem(where, f"{name} is not listed in kustomization.yaml resources")

    secrets = {
        t["metadata"]["name"]: set(t.get("data", {})) | set(t.get("stringData", {}))
        for t in templates
        if t.get("kind") == "Secret"
    }
    for t in templates:
        if t.get("kind") != "Secret":
            problem("k8s/secrets.template.yaml", f"unexpected kind {t.get('kind')}")
            continue
        for key, value in (t.get("stringData") or {}).items():
            if "-----BEGIN" in value and "REPLACE" not in value:
                problem("k8s/secrets.template.yaml", f"{t['metadata']['name']}/{key}: real PEM material?")

    _, cfg = k8s_hub_toml()
    if not cfg.get("database", {}).get("url", "").startswith(("postgres://", "postgresql://")):
        problem(where, "hub-config: several replicas need database.url = postgres://…")

    for dep in by_kind.get("Deployment", []):
        name = f"Deployment/{dep['metadata']['name']}"
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        pod_labels = spec["template"]["metadata"].get("labels", {})
        if spec.get("replicas", 1) < 2:
            problem(name, "replicas must be at least 2")
        if not labels_match(spec["selector"]["matchLabels"], pod_labels):
            problem(name, "selector does not match the pod labels")
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        if tgp <= grace_seconds(cfg):
            problem(name, f"terminationGracePeriodSeconds {tgp} must exceed shutdown_grace_ms")
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            problem(name, "pod securityContext.runAsNonRoot must be true")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                problem(name, f"volume {v['name']}: Secret {v['secret']['secretName']} has no template")
        for c in pod["containers"]:
            cname = f"{name}/{c['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problem(cname, f"no {probe}")
            if "httpGet" in c.get("readinessProbe", {}):
                problem(cname, "httpGet cannot present a client certificate to /readyz")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
                problem(cname, "needs allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
            mounts: dict[str, str] = {}
            for m in c.get("volumeMounts", []):
                if "subPath" in m:
                    problem(cname, f"mount {m['name']}: subPath files never see Secret updates")
                mounts[m["mountPath"]] = m["name"]
            # Every file hub.toml names must be a key of the Secret mounted at its directory.
            for key, path in config_paths(cfg) + [
                ("probe", "/etc/hub/probe/probe.pem"),
                ("probe", "/etc/hub/probe/probe.key"),
                ("probe", "/etc/hub/probe/server-ca.pem"),
            ]:
                p = PurePosixPath(path)
                vol = volumes.get(mounts.get(str(p.parent), ""))
                if vol is None or "secret" not in vol:
                    problem(cname, f"{key} = {path}: no Secret mounted at {p.parent}")
                elif p.name not in secrets.get(vol["secret"]["secretName"], set()):
                    problem(cname, f"{key} = {path}: Secret {vol['secret']['secretName']} has no key {p.name}")
            if "/etc/hub/config" not in mounts:
                problem(cname, "hub.toml (Secret hub-config) is not mounted at /etc/hub/config")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if ports.get("mtls") != 8443 or ports.get("metrics") != 9464:
                problem(cname, "expected ports mtls=8443 and metrics=9464")
        listen = cfg.get("server", {}).get("listen", "")
        if not listen.endswith(":8443") or not cfg.get("admin", {}).get("listen", "").endswith(":9464"):
            problem("hub-config", "server.listen / admin.listen must use ports 8443 / 9464")

        for svc in by_kind.get("Service", []):
            if not labels_match(svc["spec"].get("selector", {}), pod_labels):
                problem(f"Service/{svc['metadata']['name']}", "selector does not match the hub pods")
            for port in svc["spec"]["ports"]:
                if port.get("appProtocol") or port.get("protocol", "TCP") != "TCP":
                    problem(f"Service/{svc['metadata']['name']}", "must be plain TCP passthrough")
        for pdb in by_kind.get("PodDisruptionBudget", []):
            if not labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels):
                problem("PodDisruptionBudget", "selector does not match the hub pods")
        for np in by_kind.get("NetworkPolicy", []):
            if not labels_match(np["spec"]["podSelector"].get("matchLabels", {}), pod_labels):
                problem("NetworkPolicy", "podSelector does not match the hub pods")
            for rule in np["spec"].get("ingress", []):
                ports = {p.get("port") for p in rule.get("ports", [])}
                if 9464 in ports or "metrics" in ports:
                    froms = rule.get("from", [])
                    ok = froms and all(
                        f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                        == "monitoring"
                        and "podSelector" not in f
                        and "ipBlock" not in f
                        for f in froms
                    )
                    if not ok:
                        problem("NetworkPolicy", "the admin port 9464 must be admitted from the monitoring namespace only")


# ----------------------------------------------------------------------------------------- compose


def check_compose() -> None:
    where = "compose/compose.yaml"
    base = DEPLOY / "compose"
    doc = yaml.safe_load((base / "compose.yaml").read_text(encoding="utf-8"))
    services = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    secrets = doc.get("secrets") or {}
    profiles: dict[str, list[str]] = {}
    for name, svc in services.items():
        w = f"{where}: service {name}"
        if "image" not in svc and "build" not in svc:
            problem(w, "needs image or build")
        for p in svc.get("profiles", []):
            profiles.setdefault(p, []).append(name)
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                problem(w, f"depends_on unknown service {dep}")
        for s in svc.get("secrets", []):
            sname = s if isinstance(s, str) else s.get("source")
            if sname not in secrets:
                problem(w, f"secret {sname} is not declared")
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith((".", "/")):
                if not src.startswith("./secrets"):
                    problem(w, f"bind mount {src} outside ./secrets")
            elif src not in volumes:
                problem(w, f"volume {src} is not declared")
        if "build" in svc:
            b = svc["build"]
            if not (base / b["context"] / b["dockerfile"]).is_file():
                problem(w, "build.dockerfile does not exist")
            grace = svc.get("stop_grace_period", "10s")
            m = re.fullmatch(r"(\d+)s", str(grace))
            if not m or int(m.group(1)) <= DEFAULT_GRACE_MS / 1000:
                problem(w, f"stop_grace_period {grace} must exceed the 20 s shutdown grace")
            if not svc.get("read_only") or "ALL" not in svc.get("cap_drop", []):
                problem(w, "hub containers must be read_only with cap_drop ALL")
            for port in svc.get("ports", []):
                if str(port).endswith(":9464") and not str(port).startswith("127.0.0.1:"):
                    problem(w, f"admin port published beyond loopback: {port}")
    for p in ("sqlite", "postgres"):
        if p not in profiles:
            problem(where, f"no profile {p}")
    if sum(1 for s in profiles.get("postgres", []) if "build" in services[s]) < 2:
        problem(where, "profile postgres needs at least two hub replicas")
    pg = [services[s] for s in profiles.get("postgres", []) if "postgres" in str(services[s].get("image", ""))]
    if not pg or not str(pg[0]["image"]).startswith("postgres:15"):
        problem(where, "profile postgres needs a postgres:15 service")
    for name, spec in secrets.items():
        f = spec.get("file", "")
        if not f.startswith("./secrets/"):
            problem(where, f"secret {name}: file must live in ./secrets/ (git-ignored)")
    if "secrets/" not in (base / ".gitignore").read_text(encoding="utf-8"):
        problem("compose/.gitignore", "must ignore secrets/")


# -------------------------------------------------------------------------------------- dockerfile


def check_dockerfile() -> None:
    where = "docker/Dockerfile"
    text = (DEPLOY / "docker/Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        parts = line.split()
        if not parts or parts[0].upper() != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        for src in [p for p in parts[1:-1] if not p.startswith("--")]:
            if src != "." and not (REPO / src).exists():
                problem(where, f"COPY source {src} does not exist (paths are relative to the repository root)")
    for needle, why in [
        ("cargo build --release --locked -p hub", "release build of the hub with --locked"),
        ("ARG RUST_IMAGE=rust:1.95-bookworm", "the rust:1.95-bookworm builder"),
        ("ARG RUNTIME_IMAGE=debian:bookworm-slim", "the debian:bookworm-slim runtime"),
        ("FROM ${RUST_IMAGE} AS builder", "the builder stage"),
        ("FROM ${RUNTIME_IMAGE} AS runtime", "the runtime stage"),
        ("USER 10001", "a non-root user"),
        ("HEALTHCHECK", "a HEALTHCHECK"),
        ("EXPOSE 8443", "EXPOSE 8443"),
    ]:
        if needle not in text:
            problem(where, f"missing {why} (`{needle}`)")
    ignore = (DEPLOY / "docker/Dockerfile.dockerignore").read_text(encoding="utf-8")
    if "target" not in ignore or ".git" not in ignore:
        problem("docker/Dockerfile.dockerignore", "must exclude target/ and .git")


# ----------------------------------------------------------------------------------------- systemd


def check_systemd() -> None:
    unit = (DEPLOY / "systemd/hub.service").read_text(encoding="utf-8")
    m = re.search(r"^TimeoutStopSec=(\d+)s?$", unit, re.M)
    if not m or int(m.group(1)) <= DEFAULT_GRACE_MS / 1000:
        problem("systemd/hub.service", "TimeoutStopSec must exceed the 20 s shutdown grace")
    for needle in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/hub",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ]:
        if needle not in unit:
            problem("systemd/hub.service", f"missing {needle}")
    if not re.search(r"^CapabilityBoundingSet=$", unit, re.M):
        problem("systemd/hub.service", "CapabilityBoundingSet must be empty")


# ------------------------------------------------------------------------------------- hub-configs


def hub_configs(out: Path) -> None:
    """Copy every hub.toml with absolute paths moved under OUT, create the files it names."""
    sources = {
        "docker-hub.toml": (DEPLOY / "docker/hub.toml").read_text(encoding="utf-8"),
        "compose-hub-postgres.toml": (DEPLOY / "compose/hub-postgres.toml.example").read_text(encoding="utf-8"),
        "k8s-hub-config.toml": k8s_hub_toml()[0],
    }
    for name, text in sources.items():
        root = out / name.removesuffix(".toml")
        moved = re.sub(r'"(/(?:etc|var|run)/[^"]*)"', lambda m: f'"{root}{m.group(1)}"', text)
        moved = moved.replace("sqlite:///var/", f"sqlite://{root}/var/")
        cfg = tomllib.loads(moved)
        for _, p in config_paths(cfg):
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            Path(p).write_text("placeholder\n", encoding="utf-8")
        policies_dir = cfg.get("policies", {}).get("dir")
        if policies_dir:
            # The image ships the repository's policy examples at this path.
            for sub in ("policies", "profiles", "standards", "calendar"):
                shutil.copytree(DEPLOY.parent / "policies" / sub, Path(policies_dir) / sub, dirs_exist_ok=True)
        (out / name).write_text(moved, encoding="utf-8")
        print(out / name)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "k8s" and len(sys.argv) == 3:
        check_k8s(Path(sys.argv[2]))
    elif cmd == "compose":
        check_compose()
    elif cmd == "dockerfile":
        check_dockerfile()
    elif cmd == "systemd":
        check_systemd()
    elif cmd == "hub-configs" and len(sys.argv) == 3:
        hub_configs(Path(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in PROBLEMS:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    os.chdir(DEPLOY)
    sys.exit(main())
