"""Which reports retention removes: a pure decision, applied by the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from streamwatch_profile_publisher.metadata import ReportRecord

RemovalReason = Literal["age", "count", "bytes"]


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits on what the store keeps; 0 means no limit for each."""

    max_reports: int = 0
    max_age_days: float = 0
    max_bytes: int = 0

    @property
    def unlimited(self) -> bool:
        return not (self.max_reports or self.max_age_days or self.max_bytes)

    def removals(
        self, reports: Sequence[ReportRecord], now: datetime
    ) -> list[tuple[ReportRecord, RemovalReason]]:
        """The reports to remove, oldest first, each with the limit that removes it.

        The count and byte limits never remove the newest report: an upload that was just answered
        with its URL stays reachable even when it alone exceeds ``max_bytes``.
        """
        kept = sorted(reports, key=lambda r: (r.uploaded_at, r.id))
        removed: list[tuple[ReportRecord, RemovalReason]] = []
        if self.max_age_days:
            cutoff = now - timedelta(days=self.max_age_days)
            while kept and kept[0].uploaded_at < cutoff:
                removed.append((kept.pop(0), "age"))
        if self.max_reports:
            while len(kept) > self.max_reports:
                removed.append((kept.pop(0), "count"))
        if self.max_bytes:
            total = sum(r.bytes for r in kept)
            while len(kept) > 1 and total > self.max_bytes:
                oldest = kept.pop(0)
                total -= oldest.bytes
                removed.append((oldest, "bytes"))
        return removed
