"""The Spark drivers' class-data-sharing archive for this checkout's Java and Spark jars, made once, cached.

The test suite starts a Spark driver well over a hundred times; mapping Spark's classes from an archive
(:mod:`streamwatch_common.spark.class_archive`) instead of loading them from the jars takes seconds off
each start. The archive is made by the jobs' own ``streamwatch-spark-class-archive`` command and kept in
the dependency cache under a key of everything it depends on (the Java build, the Spark jars, the driver's
Java options), so a new JDK or Spark gets a new archive rather than a mismatch. The jobs are given it
through their ``<prefix>SPARK_CLASS_ARCHIVE`` setting (:func:`archive_env`), as a user would.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from streamwatch_common.settings import env_name
from streamwatch_common.spark import class_archive
from streamwatch_common.spark.job_settings import SparkJobSettings
from streamwatch_dev.process import deps_cache
from streamwatch_dev.services import VENV_BIN
from streamwatch_passthrough.settings import PassthroughSettings
from streamwatch_visits_writer.settings import VisitsWriterSettings

#: The Spark jobs whose drivers take the archive.
JOBS: tuple[type[SparkJobSettings], ...] = (PassthroughSettings, VisitsWriterSettings)


def _key() -> str:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True).stderr
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.origin is not None, "pyspark is not installed"
    jars = Path(spec.origin).parent / "jars"
    listing = sorted(f"{jar.name}:{jar.stat().st_size}" for jar in jars.glob("*.jar"))
    workload = Path(class_archive.__file__).read_text()
    parts = [
        java,
        importlib.metadata.version("pyspark"),
        *listing,
        class_archive.default_java_options(),
        workload,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cached_archive(say: Callable[[str], None] = print) -> Path:
    """The archive of this checkout's Java and Spark jars, made first if the cache has none."""
    directory = deps_cache() / "spark-class-archive"
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"spark-{_key()}.jsa"
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run making the same archive: wait for it
        if archive.is_file():
            return archive
        say(f"making the Spark drivers' class archive {archive} (once per Java and Spark build) ...")
        started = time.monotonic()
        log = directory / "make.log"
        with log.open("w") as out:
            made = subprocess.run(
                [str(VENV_BIN / "streamwatch-spark-class-archive"), str(archive)],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if made.returncode != 0:
            raise RuntimeError(f"streamwatch-spark-class-archive failed; its output is in {log}")
        say(f"class archive made in {time.monotonic() - started:.0f}s")
        for old in directory.glob("spark-*.jsa"):
            if old != archive:
                old.unlink()  # archives of an earlier Java or Spark would only fill the disk
    return archive


def archive_env(archive: Path) -> dict[str, str]:
    """The setting that gives each Spark job the archive."""
    field = "spark_class_archive"
    return {env_name(job, field, job.model_fields[field]): str(archive) for job in JOBS}
