"""Field names from the data, made safe for document keys and metric labels.

Record keys are input, not code: a key with dots, spaces or a type that changes between records must
not break the index mapping, and a flood of distinct keys must not explode the mapping or the metric
label set. Names become ``[A-Za-z0-9_]`` with ``__`` for nesting (``context.user.ip`` →
``context__user__ip``), and only the first ``limit`` fields (required ones first) are reported one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str) -> str:
    """``context.user.ip`` → ``context__user__ip``; anything else outside ``[A-Za-z0-9_]`` → ``_``."""
    return "__".join(_UNSAFE.sub("_", part) or "_" for part in name.split(".")) or "_"


def reported_counts(counts: dict[str, int], required: list[str], limit: int) -> tuple[dict[str, int], int]:
    """Per safe field name, the counts to report (at most ``limit`` names, required ones always), and how
    many further fields were left out."""
    ordered = list(dict.fromkeys([*required, *sorted(counts)]))
    result: dict[str, int] = {}
    left_out = 0
    for name in ordered:
        key = safe_name(name)
        if key not in result and len(result) >= limit and name not in required:
            left_out += 1
            continue
        result[key] = result.get(key, 0) + counts.get(name, 0)
    return result, left_out


def reported_scores(scores: dict[str, float], reported: Iterable[str]) -> dict[str, float]:
    """Per safe field name among ``reported`` (the names :func:`reported_counts` kept, so the same cap
    holds), the largest score of the fields that share it."""
    allowed = set(reported)
    result: dict[str, float] = {}
    for name, value in scores.items():
        key = safe_name(name)
        if key in allowed:
            result[key] = max(value, result.get(key, value))
    return result
