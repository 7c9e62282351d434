"""One writer per run folder: every command that writes a run folder (`train`, `distill`, the cache folder of
`distill-cache`, each sweep cell, `eval`) holds an exclusive lock on it while it writes, and a second writer is
refused with one line naming the folder and the owner's pid.

The lock is `fcntl.flock` on a small file *beside* the folder (`<parent>/.<name>.lock`), so the folder's
contents stay the run's own and a failed run's clean-up (removing the folder) needs no special case. The kernel
releases a flock when its owner dies, however it dies: a SIGKILLed or crashed run never blocks its own resume;
its lock file may stay behind (holding the dead pid), and the next writer simply takes it. A clean exit removes
the file. Under `accelerate launch` only the global rank 0 takes the lock (`RANK`, set by the launcher), so the
ranks of one run never refuse each other.

A file system that does not support locks (Lustre mounted without `-o flock`) cannot detect a second writer:
the command then warns once and runs unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
from collections.abc import Iterator

_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class FolderLocked(ValueError):
    """A second writer of a locked folder (a user error: exit 2, one line)."""


def lock_path(folder: str | os.PathLike) -> str:
    folder = os.path.realpath(os.fspath(folder))  # a symlink and its target are one folder, one lock
    parent, name = os.path.split(folder.rstrip(os.sep))
    return os.path.join(parent, f".{name}.lock")


def _owner(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            pid, _, host = f.read().strip().partition(" ")
    except OSError:
        return "pid unknown"
    here = host in ("", socket.gethostname())
    return f"pid {pid or 'unknown'}" + ("" if here else f" on {host}")


def is_global_main() -> bool:
    """True in a plain process and in the global rank 0 of a launch (`RANK` unset or 0)."""
    return os.environ.get("RANK", "0") in ("", "0")


def _acquire(path: str, folder: str) -> int | None:
    """An open, flocked descriptor of `path`; None where the file system has no locks; FolderLocked if held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderLocked(f"{folder!r} is being written by another process ({_owner(path)}; lock file "
                                   f"{path}): wait for it to finish, stop it, or choose another folder") from None
            if err.errno in _UNSUPPORTED:
                print(f"ls-llm: warning: cannot lock {folder!r} ({err.strerror}): a second run writing into it "
                      "would not be detected", file=sys.stderr)
                return None
            raise
        # The previous owner removes the file as it releases it: if that happened between our open and our flock,
        # we hold a lock on an unlinked file that nobody else sees, so start again on the current one.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of `folder` (which need not exist yet) for the `with` body; FolderLocked if another
    live process holds it. Not re-entrant: one process locks a folder once."""
    if not is_global_main():
        yield
        return
    path = lock_path(folder)
    parent = os.path.dirname(path)
    created = parent
    while not os.path.exists(created) and os.path.dirname(created) != created:
        created = os.path.dirname(created)  # the nearest existing ancestor: folders below it are ours to remove
    os.makedirs(parent, exist_ok=True)
    try:
        fd = _acquire(path, os.fspath(folder))
        if fd is None:
            yield
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # before the release, so the next owner never sees a file about to vanish
            os.close(fd)
    finally:
        _remove_empty(parent, below=created)


def _remove_empty(folder: str, *, below: str) -> None:
    """Remove `folder` and its parents up to (not including) `below` while they are empty: the folders the lock
    created for a run that then left nothing (a failed run removes its own folder)."""
    while folder != below and folder.startswith(below + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)
