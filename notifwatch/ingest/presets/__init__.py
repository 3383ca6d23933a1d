"""Ready-made field mappings, loadable with `add_source --mapping inhouse_log` (or a file)."""

import json
from pathlib import Path

PRESET_DIR = Path(__file__).parent


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> dict:
    return json.loads((PRESET_DIR / f"{name}.json").read_text())
