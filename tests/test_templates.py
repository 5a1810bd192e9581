import subprocess
import sys

import pytest

from notif.errors import TemplateError
from notif.templates import TemplateStore, builtin_dir

VARS = {"submitterName": "Ana", "branchName": "North", "reportId": 42}


def store(*dirs):
    return TemplateStore([*dirs, builtin_dir()])


def test_report_submitted_renders_every_part():
    rendered = store().render("REPORT_SUBMITTED", VARS)
    assert rendered.title == "New report submitted"
    assert rendered.message == "Ana has submitted a new report for North"
    assert rendered.html == "<p><strong>Ana</strong> has submitted a new report for <strong>North</strong></p>"
    assert rendered.actions == [
        {"id": "view", "label": "View report", "url": "/reports/42"},
        {"id": "approve", "label": "Approve", "api_endpoint": "/api/reports/42/approve", "method": "POST"},
    ]


def test_html_is_escaped_but_text_is_not():
    rendered = store().render("REPORT_SUBMITTED", {**VARS, "submitterName": "<script>x</script>"})
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert rendered.message.startswith("<script>x</script>")  # plain text; escaped where it is shown


def test_missing_variable_is_named():
    with pytest.raises(TemplateError) as info:
        store().render("REPORT_SUBMITTED", {"submitterName": "Ana"})
    assert info.value.reason == "template REPORT_SUBMITTED: missing variables: branchName, reportId"
    assert info.value.field == "variables"


def test_unknown_template_is_a_permanent_error():
    with pytest.raises(TemplateError, match="unknown template 'NOPE'"):
        store().get("NOPE")


def test_sandbox_blocks_python_internals(tmp_path):
    (tmp_path / "EVIL.toml").write_text('title = "{{ x.__class__.__mro__[1].__subclasses__() }}"\nmessage = "m"\n')
    with pytest.raises(TemplateError):
        store(tmp_path).render("EVIL", {"x": "s"})


def test_a_deployment_directory_overrides_the_builtins(tmp_path):
    (tmp_path / "REPORT_SUBMITTED.toml").write_text('title = "Ours: {{ branchName }}"\nmessage = "m"\n')
    assert store(tmp_path).render("REPORT_SUBMITTED", VARS).title == "Ours: North"
    assert "REPORT_SUBMITTED" in store(tmp_path).types()


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_renders_every_builtin_template():
    result = subprocess.run([sys.executable, "-m", "notif.cli", "templates", "check"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "NOTIF_STATE_DIR": "/nonexistent"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      REPORT_SUBMITTED" in result.stdout
    assert ", 0 failed" in result.stdout


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_fails_on_a_broken_template(tmp_path):
    (tmp_path / "BROKEN.toml").write_text('title = "{{ name }"\nmessage = "m"\n')
    result = subprocess.run([sys.executable, "-m", "notif.cli", "templates", "check"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "NOTIF_TEMPLATES_DIR": str(tmp_path), "NOTIF_STATE_DIR": "/x"})
    assert result.returncode == 1
    assert "FAILED  BROKEN" in result.stdout


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_fails_on_a_sample_that_renders_an_unsafe_link(tmp_path):
    (tmp_path / "SNEAKY.toml").write_text("title = 't'\nmessage = 'm'\n[[actions]]\nid = 'go'\nlabel = 'Go'\n"
                                          "url = '{{ target }}'\n[sample]\ntarget = 'javascript:alert(1)'\n")
    result = subprocess.run([sys.executable, "-m", "notif.cli", "templates", "check"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "NOTIF_TEMPLATES_DIR": str(tmp_path), "NOTIF_STATE_DIR": "/x"})
    assert result.returncode == 1
    assert "FAILED  SNEAKY: actions.0.url: uses the `javascript:` scheme" in result.stdout


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "{{ 7*7 }}", "{% for x in y %}", "x" * 100_000,
                                     "\u202e\u0000 unicode ünïcødé 🔔"])
def test_hostile_variables_are_data_not_code(hostile):
    rendered = store().render("REPORT_SUBMITTED", {**VARS, "submitterName": hostile})
    assert hostile in rendered.message  # rendered as given: never evaluated
    assert "<script>" not in rendered.html and "49" not in rendered.message


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_preview_shows_each_channels_rendering():
    import json as _json
    result = subprocess.run([sys.executable, "-m", "notif.cli", "templates", "preview", "REPORT_SUBMITTED",
                             "--var", "submitterName=Bo"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "NOTIF_STATE_DIR": "/nonexistent"})
    shown = _json.loads(result.stdout)
    assert shown["push"]["title"] == "Report from North"
    assert shown["email"]["subject"] == "Bo submitted a report for North"
    assert shown["in_app"]["actions"][1]["api_endpoint"] == "/api/reports/42/approve"
