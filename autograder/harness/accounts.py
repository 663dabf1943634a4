"""Runs in: the grader. The sandbox accounts and the processes they run.

Each concurrent grading gets an unprivileged account of its own
(:func:`ensure_user`); when a submission is done, :func:`kill_everything`
kills every process below its zygote and every process of its account.
What the sandbox itself does with the account (the privilege drop) is in
``jail``.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account student code runs as.

    Attributes:
        name: account name.
        uid, gid: its numeric ids.
    """

    name: str
    uid: int
    gid: int


_held: dict[tuple[str, int], tuple[SandboxUser, int]] = {}
_held_lock = threading.Lock()
LOCK_DIR = "/tmp/sodl-sandbox-accounts"
MAX_ACCOUNTS = 64


def ensure_user(base: str, slot: int = 0) -> SandboxUser | None:
    """The sandbox account for this process's grading slot ``slot``.

    Every concurrent grading, in this process or any other on the machine,
    needs an account of its own: clean-up kills every process of the
    account. Accounts ``{base}0``, ``{base}1``... are claimed with a lock
    file held for the life of this process; one is created when missing.

    Returns None when not running as root: then student code runs as the
    grader's own user (the sandbox logs what protection is missing).
    """
    if os.geteuid() != 0:
        return None
    with _held_lock:
        if (base, slot) in _held:
            return _held[(base, slot)][0]
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        taken = {u.name for u, _ in _held.values()}
        for i in range(MAX_ACCOUNTS):
            name = f"{base}{i}"
            if name in taken:
                continue
            fd = os.open(os.path.join(LOCK_DIR, f"{name}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            user = _account(name)
            _held[(base, slot)] = (user, fd)
            return user
    raise RuntimeError(f"all {MAX_ACCOUNTS} sandbox accounts {base}N are in use by other graders")


def _account(name: str) -> SandboxUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=False, capture_output=True,
        )
        entry = pwd.getpwnam(name)  # (another grader may have created it meanwhile)
    return SandboxUser(name, entry.pw_uid, entry.pw_gid)


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            out[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(root_pid: int, parents: dict[int, int] | None = None) -> set[int]:
    """Every process below ``root_pid`` (not itself), from ``parents``
    (:func:`parent_pids` when not given)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in (parent_pids() if parents is None else parents).items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack += children.get(pid, [])
    return found


def _pids_to_kill(root_pid: int, user: SandboxUser | None) -> set[int]:
    """Every process the submission started: all descendants of the zygote
    (a child subreaper, so detached ones stay below it) and, when grading
    as root, every process of the sandbox account."""
    parents = parent_pids()
    found = descendants(root_pid, parents)
    if user is not None:
        for pid in parents:
            try:
                if os.stat(f"/proc/{pid}").st_uid == user.uid:
                    found.add(pid)
            except OSError:
                continue
    found.discard(os.getpid())
    found.discard(root_pid)
    return found


def kill_everything(root_pid: int, user: SandboxUser | None) -> None:
    """SIGKILL every process below ``root_pid`` (and of ``user``), repeating
    until nothing is left (a fork bomb keeps forking while we kill)."""
    for _ in range(100):
        pids = _pids_to_kill(root_pid, user)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
