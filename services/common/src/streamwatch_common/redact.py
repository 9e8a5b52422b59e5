"""Secret values out of log lines.

``SecretStr`` settings already print as ``**********``. What else can carry a secret: values in the
free-form property bags (``KAFKA_PROPERTIES``, ``*_SPARK_CONF``) whose keys name a password, secret,
token, key or credential, and URLs with a password in them (``https://user:pass@host``). Log formatters
pass every field through :func:`redact`, so no log line can print one, whichever code logged it.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "**********"
# "sasl.password", "ssl.key.password", "spark.authenticate.secret", "sasl.oauthbearer.client.secret",
# "access_token", "fs.s3a.secret.key", "sasl.jaas.config", "credentials" ...
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|key|credential|jaas", re.IGNORECASE)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@"
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """The text with the password of every URL replaced (the user name stays: it helps debugging)."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (nested dicts, lists, strings) safe to log."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):  # lists hold names and values, never a keyed secret
        return [redact(v) for v in value]
    if isinstance(value, str):
        if key is not None and is_secret_key(key) and value not in ("", MASK):
            return MASK
        return redact_text(value)
    return value
