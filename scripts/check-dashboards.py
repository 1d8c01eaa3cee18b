#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""Checks deploy/grafana: every dashboard is well formed (unique panel IDs, the provisioned
datasource, a PromQL expression in every target) and every expression, with its template
variables filled in, is valid PromQL to Prometheus's own parser (`promtool check rules` over a
rules file made of them). Exits non-zero naming what is wrong."""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

root = pathlib.Path(__file__).resolve().parent.parent
grafana = root / "deploy" / "grafana"
problems = []

datasources = (grafana / "provisioning" / "datasources" / "prometheus.yml").read_text()
uid = re.search(r"uid:\s*(\S+)", datasources).group(1)

rules = []
for path in sorted((grafana / "dashboards").glob("*.json")):
    dashboard = json.loads(path.read_text())
    for field in ("uid", "title", "panels"):
        if not dashboard.get(field):
            problems.append(f"{path.name}: no {field}")
    ids = [panel["id"] for panel in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append(f"{path.name}: panel IDs repeat: {ids}")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("datasource", {}).get("uid") != uid:
            problems.append(f"{path.name}: variable {variable['name']} is not on datasource {uid}")
    for panel in dashboard["panels"]:
        if panel.get("datasource", {}).get("uid") != uid:
            problems.append(f"{path.name}: panel '{panel['title']}' is not on datasource {uid}")
        if not panel.get("targets"):
            problems.append(f"{path.name}: panel '{panel['title']}' has no query")
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if not expr:
                problems.append(f"{path.name}: panel '{panel['title']}' has an empty query")
                continue
            # Template variables take a regex in every query here.
            filled = re.sub(r"\$\{?(service|instance)\}?", ".*", expr)
            rules.append((f"{path.name}: {panel['title']} ({target['refId']})", filled))

with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as file:
    file.write("groups:\n  - name: dashboards\n    rules:\n")
    for index, (_, expr) in enumerate(rules):
        file.write(f"      - record: dashboard:query{index}\n        expr: {json.dumps(expr)}\n")
    rules_file = file.name
result = subprocess.run(["promtool", "check", "rules", rules_file], capture_output=True, text=True)
pathlib.Path(rules_file).unlink()
if result.returncode != 0:
    problems.append("promtool rejects a query:\n" + result.stdout + result.stderr)
    for index, (where, expr) in enumerate(rules):
        problems.append(f"  query{index}: {where}: {expr}")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(rules)} dashboard queries parse; dashboards are well formed")
