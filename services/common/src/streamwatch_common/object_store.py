"""Where a Spark checkpoint lives, read through one filesystem layer (``pyarrow.fs``): a local directory
(a plain path or ``file://``) or S3-compatible object storage (``s3://bucket/prefix``).

The S3 connection has one unprefixed name in every service (``S3_ENDPOINT_URL``, ``S3_REGION``), and its
credentials come from a Secret (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``: the names Hadoop's S3A
and the AWS SDKs read as well); they are never logged. Each request gives up after a bounded time and is
not retried here: the caller decides when to try again, so an object store that is away never stalls it.

Usage::

    store = CheckpointStore.open("s3://checkpoints/passthrough", settings)
    store.batch_ids("commits")        # [12, 11, ...], newest first; [] when there is none
    store.read_text("offsets/12")     # raises OSError
    store.mtime("commits/12")         # epoch seconds
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings

from streamwatch_common.errors import CheckpointError
from streamwatch_common.settings import service_config

# The schemes of a checkpoint on object storage, and all those a checkpoint location may have; anything
# else is refused at start.
OBJECT_STORE_SCHEMES = ("s3", "s3a")
SCHEMES = ("", "file", *OBJECT_STORE_SCHEMES)
# Per request: an object store that is away answers nothing, and the caller's loop must go on.
_CONNECT_TIMEOUT_SECONDS = 3.0
_REQUEST_TIMEOUT_SECONDS = 10.0


def check_location(location: str) -> str:
    """``location`` if its scheme is one :data:`SCHEMES` names (ValueError otherwise, naming it)."""
    parts = urlsplit(location)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"unknown scheme {parts.scheme!r} in {location!r}: use a path, file:///path or s3://bucket/prefix"
        )
    if parts.scheme in OBJECT_STORE_SCHEMES and not parts.netloc:
        raise ValueError(f"{location!r} names no bucket: use s3://bucket/prefix")
    return location


def on_object_store(location: str) -> bool:
    """Whether ``location`` is on object storage (not a local directory)."""
    return urlsplit(location).scheme in OBJECT_STORE_SCHEMES


# A settings field holding a location (a checkpoint, a Delta table): checked at start, so a bad one names
# its variable.
StoreLocation = Annotated[str, AfterValidator(check_location)]


class ObjectStoreSettings(BaseSettings):
    """S3-compatible object storage; mix into a service's settings class."""

    model_config = service_config("")

    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias="S3_ENDPOINT_URL",
        description="Endpoint of an S3-compatible store, e.g. `http://seaweedfs:8333` (`http://` or "
        "`https://`); unset: AWS S3 itself.",
    )
    s3_region: str = Field(
        default="us-east-1", min_length=1, validation_alias="S3_REGION", description="S3 region."
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias="AWS_ACCESS_KEY_ID",
        description="S3 access key id (from a Secret); unset: the AWS SDK's own credential chain.",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias="AWS_SECRET_ACCESS_KEY",
        description="S3 secret access key (from a Secret), with `AWS_ACCESS_KEY_ID`.",
    )

    def storage_options(self, location: str) -> dict[str, str] | None:
        """The connection as the Rust ``object_store`` crate takes it (delta-rs's ``storage_options``) for
        ``location``; None for a local one. Holds the secret: never log it."""
        if not on_object_store(location):
            return None
        options = {
            "AWS_REGION": self.s3_region,
            "AWS_CONNECT_TIMEOUT": f"{_CONNECT_TIMEOUT_SECONDS:g}s",
            # A Delta commit or a data file is one request; a slow store must not be cut off mid-file.
            "AWS_TIMEOUT": "120s",
        }
        if self.s3_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            options["AWS_ALLOW_HTTP"] = str(self.s3_endpoint_url.startswith("http://")).lower()
        if self.aws_access_key_id and self.aws_secret_access_key:
            options["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id.get_secret_value()
            options["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key.get_secret_value()
        return options


@dataclass(frozen=True)
class CheckpointStore:
    """A checkpoint directory on some filesystem: names under it are relative (``commits/12``)."""

    location: str
    filesystem: object  # pyarrow.fs.FileSystem (pyarrow has no type information)
    root: str
    # On object storage: the bucket, whose absence is an error, not a job that has not started.
    bucket: str | None = None

    @classmethod
    def open(cls, location: str, settings: ObjectStoreSettings) -> CheckpointStore:
        """The store of ``location`` (checked with :func:`check_location`)."""
        from pyarrow import fs

        parts = urlsplit(check_location(location))
        if not on_object_store(location):
            return cls.local(parts.path)
        endpoint = urlsplit(settings.s3_endpoint_url) if settings.s3_endpoint_url else None
        key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
        filesystem = fs.S3FileSystem(
            access_key=key.get_secret_value() if key else None,
            secret_key=secret.get_secret_value() if secret else None,
            region=settings.s3_region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            request_timeout=_REQUEST_TIMEOUT_SECONDS,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        return cls(location, filesystem, f"{parts.netloc}{parts.path}".rstrip("/"), bucket=parts.netloc)

    @classmethod
    def local(cls, directory: str | os.PathLike[str]) -> CheckpointStore:
        """The store of a local directory."""
        from pyarrow import fs

        path = os.fspath(directory)
        # pyarrow's local filesystem takes absolute paths only.
        return cls(path, fs.LocalFileSystem(), os.path.abspath(path))

    @classmethod
    def of(cls, where: CheckpointStore | str | os.PathLike[str]) -> CheckpointStore:
        """``where`` itself, or the local directory it names."""
        return where if isinstance(where, CheckpointStore) else cls.local(where)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def batch_ids(self, directory: str) -> list[int]:
        """The batch ids under ``directory`` (files named by a bare integer), newest first; [] when the
        directory does not exist. Raises :class:`CheckpointError` when it cannot be listed."""
        from pyarrow import fs

        selector = fs.FileSelector(self._path(directory), allow_not_found=True)
        try:
            infos = self.filesystem.get_file_info(selector)  # type: ignore[attr-defined]
            if not infos and self.bucket:
                (bucket,) = self.filesystem.get_file_info([self.bucket])  # type: ignore[attr-defined]
                if bucket.type == fs.FileType.NotFound:
                    raise CheckpointError(
                        f"cannot list {self.location}: bucket {self.bucket!r} does not exist"
                    )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot list {self.location}/{directory}: {exc}") from exc
        # Spark writes through temporary files (".<n>.<uuid>.tmp", ".crc"): only bare integers count.
        return sorted((int(i.base_name) for i in infos if i.base_name.isdigit()), reverse=True)

    def read_text(self, name: str) -> str:
        """The UTF-8 text of the file ``name``; OSError (or UnicodeDecodeError) when it cannot be read."""
        with self.filesystem.open_input_stream(self._path(name)) as stream:  # type: ignore[attr-defined]
            data: bytes = stream.read()
        return data.decode("utf-8")

    def mtime(self, name: str) -> float:
        """When ``name`` was last written (epoch seconds); OSError when it is gone."""
        (info,) = self.filesystem.get_file_info([self._path(name)])  # type: ignore[attr-defined]
        if info.mtime is None:
            raise FileNotFoundError(f"{self.location}/{name}")
        return float(info.mtime.timestamp())
