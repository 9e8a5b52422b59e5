"""Settings base: environment variables only, validated at start.

Every service subclasses :class:`ServiceSettings` with its own ``env_prefix``. Settings that mean the same
thing in every service (logging, ops server, Kafka connection) keep one unprefixed name everywhere, set
with ``validation_alias``, so operators learn them once.

Usage::

    class GeneratorSettings(ServiceSettings, KafkaSettings):
        model_config = service_config("GENERATOR_")
        rate: float = 100.0

    settings = load_settings(GeneratorSettings)  # exits 2 with one line on a bad or unknown value

A variable that starts with a service's prefix but names none of its settings (``GENERATOR_RATEE``) is
refused like a bad value: a misspelt setting would otherwise leave the default in force without a word.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import sys
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
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
    """The settings config every service uses: environment only, no .env files. pydantic-settings itself
    ignores other variables; :func:`load_settings` refuses unknown ones that carry the prefix."""
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


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """Every environment variable the class reads, upper-cased (each choice of a multi-name alias too)."""
    names = set()
    for field_name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(env_name(settings_cls, field_name, field))
    return names


def unknown_variables(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> list[str]:
    """Variables of ``environ`` that carry the class's prefix but name none of its settings, sorted.

    The prefix is matched without regard to case, as pydantic-settings reads it. A class without a
    prefix (the shared mixins) claims no variable.
    """
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    if not prefix:
        return []
    known = env_names(settings_cls)
    return sorted(name for name in environ if name.upper().startswith(prefix) and name.upper() not in known)


def unknown_variable_problem(settings_cls: type[BaseSettings], name: str) -> str:
    """``NAME: not a setting of <Class>``, with the nearest setting's name when one is close."""
    known = sorted(env_names(settings_cls))
    # Compared without underscores, so a missing or extra separator (WINDOWSECONDS) still finds its match.
    squeezed = {n.replace("_", ""): n for n in known}
    close = difflib.get_close_matches(name.upper().replace("_", ""), list(squeezed), n=1, cutoff=0.8)
    hint = f"; did you mean {squeezed[close[0]]}?" if close else ""
    return f"{name}: not a setting of {settings_cls.__name__}{hint}"


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
    # Inside a structured value (a JSON list of objects): where, e.g. OBSERVER_WATCHED_JOBS[1].source_topic.
    variable += "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "missing":
        message = "required but not set"
    given = error.get("input")
    shown = "" if error.get("type") == "missing" or isinstance(given, dict) else f" (got {given!r})"
    if name_field and "secret" in str(name_field[1].annotation).lower():
        shown = ""
    return f"{variable}: {message}{shown}"


def error_line(problems: list[str]) -> str:
    """The one stderr line of a refused configuration: every problem, each naming its variable."""
    return f"configuration error: {'; '.join(problems)}"


def refuse(
    settings: BaseSettings,
    error: PydanticCustomError,
    field: str,
    value: Any,
    cause: Exception | None = None,
) -> NoReturn:
    """Raise a ValidationError of ``settings`` for ``field`` from a model validator: the service stops
    naming the field's variable (:func:`settings_error_line`)."""
    detail = InitErrorDetails(type=error, loc=(field,), input=value)
    raise ValidationError.from_exception_data(type(settings).__name__, [detail]) from cause


def settings_error_line(
    settings_cls: type[BaseSettings], exc: ValidationError, also: list[str] | None = None
) -> str:
    """One line naming every variable that is wrong (and the problems in ``also``), suitable for stderr."""
    problems = [*(also or []), *(_describe(settings_cls, e) for e in exc.errors())]  # type: ignore[arg-type]
    return error_line(problems)


def source_error_line(
    settings_cls: type[BaseSettings], exc: SettingsError, also: list[str] | None = None
) -> str:
    """One line for a value the settings source could not even decode (e.g. malformed JSON)."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field_name = match.group(1) if match else ""
    field = settings_cls.model_fields.get(field_name)
    variable = env_name(settings_cls, field_name, field) if field else field_name.upper() or "?"
    # The value is not echoed: a malformed JSON property bag may hold credentials.
    return error_line([*(also or []), f"{variable}: value could not be decoded (expected JSON)"])


def load_settings(settings_cls: type[S]) -> S:
    """Load settings from the environment or stop the process with exit code 2 and one stderr line, which
    names every unknown prefixed variable and every bad value."""
    unknown = [
        unknown_variable_problem(settings_cls, name) for name in unknown_variables(settings_cls, os.environ)
    ]
    try:
        settings = settings_cls()
    except ValidationError as exc:
        _exit(settings_error_line(settings_cls, exc, unknown))
    except SettingsError as exc:
        _exit(source_error_line(settings_cls, exc, unknown))
    if unknown:
        _exit(error_line(unknown))
    return settings


def _exit(line: str) -> NoReturn:
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_SETTINGS)
