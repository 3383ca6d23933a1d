"""The house stays one-way: no import circles, no module leaning on a page, no room reaching up.

Every module under notifwatch/ is parsed (imports at the top and inside functions alike: an
import inside a function is still a dependency, only a later one) into a graph of our own
modules, and three rules hold:

1. No import cycle between modules.
2. No module imports a views module (`views`, `*_views`) except `notifwatch.urls`: views
   only render, so what two pages share lives in a module of its own.
3. Each module sits in one room, and imports only from its own room or rooms below it.

The rooms, lowest first, follow the data (outside bytes -> raw event -> provider adapter ->
canonical event -> notifications and delivery events -> detection -> exceptions -> review and
audit), with what everyone needs at the bottom and what only the site needs at the top:

- lib: pure helpers two apps share (no models, no imports of ours).
- records: every app's models and migrations. Tables point at other apps' tables by name
  ("ingest.Source"), never by import, so any room may read any table: what must stay one-way is
  the code that computes and changes things.
- trail: `audit.actions` (`record_audit`). Every action function of every app writes its audit
  entry in its own transaction, so the trail sits under all of them; the rest of the audit app
  (exports, evidence, retention) reads everything and sits near the top.
- accounts: users, roles, teams, access helpers, masking.
- vocabulary: the shapes two stages of the flow agree on. `ingest.canonical` is the canonical
  event that every provider adapter and mapping produces and `deliveries.recording` consumes;
  `failures.reasons` (the reason catalogue) and `failures.unknown_codes` are applied by the
  provider adapters while reading a call and by recording while storing an event, long before
  detection. They live with the app whose vocabulary they are, but under both stages.
  `audit.wording` is the trail's vocabulary: every action code in words, read by an
  exception's history (failures) and by the audit page, so it sits under both.
- deliveries: notifications and delivery events, recording, counts, lookups. It is below ingest,
  not above: ingest's importer and processing call `deliveries.recording`, not the other way.
- ingest: sources, raw events, adapters, mappings, imports, reprocessing.
- failures: detection, grouping, the exceptions' figures and actions, reviews, bulk changes.
- audit: exports, evidence packs, downloads, retention.
- api: the read API's tokens and answers; it reads deliveries, failures (the queue's filters,
  the explanations) and ingest (the sources' facts) to answer scripts, and nothing calls it.
- worker: schedules and retries; it names its jobs by dotted path, imported when they run.
- alerts: subscriptions, alerts recorded before they are sent, their delivery and digests; it
  reads exceptions and the worker's state to say what happened, and nothing below calls it
  (triggers read the exceptions' history instead of being called by the action functions).
- health: notifwatch watching itself (its checks, /healthz's answer, the banner, health alerts).
  Its checks only read tables, but it records and sends alerts, so it sits above alerts.
- demo: the demo-data generators, fed through the real ingest code; nothing imports them.
- site: views, admin, `urls`, `settings`, `wsgi`: pages sit on everything and nothing on them.

A new module lands in its app's room unless a rule below names it; a new app must be given a
room here (the test says so), which is the moment to decide where it sits in the flow.
"""

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "notifwatch"

ORDER = (
    "lib",
    "records",
    "trail",
    "accounts",
    "vocabulary",
    "deliveries",
    "ingest",
    "failures",
    "audit",
    "api",
    "worker",
    "alerts",
    "health",
    "demo",
    "site",
)

# First match wins: the specific rules come before the whole-app ones.
ROOMS = (
    ("notifwatch.*.migrations", "records"),
    ("notifwatch.*.migrations.*", "records"),
    ("notifwatch.*.models", "records"),
    ("notifwatch.audit.actions", "trail"),
    ("notifwatch.ingest.canonical", "vocabulary"),
    ("notifwatch.failures.reasons", "vocabulary"),
    ("notifwatch.failures.unknown_codes", "vocabulary"),
    ("notifwatch.audit.wording", "vocabulary"),
    ("notifwatch.*.views", "site"),
    ("notifwatch.*.*_views", "site"),
    ("notifwatch.*.admin", "site"),
    ("notifwatch", "site"),
    ("notifwatch.urls", "site"),
    ("notifwatch.settings", "site"),
    ("notifwatch.wsgi", "site"),
    *((pattern, app) for app in ORDER for pattern in (f"notifwatch.{app}", f"notifwatch.{app}.*")),
)

# Only the URL configuration imports views.
MAY_IMPORT_VIEWS = {"notifwatch.urls"}

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first import}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    """Each module of `package` and the modules of `package` it imports, wherever it imports them."""
    paths = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    graph: Graph = {}
    for name, path in paths.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for target in imported_modules(node, here, paths):
                if target != name and target.split(".")[0] == package:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def imported_modules(node: ast.AST, here: str, modules) -> list[str]:
    """The modules an import statement loads; `from a import b` loads `a.b` if it is a module."""
    if isinstance(node, ast.Import):
        found = [nearest_module(alias.name, modules) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = here.split(".")[: len(here.split(".")) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        found = [
            f"{base}.{alias.name}"
            if f"{base}.{alias.name}" in modules
            else nearest_module(base, modules)
            for alias in node.names
        ]
    else:
        return []
    return [module for module in found if module]


def nearest_module(target: str, modules) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, {}):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def is_views(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last == "views" or last.endswith("_views")


def views_imports(graph: Graph) -> list[str]:
    return [
        f"{module} imports {target} (line {line})"
        for module, edges in sorted(graph.items())
        if module not in MAY_IMPORT_VIEWS
        for target, line in sorted(edges.items())
        if is_views(target)
    ]


def room_of(module: str) -> str | None:
    return next((room for pattern, room in ROOMS if fnmatch.fnmatchcase(module, pattern)), None)


def upward_imports(graph: Graph) -> list[str]:
    rank = {room: position for position, room in enumerate(ORDER)}
    found = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            here, there = room_of(module), room_of(target)
            if here and there and rank[there] > rank[here]:
                found.append(f"{module} ({here}) imports {target} ({there}) (line {line})")
    return found


def describe_cycle(graph: Graph, members: list[str]) -> str:
    inside = set(members)
    edges = [
        f"  {module} -> {target} (line {line})"
        for module in members
        for target, line in sorted(graph[module].items())
        if target in inside
    ]
    return "\n".join([" <-> ".join(members), *edges])


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()


def test_it_reads_the_real_imports_at_the_top_and_inside_functions(graph):
    assert len(graph) > 100
    assert "notifwatch.failures.actions" in graph["notifwatch.failures.grouping"]
    # load_adapters imports the adapter modules inside a function.
    assert "notifwatch.ingest.providers.email" in graph["notifwatch.ingest.providers"]


def test_it_has_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "Import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


def test_it_lets_only_the_url_configuration_import_views(graph):
    found = views_imports(graph)
    assert not found, "Views imported outside notifwatch.urls:\n" + "\n".join(found)


def test_it_gives_every_module_a_room(graph):
    homeless = [module for module in graph if room_of(module) is None]
    assert not homeless, f"Give these a room in tests/test_layers.py (ROOMS, ORDER): {homeless}"


def test_it_never_imports_from_a_room_above(graph):
    found = upward_imports(graph)
    assert not found, "Imports from a room above:\n" + "\n".join(found)


# The checker itself: each rule catches what it is for, on a small planted package.


def plant(root: Path, files: dict[str, str]) -> Graph:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(root)


def test_the_checker_catches_a_cycle_hidden_inside_a_function(tmp_path):
    graph = plant(
        tmp_path,
        {
            "notifwatch/__init__.py": "",
            "notifwatch/failures/__init__.py": "",
            "notifwatch/failures/actions.py": (
                "def merge():\n    from notifwatch.failures.grouping import refresh\n"
            ),
            "notifwatch/failures/grouping.py": "from notifwatch.failures.actions import merge\n",
            "notifwatch/failures/models.py": "",
        },
    )

    assert graph["notifwatch.failures.actions"] == {"notifwatch.failures.grouping": 2}
    assert import_cycles(graph) == [["notifwatch.failures.actions", "notifwatch.failures.grouping"]]


def test_the_checker_catches_a_cycle_through_relative_and_submodule_imports(tmp_path):
    graph = plant(
        tmp_path,
        {
            "notifwatch/__init__.py": "",
            "notifwatch/audit/__init__.py": "",
            "notifwatch/audit/exports.py": "from . import evidence\n",
            "notifwatch/audit/evidence.py": "import notifwatch.deliveries.lookup\n",
            "notifwatch/deliveries/__init__.py": "",
            "notifwatch/deliveries/lookup.py": "from notifwatch.audit import exports\n",
        },
    )

    assert import_cycles(graph) == [
        [
            "notifwatch.audit.evidence",
            "notifwatch.audit.exports",
            "notifwatch.deliveries.lookup",
        ]
    ]


def test_the_checker_lets_a_one_way_chain_pass(tmp_path):
    graph = plant(
        tmp_path,
        {
            "notifwatch/__init__.py": "",
            "notifwatch/failures/__init__.py": "",
            "notifwatch/failures/impact.py": "",
            "notifwatch/failures/actions.py": "from notifwatch.failures.impact import refresh\n",
            "notifwatch/failures/grouping.py": "from notifwatch.failures import actions, impact\n",
        },
    )

    assert import_cycles(graph) == []


def test_the_checker_catches_a_views_import_outside_the_urls(tmp_path):
    graph = plant(
        tmp_path,
        {
            "notifwatch/__init__.py": "",
            "notifwatch/urls.py": "from notifwatch.failures import views\n",
            "notifwatch/failures/__init__.py": "",
            "notifwatch/failures/views.py": "",
            "notifwatch/failures/review_views.py": "",
            "notifwatch/audit/__init__.py": "",
            "notifwatch/audit/exports.py": (
                "def explain():\n    from notifwatch.failures.review_views import person\n"
            ),
        },
    )

    assert views_imports(graph) == [
        "notifwatch.audit.exports imports notifwatch.failures.review_views (line 2)"
    ]


def test_the_checker_catches_an_import_from_a_room_above(tmp_path):
    graph = plant(
        tmp_path,
        {
            "notifwatch/__init__.py": "",
            "notifwatch/deliveries/__init__.py": "",
            "notifwatch/deliveries/recording.py": (
                "from notifwatch.failures.models import FailureGroup\n"
                "from notifwatch.failures.reasons import classify_reason\n"
                "from notifwatch.failures.detection import run_checks\n"
            ),
            "notifwatch/failures/__init__.py": "",
            "notifwatch/failures/models.py": "",
            "notifwatch/failures/reasons.py": "",
            "notifwatch/failures/detection.py": "from notifwatch.deliveries import recording\n",
        },
    )

    assert upward_imports(graph) == [
        "notifwatch.deliveries.recording (deliveries) imports notifwatch.failures.detection "
        "(failures) (line 3)"
    ]


def test_the_checker_places_modules_in_their_rooms():
    assert room_of("notifwatch.failures.models") == "records"
    assert room_of("notifwatch.ingest.migrations.0001_initial") == "records"
    assert room_of("notifwatch.audit.actions") == "trail"
    assert room_of("notifwatch.audit.exports") == "audit"
    assert room_of("notifwatch.audit.wording") == "vocabulary"
    assert room_of("notifwatch.ingest.source_views") == "site"
    assert room_of("notifwatch.ingest.providers.email") == "ingest"
    assert room_of("notifwatch.demo.management.commands.seed_demo") == "demo"
    assert room_of("notifwatch.reports.weekly") is None
