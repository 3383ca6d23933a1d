"""Turning received bytes into records (dicts), strictly: no NaN, UTF-8 with or without BOM.

And back into text for a page (`pretty_body`), leniently: a page shows whatever arrived.
"""

import hashlib
import json
import math
from typing import Any

BOM = b"\xef\xbb\xbf"
# A raw body can be megabytes; a page shows the start of it.
MAX_SHOWN_BODY = 256 * 1024


class BodyProblem(ValueError):
    """The bytes are not records at all; `index` is the item (or line) at fault when known."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.index = index


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def finite_float(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        # 1e400 would be read as infinity, which no JSON column can store.
        raise ValueError(f"the number {literal[:40]} is too large")
    return number


def strict_loads(text: str) -> Any:
    """JSON without NaN, Infinity or numbers too large for a float; depth bounded by Python's
    recursion limit, reported as a readable ValueError instead of a crash."""
    try:
        return json.loads(text, parse_constant=reject_constant, parse_float=finite_float)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes) -> str:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyProblem(f"not UTF-8 text (byte {exc.start})") from exc


def parse_json_line(line: bytes) -> dict:
    """One JSON-lines record; raise BodyProblem with a readable reason."""
    text = decode(line).strip()
    try:
        record = strict_loads(text)
    except ValueError as exc:
        raise BodyProblem(f"not valid JSON: {describe_json_error(exc)}") from exc
    if not isinstance(record, dict):
        raise BodyProblem(f"expected a JSON object, got {kind_of(record)}")
    return record


def records_from_body(body: bytes) -> list[Any]:
    """A JSON object, a JSON array, or JSON lines."""
    text = decode(body).strip()
    if not text:
        raise BodyProblem("the body is empty")
    try:
        parsed = strict_loads(text)
    except ValueError as first_error:
        if text.startswith("{") and "\n" in text:
            return json_lines(text)
        raise BodyProblem(f"not valid JSON: {describe_json_error(first_error)}") from first_error
    if isinstance(parsed, list):
        return parsed
    return [parsed]


def json_lines(text: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            records.append(strict_loads(line))
        except ValueError as exc:
            raise BodyProblem(
                f"line {number + 1} is not valid JSON: {describe_json_error(exc)}", len(records)
            ) from exc
    return records


def describe_json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def kind_of(value: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def pretty_body(body: bytes) -> tuple[str, str]:
    """The body as text for a page: indented when it is JSON (or JSON lines); never parsed as HTML."""
    text = body[:MAX_SHOWN_BODY].decode("utf-8", errors="replace").removeprefix("\ufeff")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False), "JSON"
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            records = [json.loads(line) for line in lines]
        except ValueError:
            return text, "text"
        return "\n\n".join(json.dumps(r, indent=2, ensure_ascii=False) for r in records), (
            "JSON lines"
        )
    return text, "text"
