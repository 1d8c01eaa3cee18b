#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""Checks deploy/ as far as a machine without a Docker engine can: in a scratch copy of deploy/,
deploy/make-certs.sh makes the certificates with the given `mesh` (twice: the second run must
change nothing), `docker-compose config` must accept deploy/docker-compose.yml, and then every
path the compose file mounts must exist, with what the services read inside it: each service's
certificate and key, each probe's identity, Consul's check certificates, Prometheus's config and
rules, Grafana's provisioning and the dashboards folder it names. The compose Prometheus config
must be deploy/prometheus/prometheus.yml with Consul at consul:8500 and nothing else changed, and
deploy/kubernetes/greeter.yaml must probe with `mesh health` and expose the admin port.

    scripts/check-deploy.py --mesh PATH_TO_MESH

Needs docker-compose (Debian's 1.29 will do) and, optionally, promtool (the rules are checked
with it; the config is not: Debian's Prometheus is built without Consul discovery, so its
promtool rejects consul_sd_configs). docker-compose 1.29's `config` prints YAML only (it has no
JSON format): YAML is read with PyYAML when this Python has it, else by the Python that
docker-compose runs on, which has it. Prints one line per check and exits 1 if any failed."""
import argparse
import json
import pathlib
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile

root = pathlib.Path(__file__).resolve().parent.parent
failures = []


def ok(message):
    print(f"ok: {message}", flush=True)


def fail(message):
    failures.append(message)
    print(f"FAIL: {message}", flush=True)


def check(condition, message, why=""):
    if condition:
        ok(message)
    else:
        fail(f"{message}{': ' + why if why else ''}")
    return condition


def yaml_loader():
    """A function from YAML text to its documents (a list), or None when nothing here can read
    YAML."""
    try:
        import yaml

        return lambda text: list(yaml.safe_load_all(text))
    except ImportError:
        pass
    # docker-compose 1.x is a Python program built on PyYAML: its interpreter can convert.
    program = shutil.which("docker-compose")
    if not program:
        return None
    with open(program, "rb") as file:
        first = file.readline().decode("utf-8", "replace")
    if not first.startswith("#!"):
        return None
    interpreter = first[2:].split()
    script = (
        "import json, sys, yaml\n"
        "json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)\n"
    )

    def load(text):
        result = subprocess.run(
            interpreter + ["-c", script], input=text, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ValueError(result.stderr.strip())
        return json.loads(result.stdout)

    try:
        load("a: 1\n")
    except (OSError, ValueError):
        return None
    return load


def seconds(duration):
    """Seconds in a Go or Compose duration ("1m30s", "5s", "250ms"); None if it is not one."""
    text = str(duration)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(number) * scale[unit] for number, unit in parts)


def binds(service):
    """A service's bind mounts: container path -> host path."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts[volume["target"]] = volume["source"]
            continue
        parts = volume.split(":")
        if len(parts) >= 2 and parts[0].startswith(("/", ".")):
            mounts[parts[1]] = parts[0]
    return mounts


def host_path(mounts, container_path):
    """Where a container path of a service is on the host, through its bind mounts; None when no
    mount holds it."""
    path = posixpath.normpath(container_path)
    best = None
    for target in mounts:
        target = posixpath.normpath(target)
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best):
                best = target
    if best is None:
        return None
    return pathlib.Path(mounts[best]) / posixpath.relpath(path, best)


def environment(service):
    values = service.get("environment") or {}
    if isinstance(values, list):
        values = dict(item.split("=", 1) if "=" in item else (item, "") for item in values)
    return {key: "" if value is None else str(value) for key, value in values.items()}


def command_list(service):
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def option(arguments, name):
    """The value of `--name VALUE` or `--name=VALUE` in a list of arguments."""
    for index, argument in enumerate(arguments):
        if argument == name and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(name + "="):
            return argument[len(name) + 1 :]
    return None


def host_of(address):
    """The host of `host:port` or of a URL."""
    address = re.sub(r"^[a-z]+://", "", address).split("/")[0]
    return address.rsplit(":", 1)[0].strip("[]")


def check_certificates(label, mounts, directory, identity):
    """The `mesh certs` files an identity needs, in a certificates folder mounted into a
    service."""
    folder = host_path(mounts, directory)
    if not check(folder is not None, f"{label}: {directory} is mounted"):
        return
    for name in ("ca.crt", f"services/{identity}.crt", f"services/{identity}-key.pem"):
        check((folder / name).is_file(), f"{label}: {directory}/{name} exists")


def relabel_block(text):
    """The relabel_configs of the first scrape job, as written (comments included)."""
    match = re.search(r"^(\s*)relabel_configs:\n(?:\1\s.*\n|\s*\n)*", text, re.MULTILINE)
    return match.group(0).rstrip() if match else None


def check_prometheus(services, mounts_of, original_config):
    prometheus = services["prometheus"]
    mounts = mounts_of["prometheus"]
    command = command_list(prometheus)
    config_path = option(command, "--config.file") or "/etc/prometheus/prometheus.yml"
    config = host_path(mounts, config_path)
    if not check(
        config is not None and config.is_file(), f"prometheus: {config_path} is a mounted file"
    ):
        return
    text = config.read_text()
    original = original_config.read_text()
    check("consul_sd_configs:" in text, "prometheus: the config discovers through Consul")
    check(
        re.search(r"^\s*- server: consul:8500\s*$", text, re.MULTILINE) is not None,
        "prometheus: Consul is consul:8500 (the compose service)",
    )
    check(
        relabel_block(text) is not None and relabel_block(text) == relabel_block(original),
        "prometheus: relabel_configs are deploy/prometheus/prometheus.yml's, byte for byte",
    )

    def body(config_text):
        start = re.search(r"^global:", config_text, re.MULTILINE)
        return config_text[start.start() :] if start else None

    expected = body(original)
    if expected is not None:
        expected = expected.replace("- server: localhost:8500", "- server: consul:8500", 1)
    check(
        expected is not None and body(text) == expected,
        "prometheus: the config is deploy/prometheus/prometheus.yml from `global:` on, but for "
        "Consul's address",
    )
    rule_section = re.search(r"^rule_files:\n((?:\s+- .*\n)+)", text, re.MULTILINE)
    rules = re.findall(r"- (\S+)", rule_section.group(1)) if rule_section else []
    check(rules, "prometheus: the config names rule files")
    rule_files = []
    for rule in rules:
        inside = posixpath.join(posixpath.dirname(config_path), rule)
        on_host = host_path(mounts, inside)
        if check(
            on_host is not None and on_host.is_file(),
            f"prometheus: rule file {rule} is mounted at {inside}",
        ):
            rule_files.append(str(on_host))
    promtool = shutil.which("promtool")
    if promtool and rule_files:
        result = subprocess.run(
            [promtool, "check", "rules", *rule_files], capture_output=True, text=True
        )
        check(
            result.returncode == 0,
            "prometheus: promtool check rules accepts the mounted rules",
            (result.stdout + result.stderr).strip(),
        )
    elif not promtool:
        print("skipped: promtool check rules (no promtool on PATH)", flush=True)


def check_grafana(services, mounts_of):
    grafana = services["grafana"]
    mounts = mounts_of["grafana"]
    url = environment(grafana).get("PROMETHEUS_URL", "")
    check(
        host_of(url) in services if url else False,
        f"grafana: PROMETHEUS_URL ({url or 'unset'}) names a compose service",
    )
    provisioning = host_path(mounts, "/etc/grafana/provisioning")
    if not check(
        provisioning is not None and provisioning.is_dir(),
        "grafana: /etc/grafana/provisioning is a mounted folder",
    ):
        return
    check(
        any((provisioning / "datasources").glob("*.yml")),
        "grafana: datasources are provisioned",
    )
    providers = sorted((provisioning / "dashboards").glob("*.yml"))
    if not check(providers, "grafana: a dashboards provider is provisioned"):
        return
    for provider in providers:
        for path in re.findall(r"^\s*path:\s*(\S+)\s*$", provider.read_text(), re.MULTILINE):
            folder = host_path(mounts, path)
            check(
                folder is not None and any(folder.glob("*.json")),
                f"grafana: the provider's dashboards folder {path} is mounted with dashboards",
            )


def check_consul(services, mounts_of):
    mounts = mounts_of["consul"]
    configs = [
        host_path(mounts, target)
        for target in mounts
        if target.startswith("/consul/config") and target.endswith((".hcl", ".json"))
    ]
    for config in configs:
        if not config or not config.is_file():
            continue  # reported with the other mounts
        for path in re.findall(r'"(/[^"]+)"', config.read_text()):
            on_host = host_path(mounts, path)
            check(
                on_host is not None and on_host.is_file(),
                f"consul: {path}, named in {config.name}, is mounted",
            )


def check_greeter(name, service, services, mounts):
    env = environment(service)
    identity = env.get("MESH_SERVICE_NAME", "")
    check(identity, f"{name}: MESH_SERVICE_NAME is set")
    if env.get("MESH_CERTS_DIR"):
        check_certificates(name, mounts, env["MESH_CERTS_DIR"], identity)
    else:
        fail(f"{name}: MESH_CERTS_DIR is set")
    if env.get("MESH_CONFIG_FILE"):
        config = host_path(mounts, env["MESH_CONFIG_FILE"])
        check(
            config is not None and config.is_file(),
            f"{name}: MESH_CONFIG_FILE {env['MESH_CONFIG_FILE']} is mounted",
        )
    check(
        env.get("MESH_ADMIN_ADDRESS", "").startswith("0.0.0.0:"),
        f"{name}: the admin endpoint listens on every address, for Prometheus",
        env.get("MESH_ADMIN_ADDRESS", "unset"),
    )
    advertised = env.get("MESH_ADVERTISE_ADDRESS", "")
    check(
        advertised in (name, service.get("hostname")),
        f"{name}: registers its own name in Consul (MESH_ADVERTISE_ADDRESS={advertised})",
    )
    for variable in ("CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if variable in env:
            check(
                host_of(env[variable]) in services,
                f"{name}: {variable} ({env[variable]}) names a compose service",
            )
    check(
        "consul" in (service.get("depends_on") or {}),
        f"{name}: depends on consul",
    )

    # The healthcheck: `mesh health` on the server's port, with an identity it can read.
    test = (service.get("healthcheck") or {}).get("test") or []
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    arguments = test[1:] if test and test[0] in ("CMD", "CMD-SHELL") else list(test)
    if len(arguments) == 1:
        arguments = arguments[0].split()
    if not check(
        arguments[:2] == ["mesh", "health"], f"{name}: the healthcheck runs `mesh health`"
    ):
        return
    port = env.get("MESH_SERVER_PORT", "")
    check(
        len(arguments) > 2 and arguments[2].endswith(":" + port),
        f"{name}: the healthcheck probes MESH_SERVER_PORT ({port})",
    )
    certs, probe_identity = option(arguments, "--certs"), option(arguments, "--identity")
    if check(certs and probe_identity, f"{name}: the healthcheck has --certs and --identity"):
        check_certificates(f"{name} healthcheck", mounts, certs, probe_identity)

    # Docker must not kill a draining server: SIGTERM, the drain delay, then the grace period.
    drain = [seconds(env.get(key, "0")) for key in ("MESH_DRAIN_DELAY", "MESH_DRAIN_GRACE_PERIOD")]
    grace = seconds(service.get("stop_grace_period", "10s"))
    if None in drain or grace is None:
        fail(f"{name}: the drain and stop_grace_period are durations")
    else:
        check(
            grace > sum(drain),
            f"{name}: stop_grace_period ({grace:g} s) outlasts the drain ({sum(drain):g} s)",
        )


def check_kubernetes(manifest, in_process_yaml):
    label = "kubernetes/greeter.yaml"
    if not check(manifest.is_file(), f"{label} exists"):
        return
    text = manifest.read_text()
    if in_process_yaml is None:
        print("skipped: parsing kubernetes/greeter.yaml (no PyYAML here): text checks", flush=True)
        for needle in ("readinessProbe:", "livenessProbe:", "containerPort: 9901"):
            check(needle in text, f"{label}: has {needle}")
        check(
            re.search(r"mesh health|-\s*mesh\s*\n\s*-\s*health\b", text) is not None,
            f"{label}: probes with mesh health",
        )
        return
    documents = [document for document in in_process_yaml(text) if document]
    check(documents, f"{label}: parses as YAML documents")
    kinds = {document.get("kind"): document for document in documents}
    check({"Deployment", "Service"} <= set(kinds), f"{label}: has a Deployment and a Service")
    deployment = kinds.get("Deployment")
    if not deployment:
        return
    pod = deployment["spec"]["template"]
    containers = pod["spec"]["containers"]
    container = containers[0]
    env = {item["name"]: item for item in container.get("env", [])}
    ports = {port["containerPort"] for port in container.get("ports", [])}
    check({50051, 9901} <= ports, f"{label}: container ports 50051 and 9901")
    check(
        pod["metadata"].get("annotations", {}).get("prometheus.io/port") == "9901",
        f"{label}: prometheus.io/port is the admin port",
    )
    check(
        env.get("MESH_ADVERTISE_ADDRESS", {}).get("valueFrom", {}).get("fieldRef", {})
        .get("fieldPath") == "status.podIP",
        f"{label}: MESH_ADVERTISE_ADDRESS is the pod IP",
    )
    mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = container.get(probe_name) or {}
        command = (probe.get("exec") or {}).get("command") or []
        if not check(command[:2] == ["mesh", "health"], f"{label}: {probe_name} runs mesh health"):
            continue
        certs, identity = option(command, "--certs"), option(command, "--identity")
        secret = (volumes.get(mounts.get(certs)) or {}).get("secret") or {}
        paths = {item["path"] for item in secret.get("items", [])}
        check(
            {"ca.crt", f"services/{identity}.crt", f"services/{identity}-key.pem"} <= paths,
            f"{label}: {probe_name}'s --certs {certs} holds {identity}'s certificate and key",
        )
    drain = [
        seconds(env.get(key, {}).get("value", "0"))
        for key in ("MESH_DRAIN_DELAY", "MESH_DRAIN_GRACE_PERIOD")
    ]
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    check(
        None not in drain and grace > sum(drain),
        f"{label}: terminationGracePeriodSeconds ({grace}) outlasts the drain",
    )
    service_ports = {port["port"] for port in kinds["Service"]["spec"].get("ports", [])}
    check({50051, 9901} <= service_ports, f"{label}: the Service names ports 50051 and 9901")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mesh", required=True, help="the mesh executable that makes the certs")
    arguments = parser.parse_args()
    mesh = shutil.which(arguments.mesh)
    if not mesh:
        sys.exit(f"error: --mesh {arguments.mesh} is not an executable")
    mesh = str(pathlib.Path(mesh).resolve())
    compose = shutil.which("docker-compose")
    if not compose:
        sys.exit("error: docker-compose is not on PATH (Debian: apt-get install docker-compose)")
    load_yaml = yaml_loader()
    try:
        import yaml

        in_process_yaml = lambda text: list(yaml.safe_load_all(text))  # noqa: E731
    except ImportError:
        in_process_yaml = None

    with tempfile.TemporaryDirectory(prefix="check-deploy-") as scratch:
        scratch = pathlib.Path(scratch)
        deploy = scratch / "deploy"
        # Certificates that happen to be in deploy/certs are not the ones under test.
        def local_certificates(folder, names):
            return ["certs"] if pathlib.Path(folder) == root / "deploy" else []

        shutil.copytree(root / "deploy", deploy, ignore=local_certificates)

        make_certs = [shutil.which("bash") or "bash", str(deploy / "make-certs.sh"), mesh]
        result = subprocess.run(make_certs, capture_output=True, text=True)
        if not check(
            result.returncode == 0,
            f"make-certs.sh {arguments.mesh} makes deploy/certs",
            (result.stdout + result.stderr).strip(),
        ):
            return
        certs = deploy / "certs"
        before = {path: path.read_bytes() for path in certs.rglob("*") if path.is_file()}
        result = subprocess.run(make_certs, capture_output=True, text=True)
        after = {path: path.read_bytes() for path in certs.rglob("*") if path.is_file()}
        check(
            result.returncode == 0 and before == after,
            "make-certs.sh run again changes nothing",
            (result.stdout + result.stderr).strip(),
        )

        compose_file = deploy / "docker-compose.yml"
        result = subprocess.run(
            [compose, "-f", str(compose_file), "config"],
            cwd=scratch,
            capture_output=True,
            text=True,
        )
        if not check(
            result.returncode == 0, "docker-compose config accepts the compose file",
            result.stderr.strip(),
        ):
            return
        if not check(load_yaml is not None, "a YAML parser (PyYAML, or docker-compose's)"):
            return
        try:
            config = load_yaml(result.stdout)[0]
        except Exception as error:  # noqa: BLE001 - any parser failure is a failed check
            fail(f"docker-compose config's output parses: {error}")
            return
        services = config.get("services") or {}

        greeters = sorted(
            name for name, service in services.items() if "greeter-server" in command_list(service)
        )
        for name in ("consul", "jaeger", "prometheus", "grafana", "greeter-client"):
            check(name in services, f"service {name} exists")
        check(greeters, f"greeter services exist ({', '.join(greeters) or 'none'})")

        # Every host path a service mounts: in deploy/, and there.
        mounts_of = {name: binds(service) for name, service in services.items()}
        for name, mounts in sorted(mounts_of.items()):
            for target, source in sorted(mounts.items()):
                source_path = pathlib.Path(source)
                shown = (
                    source_path.relative_to(scratch)
                    if source_path.is_relative_to(scratch)
                    else source_path
                )
                check(
                    source_path.resolve().is_relative_to(deploy.resolve()),
                    f"{name}: mount source {shown} is inside deploy/",
                )
                check(source_path.exists(), f"{name}: mount source {shown} exists ({target})")

        for name, service in services.items():
            build = service.get("build")
            if isinstance(build, dict):
                dockerfile = pathlib.Path(build["context"]) / build.get("dockerfile", "Dockerfile")
                check(dockerfile.is_file(), f"{name}: builds {dockerfile.relative_to(scratch)}")

        for name in greeters:
            check_greeter(name, services[name], services, mounts_of[name])

        if "greeter-client" in services:
            client = services["greeter-client"]
            env = environment(client)
            if env.get("MESH_CERTS_DIR"):
                check_certificates(
                    "greeter-client",
                    mounts_of["greeter-client"],
                    env["MESH_CERTS_DIR"],
                    env.get("MESH_SERVICE_NAME", ""),
                )
            else:
                fail("greeter-client: MESH_CERTS_DIR is set")
            check(
                str(client.get("restart", "no")) in ("no", "False", "false"),
                "greeter-client runs once (restart: no)",
            )
            depends = client.get("depends_on") or {}
            for name in greeters:
                condition = (depends.get(name) or {}) if isinstance(depends, dict) else {}
                check(
                    condition.get("condition") == "service_healthy",
                    f"greeter-client starts once {name} is healthy",
                )

        if "consul" in services:
            check_consul(services, mounts_of)
        if "prometheus" in services:
            check_prometheus(services, mounts_of, deploy / "prometheus" / "prometheus.yml")
        if "grafana" in services:
            check_grafana(services, mounts_of)

        check_kubernetes(deploy / "kubernetes" / "greeter.yaml", in_process_yaml)


if __name__ == "__main__":
    main()
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
    print("every check passed", flush=True)
