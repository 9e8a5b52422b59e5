"""Burrow's partition evaluation, applied to the passthrough's Spark checkpoint instead of a consumer group.

Burrow keeps a window of a consumer's offset commits per partition and judges it in this order: no lag
now is OK; STOP (no commit for longer than the window spans, unless the consumer was caught up moments
ago); any zero lag in the window is OK (its rule 1); then, worst first, REWIND (an offset went
backwards), STALL (commits that do not move while there is lag), WARN (lag never decreases).
A Spark query does not commit on a clock: it writes ``commits/N`` only when a batch ran, so the window
here holds the observer's own lag measurements (observation time, batch id, commit time = mtime of
``commits/N``, committed offset, end offset), one per lag interval. The rules, in Burrow's order except
where said:

- ``rewind`` first, whatever the lag: the committed offset went down between two samples (a checkpoint
  restored from an older copy, or reset). Burrow drops a rewind once the consumer is back where it was;
  here it stays for a window, because a passthrough that replays has written those records to its output
  a second time, a fact a fast replay must not hide.
- ``ok`` when the newest sample has no lag;
- ``stop``: the newest commit is older than the window while the end offset grew within it, and no sample
  of the last half window had zero lag (Burrow's "recently caught up" grace, which it takes from the
  broker's recent offsets: a job idle with nothing to read has an old commit, and needs one trigger
  after data arrives before its silence means anything);
- ``ok`` when any sample of the window has no lag (Burrow's rule 1);
- ``stall``: the committed offset did not move over a complete window (the job is stuck on a backlog,
  or commits batches that read nothing);
- ``warn``: over a complete window, the lag seen at each new commit (its first sample) never decreased
  and grew from the first to the last of at least ``_MIN_WARN_COMMITS`` commits: the job falls behind.

A window is complete once the partition has been observed for the whole window length; before that only
``rewind`` and ``stop`` can be judged (both rest on facts, not on the absence of movement). A replica
that gains a partition starts an empty window for it; one that measured nothing of a partition for a
whole window (another replica owned it) starts that window afresh.

Usage::

    evaluator = LagEvaluator(window_seconds=300)
    evaluator.observe(0, Sample(observed_at=now, batch_id=7, commit_time=mtime, committed_offset=120,
                                end_offset=135))  # "ok" | "warn" | "stall" | "stop" | "rewind"
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

Evaluation = Literal["ok", "warn", "stall", "stop", "rewind"]
EVALUATIONS: tuple[Evaluation, ...] = ("ok", "warn", "stall", "stop", "rewind")

# Two commits always form a line; three that never let the lag drop are a trend, not chance.
_MIN_WARN_COMMITS = 3
# How recently a job caught up keeps it from reading as stopped: the part of the window in which it must
# commit after data arrives. Half the window leaves room for a trigger of up to half the window.
_RECENT_FRACTION = 0.5


@dataclass(frozen=True)
class Sample:
    """One lag measurement of one partition with the checkpoint batch it saw."""

    observed_at: float
    batch_id: int
    commit_time: float | None
    committed_offset: int
    end_offset: int

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.committed_offset)


def evaluate(samples: Sequence[Sample], now: float, window_seconds: float, complete: bool) -> Evaluation:
    """The evaluation of one partition's window (oldest sample first); pure, for tests and the probe."""
    if not samples:
        return "ok"
    if any(b.committed_offset < a.committed_offset for a, b in pairwise(samples)):
        return "rewind"
    newest = samples[-1]
    if newest.lag == 0:
        return "ok"
    if _stopped(samples, now, window_seconds):
        return "stop"
    if any(s.lag == 0 for s in samples):
        return "ok"
    if not complete or len(samples) < 2:
        return "ok"
    if all(s.committed_offset == newest.committed_offset for s in samples):
        return "stall"
    at_commit = _lag_at_each_commit(samples)
    if (
        len(at_commit) >= _MIN_WARN_COMMITS
        and all(b >= a for a, b in pairwise(at_commit))
        and at_commit[-1] > at_commit[0]
    ):
        return "warn"
    return "ok"


def _stopped(samples: Sequence[Sample], now: float, window_seconds: float) -> bool:
    newest = samples[-1]
    if newest.commit_time is None or now - newest.commit_time <= window_seconds:
        return False
    if newest.end_offset <= samples[0].end_offset:  # nothing arrived: an idle job has nothing to commit
        return False
    recent = now - window_seconds * _RECENT_FRACTION
    return not any(s.lag == 0 for s in samples if s.observed_at >= recent)


def _lag_at_each_commit(samples: Sequence[Sample]) -> list[int]:
    # The first sample after a commit is the nearest to the commit itself; later ones add the records
    # that arrived meanwhile and would make a job that catches up each batch look like it falls behind.
    lags: list[int] = []
    seen: int | None = None
    for sample in samples:
        if sample.batch_id != seen:
            lags.append(sample.lag)
            seen = sample.batch_id
    return lags


class LagEvaluator:
    """Sliding windows of samples per partition, and their evaluation."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._samples: dict[int, deque[Sample]] = {}
        self._first_seen: dict[int, float] = {}

    def observe(self, partition: int, sample: Sample) -> Evaluation:
        """Add a sample (its ``observed_at`` is now) and judge the partition's window."""
        now = sample.observed_at
        window = self._samples.setdefault(partition, deque())
        while window and window[0].observed_at < now - self.window_seconds:
            window.popleft()
        if not window:  # first sample, or none for a whole window: completeness counts from now
            self._first_seen[partition] = now
        window.append(sample)
        complete = self._first_seen[partition] <= now - self.window_seconds
        return evaluate(window, now, self.window_seconds, complete)
