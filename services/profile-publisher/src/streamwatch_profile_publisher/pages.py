"""The HTML index page: rendered on the server, readable without JavaScript."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from streamwatch_profile_publisher.metadata import ReportRecord
from streamwatch_profile_publisher.retention import RetentionPolicy

_env = Environment(
    loader=PackageLoader("streamwatch_profile_publisher", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def human_bytes(size: int) -> str:
    """``3145728`` → ``3.0 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """``90`` → ``1 min 30 s``; days for the long ones."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


_env.filters.update(bytes=human_bytes, duration=human_duration, utc=_utc)


@dataclass(frozen=True)
class IndexPage:
    """One page of the index: which reports, and where it sits among all of them."""

    reports: list[ReportRecord]
    total: int
    total_bytes: int
    page: int
    limit: int
    retention: RetentionPolicy
    # Per report id, the previous report of the same job and partitions (its drift's reference).
    previous: dict[str, ReportRecord] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))

    def render(self, now: datetime | None = None) -> str:
        """The page as HTML."""
        return _env.get_template("index.html").render(
            view=self, now=now or datetime.now(UTC), retention=_describe(self.retention)
        )


def _describe(policy: RetentionPolicy) -> str:
    limits = []
    if policy.max_reports:
        limits.append(f"{policy.max_reports} reports")
    if policy.max_age_days:
        limits.append(f"{policy.max_age_days:g} days")
    if policy.max_bytes:
        limits.append(human_bytes(policy.max_bytes))
    return " · ".join(limits) if limits else "keep everything"
