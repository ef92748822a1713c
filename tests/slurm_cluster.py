"""A real single-node Slurm cluster for the study runner's tests: munge, slurmctld and slurmd from Debian's
packages, with their own config, key, socket, ports and state in a temp folder (../shared/SLURM_LOCAL.md).

`start_cluster(folder)` installs the packages when they are missing and this process is root (apt-get), starts
the three daemons with pid files and waits for the node to be idle; `Cluster.stop()` stops them by pid. Without
root or the packages the caller is told why (`ClusterUnavailable`), so tests can skip with that reason on a
developer's machine; in CI (`CI=true`) they must not.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")


class ClusterUnavailable(Exception):
    """No Slurm can be started here; the message says why."""


@dataclass
class Cluster:
    """A running cluster: its config (point SLURM_CONF at it) and the pid files of its daemons."""

    folder: Path
    conf: Path
    pid_files: tuple[Path, ...]

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(list(args), capture_output=True, text=True, env={**os.environ, **self.env}, check=check)

    def stop(self) -> None:
        for pid_file in reversed(self.pid_files):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _binaries() -> dict[str, str | None]:
    paths = {name: shutil.which(name) for name in (*DAEMONS, "sbatch")}
    for name in DAEMONS:  # /usr/sbin may be off a non-root PATH
        if paths[name] is None and Path(f"/usr/sbin/{name}").exists():
            paths[name] = f"/usr/sbin/{name}"
    return paths


def ensure_packages() -> dict[str, str]:
    """The daemons' and clients' paths, installing Debian's packages first when they are missing and we are root."""
    paths = _binaries()
    if all(paths.values()):
        return {k: v for k, v in paths.items() if v}
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurm-wlm and munge are not installed and this is not root to install them")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("slurm-wlm and munge are not installed and there is no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}")
    paths = _binaries()
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} still missing after installing {', '.join(PACKAGES)}")
    return {k: v for k, v in paths.items() if v}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def start_cluster(folder: Path, timeout_s: float = 60.0) -> Cluster:
    """Start munge, slurmctld and slurmd for a one-node cluster whose files all live in `folder`."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting slurmd needs root (it runs jobs as their users)")
    paths = ensure_packages()
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(exist_ok=True)
    key = folder / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    try:
        munge_user = pwd.getpwnam("munge")
        for path in (folder / "munge", key):
            os.chown(path, munge_user.pw_uid, munge_user.pw_gid)
    except KeyError:
        pass
    key.chmod(0o400)
    munge_socket = folder / "munge" / "munge.socket"
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=studytest",
                f"SlurmctldHost={host}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldLogFile={folder / 'ctld.log'}",
                f"SlurmdLogFile={folder / 'd.log'}",
                f"SlurmctldPidFile={folder / 'ctld.pid'}",
                f"SlurmdPidFile={folder / 'd.pid'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "ReturnToService=2",
                "MpiDefault=none",
                "KillWait=20",
                "MinJobAge=3600",  # finished jobs stay visible to scontrol for the whole test session
                # schedule every 2 s, not every 60/30 s: a released requeued job starts at once (test time)
                "SchedulerParameters=sched_interval=2,bf_interval=2",
                f"NodeName={host} CPUs={os.cpu_count() or 1} RealMemory={int(_memory_mib() * 0.9)} State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munge_pid = folder / "munge" / "munged.pid"
    started = [
        [
            paths["munged"],
            "--force",
            f"--key-file={key}",
            f"--socket={munge_socket}",
            f"--pid-file={munge_pid}",
            f"--log-file={folder / 'munge' / 'munged.log'}",
            f"--seed-file={folder / 'munge' / 'munged.seed'}",
        ],
        [paths["slurmctld"]],
        [paths["slurmd"]],
    ]
    cluster = Cluster(folder, conf, (munge_pid, folder / "ctld.pid", folder / "d.pid"))
    try:
        for command in started:
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise ClusterUnavailable(f"{Path(command[0]).name} did not start: {result.stderr.strip()[-300:]}")
            if command[0] == paths["munged"]:
                _wait(lambda: munge_socket.exists(), timeout_s, "munged's socket")
        _wait(lambda: _node_idle(cluster), timeout_s, "the node to be idle (sinfo)")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _node_idle(cluster: Cluster) -> bool:
    result = cluster.run("sinfo", "-h", "-o", "%T", check=False)
    return result.returncode == 0 and result.stdout.strip().rstrip("*") == "idle"


def _wait(ready, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise ClusterUnavailable(f"timed out waiting for {what}")


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 2.0):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout_s` passes (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
