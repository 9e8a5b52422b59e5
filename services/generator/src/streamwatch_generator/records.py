"""Synthetic visit records, drawn from one seeded random generator so a seed reproduces them exactly.

A record looks like the visits of the seed pipeline::

    {"visit_id": "...", "event_time": "2026-01-01T00:00:00.000+00:00", "user_id": "user_17",
     "keep_private": false, "page": "home.html",
     "context": {"referral": "Google Search", "ad_id": null,
                 "user": {"ip": "10.1.2.3", "login": "login_17", "connected_since": "..."},
                 "technical": {"browser": "Firefox", "browser_version": "131.0", "network_type": "Wi-Fi",
                               "device_type": "pc", "device_version": "Windows 11"}}}
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streamwatch_generator.settings import RequiredField

PAGES = (
    "home.html",
    "index.html",
    "contact.html",
    "about.html",
    "categories.html",
    *(f"article_{n}.html" for n in range(1, 21)),
)
REFERRALS = ("Google Search", "Twitter", "LinkedIn", "Facebook", "Medium", "Bing", None)
BROWSERS = {"Chrome": 130, "Firefox": 131, "Safari": 18, "Edge": 129}
NETWORK_TYPES = ("Wi-Fi", "LAN", "5G", "4G")
DEVICES = {
    "pc": ("Windows 10", "Windows 11", "macOS 14", "Ubuntu 24.04"),
    "smartphone": ("Android 14", "Android 15", "iOS 17", "iOS 18"),
    "tablet": ("iPadOS 17", "iPadOS 18", "Android 14"),
}
USERS = 1000
# Frequency tables used from the shift record on (GENERATOR_SHIFT_AFTER_RECORDS): far enough from the
# uniform defaults that the observer's drift score crosses its alert threshold within one window.
SHIFTED_PAGE_WEIGHTS = tuple(
    200 if page == "contact.html" else 1 if page.startswith("article_") else 5 for page in PAGES
)
SHIFTED_BROWSER_WEIGHTS = {"Chrome": 2, "Firefox": 2, "Safari": 94, "Edge": 2}
# Built once: json.dumps with non-default arguments would build a new encoder for every record.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class _User:
    user_id: str
    ip: str
    login: str
    connected_since_s: int
    technical: dict[str, str]


def encode(record: dict[str, Any]) -> bytes:
    """The wire form: compact JSON with keys in a fixed order, so equal records are equal bytes."""
    return _ENCODER.encode(record).encode()


class VisitFactory:
    """Makes visit dicts and keys; all randomness comes from the ``rng`` it is given.

    Users (ip, login, device) are drawn once, so a user's visits look like one person's.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._users = [self._user(n) for n in range(USERS)]

    def _user(self, n: int) -> _User:
        rng = self._rng
        browser = rng.choice(list(BROWSERS))
        device_type = rng.choice(list(DEVICES))
        return _User(
            user_id=f"user_{n}",
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            login=f"login_{n}",
            connected_since_s=rng.randrange(60, 30 * 86400),
            technical={
                "browser": browser,
                "browser_version": f"{BROWSERS[browser] - rng.randrange(3)}.0",
                "network_type": rng.choice(NETWORK_TYPES),
                "device_type": device_type,
                "device_version": rng.choice(DEVICES[device_type]),
            },
        )

    def visit_id(self) -> str:
        """A fresh random id (128 bits, UUID-shaped)."""
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def visit(self, visit_id: str, event_time: datetime, shift: str | None = None) -> dict[str, Any]:
        """One complete, valid visit; ``shift`` ("page" or "browser") draws that field from the shifted
        frequency table instead (the unshifted records draw exactly what they drew before)."""
        rng = self._rng
        user = self._users[rng.randrange(USERS)]
        has_ad = rng.random() < 0.3
        connected = event_time - timedelta(seconds=user.connected_since_s)
        technical = dict(user.technical)
        if shift == "browser":
            browser = rng.choices(
                list(SHIFTED_BROWSER_WEIGHTS), weights=list(SHIFTED_BROWSER_WEIGHTS.values())
            )[0]
            technical.update(browser=browser, browser_version=f"{BROWSERS[browser]}.0")
        page = rng.choices(PAGES, weights=SHIFTED_PAGE_WEIGHTS)[0] if shift == "page" else rng.choice(PAGES)
        return {
            "visit_id": visit_id,
            "event_time": _iso(event_time),
            "user_id": user.user_id,
            "keep_private": rng.random() < 0.1,
            "page": page,
            "context": {
                "referral": rng.choice(REFERRALS),
                "ad_id": f"ad_{rng.randrange(100)}" if has_ad else None,
                "user": {"ip": user.ip, "login": user.login, "connected_since": _iso(connected)},
                "technical": technical,
            },
        }

    def with_missing_fields(
        self, record: dict[str, Any], allowed: list[RequiredField]
    ) -> tuple[dict[str, Any], list[RequiredField]]:
        """The record with a random non-empty subset of ``allowed`` set to null; also returns the subset."""
        count = self._rng.randint(1, len(allowed))
        nulled = sorted(self._rng.sample(allowed, count))
        for name in nulled:
            record[name] = None
        return record, nulled

    def unparseable(self, record: dict[str, Any]) -> bytes:
        """A record cut short: a prefix of a JSON object never closes, so it is never valid JSON."""
        data = encode(record)
        return data[: self._rng.randrange(1, len(data) - 1)]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
