import ast
from pathlib import Path

import notifwatch

PRODUCTION_APPS = ("accounts", "audit", "deliveries", "failures", "ingest", "worker")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def test_it_is_imported_by_no_production_app():
    root = Path(notifwatch.__file__).parent
    offenders = [
        f"{path.relative_to(root)} imports {module}"
        for app in PRODUCTION_APPS
        for path in sorted((root / app).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module == "notifwatch.demo" or module.startswith("notifwatch.demo.")
    ]
    assert offenders == []


def test_it_sees_an_import_of_the_demo(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from notifwatch import demo\n")
    assert "notifwatch.demo" in imported_modules(module)
