"""Results of a bench run: measurements, peak memory, targets; rendered as Markdown and JSON."""

from __future__ import annotations

import json
import operator
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Comparison = Literal["<=", ">="]
_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass
class Measurement:
    """One number of one benchmark case (``note`` says how it was taken when that is not obvious)."""

    benchmark: str
    case: str
    metric: str
    value: float
    unit: str
    note: str = ""


@dataclass
class PeakMemory:
    """Peak memory of one service's process tree under one load: RSS summed over the processes (shared
    pages counted in each) and PSS summed (shared pages split among their users), with PSS by process."""

    service: str
    load: str
    peak_rss_mib: float
    peak_pss_mib: float
    processes: int
    breakdown: str = ""


@dataclass
class Target:
    """A goal from the issue: ``measured`` compared with ``limit``; ``None`` when not measured in this run."""

    name: str
    limit: float
    op: Comparison
    unit: str
    measured: float | None = None
    why: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "not measured"
        return "pass" if _OPS[self.op](self.measured, self.limit) else "MISS"


@dataclass
class BenchRun:
    """Everything one ``make bench`` produces."""

    mode: str
    machine: dict[str, Any]
    started_at: str
    load_average_start: list[float]
    measurements: list[Measurement] = field(default_factory=list)
    memory: list[PeakMemory] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    durations_s: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    load_average_end: list[float] = field(default_factory=list)
    finished_at: str = ""

    def add(self, benchmark: str, case: str, metric: str, value: float, unit: str, *, note: str = "") -> None:
        self.measurements.append(Measurement(benchmark, case, metric, round(value, 3), unit, note))

    def value(self, benchmark: str, case: str, metric: str) -> float | None:
        for m in self.measurements:
            if (m.benchmark, m.case, m.metric) == (benchmark, case, metric):
                return m.value
        return None

    def keep_medians(self) -> None:
        """Collapse the rounds of a repeated run into one row per case: each number becomes the median of
        its rounds (the note lists them all), each peak memory the round with the median PSS."""
        groups: dict[tuple[str, str, str], list[Measurement]] = {}
        for m in self.measurements:
            groups.setdefault((m.benchmark, m.case, m.metric), []).append(m)
        self.measurements = [_median_measurement(rounds) for rounds in groups.values()]
        peaks: dict[tuple[str, str], list[PeakMemory]] = {}
        for p in self.memory:
            peaks.setdefault((p.service, p.load), []).append(p)
        self.memory = [_median_peak(rounds) for rounds in peaks.values()]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for target, raw in zip(self.targets, data["targets"], strict=True):
            raw["verdict"] = target.verdict
        return data

    def markdown(self) -> str:
        lines = [
            f"Mode: {self.mode}; {self.machine['cpu_model']}, {self.machine['cores']} cores,"
            f" {self.machine['memory_gib']} GiB; load average at start {self.load_average_start},"
            f" at end {self.load_average_end}.",
            "",
            "| benchmark | case | metric | value | unit | note |",
            "| --- | --- | --- | ---: | --- | --- |",
        ]
        lines += [
            f"| {m.benchmark} | {m.case} | {m.metric} | {_number(m.value)} | {m.unit} | {m.note} |"
            for m in self.measurements
        ]
        if self.memory:
            lines += [
                "",
                "| service | under load | peak RSS sum (MiB) | peak PSS sum (MiB) | procs | PSS by name |",
                "| --- | --- | ---: | ---: | ---: | --- |",
            ]
            lines += [
                f"| {p.service} | {p.load} | {p.peak_rss_mib:.0f} | {p.peak_pss_mib:.0f} | {p.processes}"
                f" | {p.breakdown} |"
                for p in self.memory
            ]
        if self.targets:
            lines += ["", "| target | measured | limit | result |", "| --- | ---: | ---: | --- |"]
            for t in self.targets:
                measured = "-" if t.measured is None else f"{_number(t.measured)} {t.unit}"
                verdict = t.verdict + (f" ({t.why})" if t.why else "")
                lines.append(f"| {t.name} | {measured} | {t.op} {_number(t.limit)} {t.unit} | {verdict} |")
        if self.errors:
            lines += ["", "Benchmarks that failed:"]
            lines += [f"- {name}: {error}" for name, error in self.errors.items()]
        return "\n".join(lines)

    def write(self, directory: Path, stamp: str) -> tuple[Path, Path]:
        """``<stamp>.json`` and ``<stamp>.md``, plus ``latest.json``/``latest.md`` copies."""
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=2)
        table = self.markdown() + "\n"
        json_path = directory / f"{stamp}.json"
        md_path = directory / f"{stamp}.md"
        for path, content in (
            (json_path, text),
            (md_path, table),
            (directory / "latest.json", text),
            (directory / "latest.md", table),
        ):
            path.write_text(content, encoding="utf-8")
        return json_path, md_path


def _median_measurement(rounds: list[Measurement]) -> Measurement:
    first = rounds[0]
    if len(rounds) == 1:
        return first
    values = [m.value for m in rounds]
    listed = " / ".join(_number(v) for v in values)
    note = f"{first.note}; " if first.note else ""
    return Measurement(
        first.benchmark,
        first.case,
        first.metric,
        round(statistics.median(values), 3),
        first.unit,
        f"{note}median of {len(values)}: {listed}",
    )


def _median_peak(rounds: list[PeakMemory]) -> PeakMemory:
    if len(rounds) == 1:
        return rounds[0]
    ordered = sorted(rounds, key=lambda p: p.peak_pss_mib)
    # The upper middle for an even count: a bound is judged against the less flattering round.
    middle = ordered[len(ordered) // 2]
    listed = " / ".join(f"{p.peak_pss_mib:.0f}" for p in rounds)
    return PeakMemory(
        middle.service,
        middle.load,
        middle.peak_rss_mib,
        middle.peak_pss_mib,
        middle.processes,
        f"{middle.breakdown}; PSS of the {len(rounds)} rounds: {listed} MiB",
    )


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
