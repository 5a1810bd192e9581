"""The shape of the code: imports change nothing, no import circle, no import hidden in a function.

notif's processes are each assembled in one function (see README › Layout); these tests
keep it that way as the code grows.
"""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import notif

ROOT = Path(notif.__file__).resolve().parent
#: the worker's entry point assembles the worker when imported (that is its job); a __main__ runs
ENTRY_MODULES = {"notif.actors", "notif.cli.__main__"}


def notif_modules() -> list[str]:
    names = ["notif"] + [m.name for m in pkgutil.walk_packages(notif.__path__, "notif.")]
    return sorted(n for n in names if n not in ENTRY_MODULES)


def module_path(name: str) -> Path:
    parts = name.split(".")[1:]
    package = ROOT.joinpath(*parts, "__init__.py")
    return package if package.exists() else ROOT.joinpath(*parts[:-1], parts[-1] + ".py")


PROBE = r"""
import json, logging, os, sys, threading
import importlib
env = dict(os.environ)
handlers = list(logging.getLogger().handlers)
threads = threading.active_count()
import prometheus_client.values as values
value_class = values.ValueClass
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
import dramatiq.broker
print(json.dumps({
    "environ_changed": sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
    "root_handlers_added": len(logging.getLogger().handlers) - len(handlers),
    "threads_started": threading.active_count() - threads,
    "dramatiq_broker_set": dramatiq.broker.global_broker is not None,
    "prometheus_storage_changed": values.ValueClass is not value_class,
}))
"""


def test_importing_any_notif_module_changes_nothing():
    names = notif_modules()
    assert "notif.worker.process" in names and "notif.web.app" in names  # the walk found the packages
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(names)], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"environ_changed": [], "root_handlers_added": 0, "threads_started": 0,
                                      "dramatiq_broker_set": False, "prometheus_storage_changed": False}


def test_the_worker_entry_point_is_what_assembles_a_worker():
    """The probe above can fail: importing notif.actors does set a broker and logging up."""
    probe = PROBE.replace('print(json.dumps({', 'print(json.dumps({"_": 0,')
    out = subprocess.run([sys.executable, "-c", probe, json.dumps(["notif.actors"])], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["dramatiq_broker_set"] and seen["root_handlers_added"] == 1


def _imports(name: str, tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(imported notif module, node) for every import in ``tree``, resolved to module names."""
    package = name if module_path(name).name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names if alias.name.startswith("notif")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("notif"):
                continue
            for alias in node.names:  # `from . import x` imports the module x
                candidate = f"{base}.{alias.name}"
                found.append((candidate if module_path(candidate).exists() else base, node))
    return found


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def test_no_import_circle_and_none_hidden_in_a_function():
    """(A function may import an optional third-party package, e.g. `notif dev`'s moto; never notif.)"""
    graph: dict[str, set[str]] = {}
    hidden = []
    for name in notif_modules() + sorted(ENTRY_MODULES):
        tree = ast.parse(module_path(name).read_text())
        skip = _type_checking_nodes(tree)
        graph[name] = {target for target, node in _imports(name, tree) if id(node) not in skip and target != name}
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            inner = {id(n) for n in ast.walk(function)}
            hidden += [f"{name}:{node.lineno} imports {target}" for target, node in _imports(name, function)
                       if id(node) in inner]
    assert hidden == [], f"notif imports inside functions: {hidden}"
    assert graph["notif.worker.process"] >= {"notif.worker.tasks", "notif.config"}  # the graph is real

    # a package imports its parent's __init__ implicitly; only module-to-module edges count
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == [], f"import circles: {cycles}"


def test_only_the_redis_client_factory_makes_redis_clients():
    """TLS settings (NOTIF_REDIS_TLS_VERIFY, NOTIF_REDIS_TLS_CA) reach every client through one place."""
    makers = []
    for name in notif_modules() + sorted(ENTRY_MODULES):
        text = module_path(name).read_text()
        if name != "notif.redis_client" and ("from_url(" in text or "redis.Redis(" in text or "RedisBroker(" in text
                                            or "NotifBroker(" in text):
            makers.append(name)
    assert makers == ["notif.worker.broker"]  # the broker is handed a client the factory made
    assert "client=sync_client(settings" in module_path("notif.worker.broker").read_text()


def test_no_module_writes_the_environment_but_prometheus_storage():
    writers = [name for name in notif_modules() + sorted(ENTRY_MODULES)
               if "os.environ[" in module_path(name).read_text() or "os.environ.update" in module_path(name).read_text()
               or "os.putenv" in module_path(name).read_text()]
    # prometheus_client takes its multi-process directory only from the environment
    assert writers == ["notif.worker.metrics"]
