"""Settings base: environment variables only, validated at start.

Every service subclasses :class:`ServiceSettings` with its own ``env_prefix``. Settings that mean the same
thing in every service (logging, ops server, Kafka connection) keep one unprefixed name everywhere, set
with ``validation_alias``, so operators learn them once.

Usage::

    class GeneratorSettings(ServiceSettings, KafkaSettings):
        model_config = service_config("GENERATOR_")
        rate: float = 100.0

    settings = load_settings(GeneratorSettings)  # exits 2 with one line on a bad value
"""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

EXIT_BAD_SETTINGS = 2

S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


def _split_comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list read from one environment variable as `a,b,c` (not JSON); blanks around items are dropped.
CommaList = Annotated[list[T], NoDecode, BeforeValidator(_split_comma_list)]


def pod_name(explicit: str | None = None) -> str:
    """The name a replica reports itself by: the explicit setting, else the pod name (``HOSTNAME``)."""
    return explicit or os.environ.get("HOSTNAME") or socket.gethostname()


def service_config(env_prefix: str) -> SettingsConfigDict:
    """The settings config every service uses: environment only, no .env files, unknown vars ignored."""
    return SettingsConfigDict(
        env_prefix=env_prefix,
        case_sensitive=False,
        extra="ignore",
        env_nested_delimiter=None,
        validate_default=True,
    )


class ServiceSettings(BaseSettings):
    """Settings shared by every service: logging and the ops HTTP server."""

    model_config = service_config("")

    log_format: Literal["json", "console"] = Field(
        default="json",
        validation_alias="LOG_FORMAT",
        description="`json`: one JSON object per line (for `kubectl logs`); `console`: for humans.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL", description="Lowest level that is logged."
    )
    ops_host: str = Field(
        default="0.0.0.0",
        validation_alias="OPS_HOST",
        description="Address of the ops HTTP server (`/healthz`, `/readyz`, `/metrics`).",
    )
    ops_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias="OPS_PORT",
        description="Port of the ops HTTP server; 0 picks a free port (tests).",
    )


def env_name(settings_cls: type[BaseSettings], field_name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def _describe(settings_cls: type[BaseSettings], error: dict[str, Any]) -> str:
    loc = error.get("loc") or ()
    field_name = str(loc[0]) if loc else ""
    field = settings_cls.model_fields.get(field_name)
    if field is None:  # the error location may already be the alias
        matches = [
            (name, f)
            for name, f in settings_cls.model_fields.items()
            if env_name(settings_cls, name, f).lower() == field_name.lower()
        ]
        name_field = matches[0] if matches else None
    else:
        name_field = (field_name, field)
    variable = env_name(settings_cls, *name_field) if name_field else field_name.upper()
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "missing":
        message = "required but not set"
    given = error.get("input")
    shown = "" if error.get("type") == "missing" or isinstance(given, dict) else f" (got {given!r})"
    if name_field and "secret" in str(name_field[1].annotation).lower():
        shown = ""
    return f"{variable}: {message}{shown}"


def settings_error_line(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line naming every variable that is wrong, suitable for stderr."""
    problems = "; ".join(_describe(settings_cls, e) for e in exc.errors())  # type: ignore[arg-type]
    return f"configuration error: {problems}"


def source_error_line(settings_cls: type[BaseSettings], exc: SettingsError) -> str:
    """One line for a value the settings source could not even decode (e.g. malformed JSON)."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field_name = match.group(1) if match else ""
    field = settings_cls.model_fields.get(field_name)
    variable = env_name(settings_cls, field_name, field) if field else field_name.upper() or "?"
    # The value is not echoed: a malformed JSON property bag may hold credentials.
    return f"configuration error: {variable}: value could not be decoded (expected JSON)"


def load_settings(settings_cls: type[S]) -> S:
    """Load settings from the environment or stop the process with exit code 2 and one stderr line."""
    try:
        return settings_cls()
    except ValidationError as exc:
        _exit(settings_error_line(settings_cls, exc))
    except SettingsError as exc:
        _exit(source_error_line(settings_cls, exc))


def _exit(line: str) -> NoReturn:
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_SETTINGS)
