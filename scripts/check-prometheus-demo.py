#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""Runs the mesh demo under a real Prometheus and checks deploy/ against its live metrics: every
rule loads and evaluates without an error, and every recording rule and every Grafana panel query
(template variables filled in) returns data. Exits non-zero naming each failure.

    scripts/check-prometheus-demo.py [--demo '<command>'] [--prometheus <path>] [--expected 4]
                                     [--settle <seconds>] [--service NAME=SERVICE]

Each demo process prints `demo: admin endpoint of <name> on http://127.0.0.1:<port>/`. Debian's
Prometheus has no Consul discovery, so each endpoint becomes a file_sd target, labelled as
deploy/prometheus/prometheus.yml's relabelling of Consul's entry would label it. Once the demo has
ended (or `--settle` seconds after every target was up), the queries run at the last moment before
targets began to go down for good. Prometheus and the demo's process group are always stopped.

While every instance still serves (once the demo starts its traffic), `mesh status` and `mesh
check` run against the demo's agent over mTLS and must pass. Once the demo has ended, its output
must tell its whole story in order (an authorization refusal, an instance killed, restarted and
picked again, a flaky one healed, a certificate rotated, a drain) and its summary line must count
no failed call."""
import argparse
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
JOB = re.search(r"job_name:\s*(\S+)", PROMETHEUS_YML.read_text())[1]
EVER_UP = f'max_over_time(up{{job="{JOB}"}}[1d]) == 1'
# Searched for, not matched: a line an instance prints may come relayed with a prefix.
ADMIN_LINE = re.compile(r"demo: admin endpoint of (\S+) on http://([^/\s]+)/\S*$")
AGENT_LINE = re.compile(r"demo: Consul-compatible agent on (http://\S+)$")
CERTS_LINE = re.compile(r"demo: made a mesh CA and certificates for .* in (\S+)$")
SUMMARY_LINE = re.compile(r"^total=(\d+) failed=(\d+) ")
# What the demo's story announces, each once, in this order.
STORY = ["refused by authorization", "killed greeter-0", "restarted greeter-0",
         "greeter-2 is healthy again", "rotated greeter's certificate", "draining greeter-1",
         "greeter-1 drained and exited (status 0)", "every call accounted for"]
# Announced once the restarted instance serves calls: after its restart, whenever that is.
PICKED_AGAIN = ("restarted greeter-0", "greeter-0 is picked again")
# Grafana's built-in variables, as a dashboard with a 1 s scrape interval would get them.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
# Panel queries (named "<dashboard>: <panel title> (<refId>)") that may return nothing in a demo
# run, each with why. Hedge counts, which the demo's retry policy never makes, are histograms made
# with each method's first call (empty, but present); the callers' error ratio is 0, not absent,
# when no call failed (its rule's `or`).
ALLOWLIST: dict[str, str] = {
    "mesh-overview.json: Ejections, breaker rejections and budget refusals (B)":
        "the demo's story overloads nothing: no circuit breaker trips in it, and every call "
        "succeeds (the alert rules' promtool tests and the Swift tests cover the breakers)",
}


class Failure(Exception):
    """A failure that ends the run early (the demo or Prometheus did not start, or a timeout)."""


class Demo:
    """The demo process, in a process group of its own, and the admin endpoints it announced."""

    def __init__(self, command):
        try:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                errors="replace", bufsize=1, start_new_session=True)
        except OSError as error:
            raise Failure(f"cannot run the demo: {error}")
        self.endpoints = {}  # name -> host:port, in the order they were announced
        self.lines = []
        self.agent, self.certs = None, None
        self.traffic = threading.Event()  # set when the demo starts sending traffic
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        """Echoes the demo's output with a prefix and collects the admin endpoints."""
        for line in self.process.stdout:
            line = line.rstrip()
            print(f"[demo] {line}", flush=True)
            with self.lock:
                self.lines.append(line)
                if match := ADMIN_LINE.search(line):
                    self.endpoints[match[1]] = match[2]
                if match := AGENT_LINE.search(line):
                    self.agent = match[1]
                if match := CERTS_LINE.search(line):
                    self.certs = match[1]
            if line.startswith("demo: sending traffic"):
                self.traffic.set()

    def snapshot(self):
        with self.lock:
            return dict(self.endpoints)

    def ended(self):
        """Its exit status once it has ended and its output is read; None while it runs."""
        if self.process.poll() is None:
            return None
        self.reader.join(timeout=5)
        return self.process.returncode


def stop(process, grace):
    """Stops a child started in a session of its own, and whatever is left in its process group
    (`swift run`'s child, the demo's instances): SIGTERM, then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                process.poll()  # reaps the leader, so that an empty group is gone
                os.killpg(process.pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            return


def target_labels(name, args):
    """The labels prometheus.yml's relabelling gives the instance a demo process is: `instance`
    is its Consul service ID (the demo registers instance i of "greeter" as "greeter-i"),
    `service` the service it belongs to (the ID without its index, unless --service names it)."""
    service = args.service.get(name) or re.sub(r"-[0-9]+$", "", name)
    return {"service": service, "instance": name, "datacenter": args.datacenter}


def write_targets(path, endpoints, args):
    """Writes the file_sd file atomically: Prometheus rereads it when it changes."""
    groups = [{"targets": [address], "labels": target_labels(name, args)}
              for name, address in endpoints.items()]
    pathlib.Path(f"{path}.new").write_text(json.dumps(groups, indent=2))
    os.replace(f"{path}.new", path)


def write_config(path, targets_file):
    """Prometheus's configuration: deploy/'s job name and rules, scraping every second."""
    rules = "".join(f"  - {json.dumps(str(rule))}\n" for rule in RULE_FILES)
    path.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n{rules}scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n"
        f"    file_sd_configs:\n      - files: [{json.dumps(str(targets_file))}]\n"
        "        refresh_interval: 1s\n")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prometheus(args, tmp, config):
    """Starts Prometheus on a free port and waits until it is ready; returns it and its URL."""
    for attempt in range(3):
        port, log = free_port(), tmp / f"prometheus-{attempt}.log"
        command = [args.prometheus, f"--config.file={config}",
                   f"--web.listen-address=127.0.0.1:{port}",
                   f"--storage.tsdb.path={tmp / f'data-{attempt}'}"]
        try:
            with log.open("w") as output:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as error:
            raise Failure(f"cannot run {args.prometheus}: {error}")
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        print(f"prometheus is ready on {base}", flush=True)
                        return process, base
            except OSError:
                pass
            time.sleep(0.25)
        status = process.poll()
        stop(process, 5)
        text = log.read_text(errors="replace")
        if "address already in use" not in text:
            how = f"exited with status {status}" if status is not None else "was not ready in 30 s"
            raise Failure(f"prometheus {how}; its log:\n{text[-4000:]}")
    raise Failure("prometheus found no free port in 3 tries")


def api(base, path, **params):
    """GET (or, with a query, POST) Prometheus's HTTP API; returns `data`, raises on an error."""
    body = urllib.parse.urlencode(params).encode() if "query" in params else None
    url = base + path + ("" if body or not params else "?" + urllib.parse.urlencode(params))
    try:
        try:
            with urllib.request.urlopen(url, data=body, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
    except ValueError as error:  # not JSON: a proxy's page, a truncated reply
        raise Failure(f"Prometheus's {path} did not answer JSON: {error}")
    if not isinstance(answer, dict) or answer.get("status") != "success":
        answer = answer if isinstance(answer, dict) else {}
        raise RuntimeError(f"{answer.get('errorType')}: {answer.get('error')}")
    return answer["data"]


def last_steady_poll(polls, window=10.0):
    """The last of `polls` ((time, instances up), in order) at which every target up in the
    `window` seconds before was still up: before the demo began to stop (an instance it kills goes
    down well before that), when every series to check was still fresh."""
    for index in range(len(polls) - 1, -1, -1):
        at, up = polls[index]
        before = set().union(*(u for t, u in polls[:index] if at - window <= t))
        if up and up >= before:
            return polls[index]
    raise Failure("no target was ever up")


def operator_checks(demo, mesh):
    """`mesh status` and `mesh check` against the demo's agent, over mTLS with the demo client's
    certificate, while every instance still serves; returns the problems found."""
    with demo.lock:
        agent, certs = demo.agent, demo.certs
    if not agent or not certs:
        return ["the demo printed no agent address or certificates folder"]
    tls = ["--consul", agent, "--certs", certs, "--identity", "demo-client", "--service",
           "greeter", "--timeout", "20s"]
    commands = (["status", "--json"], ["check", "--verbose"])
    # Both at once: the story's first step (a fifth of the run) must not come first.
    try:
        running = [subprocess.Popen([mesh] + command + tls, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for command in commands]
    except OSError as error:
        return [f"cannot run {mesh}: {error}"]
    problems = []
    for command, process in zip(commands, running):
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            problems.append(f"mesh {command[0]} did not end in 60 s")
            continue
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        for line in result.stdout.splitlines():
            print(f"[mesh {command[0]}] {line}", flush=True)
        if result.returncode != 0:
            problems.append(f"mesh {command[0]} exited {result.returncode}: "
                            f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        elif command[0] == "status":
            try:
                status = json.loads(result.stdout)
                services = {service["name"]: service for service in status["services"]}
                greeter = services["greeter"]["instances"]
                serving = [i["id"] for i in greeter if (i.get("probe") or {}).get("status") == "SERVING"]
                if len(serving) != 3:
                    problems.append(f"mesh status: {serving} of greeter-0..2 SERVING")
            except (ValueError, KeyError, TypeError) as error:
                problems.append(f"mesh status --json: unexpected output ({error!r})")
    return problems


def story_problems(demo):
    """The demo's story, announced in order, and its summary: every call accounted for, none
    failed."""
    with demo.lock:
        lines = list(demo.lines)
    problems, position = [], 0
    for event in STORY:
        found = next((index for index in range(position, len(lines)) if event in lines[index]),
                     None)
        if found is None:
            problems.append(f"the demo did not announce '{event}' (after the previous step)")
        else:
            position = found + 1
    restarted = next((i for i, line in enumerate(lines) if PICKED_AGAIN[0] in line), None)
    if restarted is not None and not any(PICKED_AGAIN[1] in line for line in lines[restarted:]):
        problems.append(f"the demo did not announce '{PICKED_AGAIN[1]}' after its restart")
    summaries = [match for line in lines if (match := SUMMARY_LINE.search(line))]
    if not summaries:
        problems.append("the demo printed no summary line")
    elif int(summaries[-1][2]) != 0:
        problems.append(f"the demo's summary has {summaries[-1][2]} failed calls (of "
                        f"{summaries[-1][1]}); every call is to an idempotent method")
    return problems


def instances(base, query):
    """The `instance` labels of a query's result, now."""
    return frozenset(sample["metric"].get("instance")
                     for sample in api(base, "/api/v1/query", query=query)["result"])


def watch(demo, base, args, targets_file, operator_problems):
    """Keeps the file_sd file current and polls which targets are up until the demo ends (or,
    with `--settle`, that many seconds after each expected target was up). Returns the time to
    check at, and the targets up then: the last poll before targets began to go down for good."""
    written, polls, all_up_at, started = {}, [], None, time.monotonic()
    checker = None
    while demo.ended() is None:
        if checker is None and demo.traffic.is_set():
            # Before the story's first step (a fifth of the run): every instance serves. In a
            # thread of its own, so that polling Prometheus goes on meanwhile.
            def check():
                try:
                    operator_problems.extend(operator_checks(demo, args.mesh))
                except Exception as error:  # reported, not lost with the thread
                    operator_problems.append(f"mesh status/check: {error!r}")
            checker = threading.Thread(target=check, daemon=True)
            checker.start()
        endpoints, elapsed = demo.snapshot(), time.monotonic() - started
        if not endpoints and elapsed > args.endpoint_timeout:
            raise Failure(f"the demo printed no admin endpoint in {args.endpoint_timeout:g} s")
        if elapsed > args.timeout:
            raise Failure(f"the demo did not end in {args.timeout:g} s")
        if endpoints != written:
            write_targets(targets_file, endpoints, args)
            written = endpoints
        polls.append((time.time(), instances(base, f'up{{job="{JOB}"}} == 1')))
        # Prometheus's own record: a target up only between two polls counts too.
        if all_up_at is None and len(ever_up := instances(base, EVER_UP)) >= args.expected:
            print(f"every expected target has been up: {', '.join(sorted(ever_up))}", flush=True)
            all_up_at = time.monotonic()
        if all_up_at and args.settle is not None and time.monotonic() - all_up_at >= args.settle:
            break
        time.sleep(0.5)
    if checker is None:
        operator_problems.append("mesh status and mesh check never ran (no traffic line)")
    else:
        checker.join(timeout=120)
        if checker.is_alive():
            operator_problems.append("mesh status and mesh check did not end in 120 s")
    if not demo.snapshot():
        raise Failure(f"the demo exited with status {demo.ended()} before it printed an admin "
                      "endpoint")
    if len(ever_up := instances(base, EVER_UP)) < args.expected:
        errors = "".join(f"\n    {target['labels'].get('instance')}: {target['lastError']}"
                         for target in api(base, "/api/v1/targets")["activeTargets"]
                         if target["labels"].get("instance") not in ever_up)
        raise Failure(f"{len(ever_up)} of {args.expected} targets were ever up "
                      f"({', '.join(sorted(ever_up))}); announced: {', '.join(demo.snapshot())}; "
                      f"demo status: {demo.ended()}; never up:{errors or ' none'}")
    return last_steady_poll(polls)


def dashboard_queries():
    """Every Grafana panel query as (where, PromQL), template variables filled in with the value
    the dashboard itself uses for "All" (`allValue`, a regex) and Grafana's built-ins."""
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        values = {variable["name"]: variable.get("allValue") or ".*"
                  for variable in dashboard.get("templating", {}).get("list", [])}
        values.update(GRAFANA_BUILTINS)
        fill = lambda match: values.get(match[1] or match[2] or match[3], match[0])  # noqa: E731
        panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
        for panel in panels:
            for target in panel.get("targets", []):
                expr = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", fill, target["expr"])
                queries.append((f"{path.name}: {panel['title']} ({target['refId']})", expr))
    return queries


def check_rules(base):
    """Every rule of deploy/ is loaded and, once evaluated, healthy. Returns (records, problems)."""
    deadline = time.monotonic() + 20
    while True:
        groups = api(base, "/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if time.monotonic() > deadline or all(rule["health"] != "unknown" for rule in rules):
            break
        time.sleep(0.5)
    problems = []
    loaded = {pathlib.Path(group["file"]).resolve() for group in groups}
    for missing in sorted(set(RULE_FILES) - loaded):
        problems.append(f"rule file {missing.name}: not loaded")
    for rule in rules:
        state = f" [{rule['state']}]" if rule["type"] == "alerting" else ""
        print(f"  rule {rule['health']:<7} {rule['name']}{state}")
        if rule["health"] != "ok" or rule.get("lastError"):
            problems.append(f"rule {rule['name']}: {rule['health']} {rule.get('lastError', '')}")
    return [rule["name"] for rule in rules if rule["type"] == "recording"], problems


def check_queries(base, queries, at):
    """Runs each (where, expr) at `at`; returns a problem for each failed or empty one."""
    problems = []
    for where, expr in queries:
        try:
            data = api(base, "/api/v1/query", query=expr, time=f"{at:.3f}")
            result = data["result"]
            samples = result if data["resultType"] in ("vector", "matrix") else [{"value": result}]
            count, error = len(samples), None
            nans = sum(sample.get("value", [0, ""])[1] == "NaN" for sample in samples)
        except (RuntimeError, OSError) as failure:
            count, nans, error = 0, 0, str(failure)
        allowed = ALLOWLIST.get(where)
        status = "ok" if count else ("ERROR" if error else "allowed" if allowed else "EMPTY")
        note = f": {error}" if error else f" ({nans} NaN)" if nans else ""
        print(f"  {status:<7} {count:>3} series  {where}{note}")
        if count and allowed:
            print("          (allowlisted, but it has data: drop it from ALLOWLIST)")
        if error or not (count or allowed):
            problems.append(f"{where}: {error or 'no data'}\n      {' '.join(expr.split())}")
    return problems


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--demo", default="swift run --package-path Examples --skip-build mesh-demo --duration 45",
        help="the demo command, as shell words, run from the repository root")
    add("--prometheus", default="prometheus", help="the prometheus binary (default: from PATH)")
    add("--mesh", default=str(ROOT / ".build" / "debug" / "mesh"),
        help="the mesh tool, for `mesh status` and `mesh check` against the demo's agent "
             "(default: the debug build's)")
    add("--expected", type=int, default=4, help="targets to be up once (4: client, greeter-0..2)")
    add("--settle", type=float, help="check this many seconds after every target was up, while "
        "the demo runs (default: check once it has ended)")
    add("--endpoint-timeout", type=float, default=180,
        help="seconds for the demo to print its first admin endpoint (180)")
    add("--timeout", type=float, default=300, help="seconds for the demo to end (300)")
    add("--datacenter", default="dc1", help="the `datacenter` label (the demo agent's: dc1)")
    add("--service", action="append", default=["client=demo-client"], metavar="NAME=SERVICE",
        help="the `service` label of a process whose name has no instance index "
             "(default client=demo-client, the demo client's MESH_SERVICE_NAME)")
    args = parser.parse_args()
    args.service = dict(item.split("=", 1) for item in args.service)
    return args


def run(args, tmp, started):
    """Runs the demo, Prometheus and the checks; returns the problems found. The processes it
    starts go in `started`, (process, seconds to stop gracefully), for the caller to stop."""
    # Prometheus first (no targets yet): a demo target is scraped soon after it is announced.
    targets_file, config = tmp / "targets.json", tmp / "prometheus.yml"
    write_targets(targets_file, {}, args)
    write_config(config, targets_file)
    prometheus, base = start_prometheus(args, tmp, config)
    started.append((prometheus, 10))
    print(f"starting the demo: {args.demo}", flush=True)
    demo = Demo(shlex.split(args.demo))
    started.append((demo.process, 15))
    operator_problems = []
    at, up = watch(demo, base, args, targets_file, operator_problems)
    state = "runs" if demo.ended() is None else "has ended"
    print(f"checking at {time.strftime('%H:%M:%S', time.localtime(at))}, when "
          f"{', '.join(sorted(up))} were up (the demo {state})", flush=True)
    records, problems = check_rules(base)
    problems += check_queries(base, [(f"record {name}", name) for name in records], at)
    problems += check_queries(base, dashboard_queries(), at)
    try:
        if status := demo.process.wait(timeout=args.timeout):
            problems.append(f"the demo exited with status {status}")
    except subprocess.TimeoutExpired:
        problems.append(f"the demo did not end in {args.timeout:g} s")
    demo.reader.join(timeout=5)
    if not demo.traffic.is_set():
        problems.append("the demo never started its traffic")
    return problems + operator_problems + story_problems(demo)


def main():
    args = parse_arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="check-prometheus-demo-"))
    started = []
    try:
        problems = run(args, tmp, started)
    except Failure as failure:
        problems = [str(failure)]
    except (RuntimeError, OSError) as error:
        problems = [f"unexpected failure: {error!r}"]
    finally:
        for process, grace in reversed(started):
            stop(process, grace)
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print(f"\nFAILED ({len(problems)}):\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("\nevery rule is healthy; every recording rule and dashboard query has data")


if __name__ == "__main__":
    main()
