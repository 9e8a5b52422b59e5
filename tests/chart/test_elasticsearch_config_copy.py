"""The Elasticsearch pod's `copy-config` init container, run as the chart renders it: as the pod's uid
(1000) on a target directory shaped like a Kubernetes emptyDir, whose root belongs to another uid (root,
group fsGroup, mode 0777). On the first real cluster `cp -a` failed there ("preserving times for
'/config/.': Operation not permitted") and the pod never left Init:CrashLoopBackOff."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import containers

ES_HOME = "/usr/share/elasticsearch"
CONFIG_MOUNT = "/config"


def _init_command() -> tuple[list[str], int]:
    """The copy-config init container's command and the uid its pod runs as."""
    manifests = render(show_only="templates/elasticsearch/statefulset.yaml")
    (c,) = [c for c in containers(manifests) if c.init and c.spec["name"] == "copy-config"]
    (mount,) = c.spec["volumeMounts"]
    assert mount == {"name": "config", "mountPath": CONFIG_MOUNT}
    return list(c.spec["command"]), int(c.pod_spec["securityContext"]["runAsUser"])


def _relocated(command: list[str], source: Path, target: Path) -> list[str]:
    """The command with the image's config directory and the mount path swapped for local directories
    (each must occur exactly once, so nothing else of the command changes unseen)."""
    shell, flag, script = command
    assert (shell, flag) == ("sh", "-c"), command
    image_config = f"{ES_HOME}/config/"
    assert script.count(image_config) == 1 and script.count(f" {CONFIG_MOUNT}/") == 1, script
    script = script.replace(image_config, f"{source}/").replace(f" {CONFIG_MOUNT}/", f" {target}/")
    return [shell, flag, script]


@pytest.fixture
def work_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: that is private to root (0700), and the command runs as uid 1000.
    path = Path(tempfile.mkdtemp(prefix="es-config-copy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _image_like_config(root: Path, uid: int) -> Path:
    """A config directory as the Elasticsearch image ships it: owned by uid 1000, group root."""
    source = root / "image-config"
    (source / "jvm.options.d").mkdir(parents=True)
    (source / "elasticsearch.yml").write_text("cluster.name: docker-cluster\n")
    (source / "jvm.options").write_text("-Xss1m\n")
    (source / "jvm.options.d" / "heap.options").write_text("-Xms512m\n")
    for path in [source, *source.rglob("*")]:
        os.chown(path, uid, 0)
    return source


def _empty_dir_like(root: Path, fs_group: int) -> Path:
    """A directory like a fresh emptyDir with an fsGroup: root's, group fsGroup, setgid, mode 2777."""
    target = root / "emptydir"
    target.mkdir()
    os.chown(target, 0, fs_group)
    target.chmod(0o2777)
    return target


def _as_uid(uid: int, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``uid``/``uid`` without supplementary groups and without any capability."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another uid and to own the target as root")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop to the pod's uid"
    return subprocess.run(
        [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_rendered_init_command_copies_the_config_into_an_empty_dir_it_does_not_own(
    work_dir: Path,
) -> None:
    command, uid = _init_command()
    assert uid == 1000
    source = _image_like_config(work_dir, uid)
    target = _empty_dir_like(work_dir, fs_group=uid)
    result = _as_uid(uid, _relocated(command, source, target))
    assert result.returncode == 0, result.stdout + result.stderr
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert copied == ["elasticsearch.yml", "jvm.options", "jvm.options.d", "jvm.options.d/heap.options"]
    assert (target / "jvm.options.d" / "heap.options").read_text() == "-Xms512m\n"
    # Elasticsearch writes its keystore here at start: the copies are the pod user's.
    assert {p.stat().st_uid for p in target.rglob("*")} == {uid}
    assert target.stat().st_uid == 0


def test_the_emptydir_shape_is_what_made_cp_a_fail(work_dir: Path) -> None:
    """Guard against a vacuous pass: the same setup refuses `cp -a` as it did on the cluster."""
    source = _image_like_config(work_dir, 1000)
    target = _empty_dir_like(work_dir, fs_group=1000)
    result = _as_uid(1000, ["sh", "-c", f"cp -a {source}/. {target}/"])
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr, result.stderr
