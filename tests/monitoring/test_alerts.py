"""The alert rules and the dashboard: valid, unit-tested with promtool, and about metrics notif exports."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

from helpers import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "notif-dashboard.json"
SEED_ALERTS = {"NotifProcessDown", "NotifProcessAbsent", "NotifErrorRateHigh", "NotifQueueGrowing", "NotifDeadLetters",
               "NotifProcessingTimeRising", "NotifMemoryHigh", "NotifTransientFailures"}


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run does it)", pytrace=False)
    return path


def exported_metric_names() -> set[str]:
    """Every notif_* family the code defines (counters, histograms, gauges, scrape-time gauges)."""
    source = "".join(p.read_text() for p in (ROOT / "notif").rglob("*.py"))
    names = set(re.findall(r'"(notif_[a-z_]+)"', source))
    return names | {f"{n}{suffix}" for n in names for suffix in ("_total", "_bucket", "_count", "_sum")}


def test_rules_are_valid():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests():
    result = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_seed_alert_exists_and_every_alert_is_tested():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert SEED_ALERTS <= alerts
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert alerts == tested, f"untested: {alerts - tested}"


def test_rules_and_dashboard_only_use_metrics_notif_exports():
    exported = exported_metric_names()
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bnotif_[a-z_]+", e)}
    assert used and used <= exported, f"unknown metrics: {used - exported}"
