"""Crash-safe files: a file or folder appears whole under its final name or not at all, and a lock that
lets one process at a time own a folder (`FolderLock`, on `filelock`, with its holder's record beside it).

Room: `utils/`.

Everything here is written to a staging name next to its destination (`.<name>.tmp-<pid>`), flushed
to disk (`fsync`) and renamed into place, so a kill, a power cut or a full disk leaves either the old
content or the new one, never half of it; what is left behind is a staging name that
`remove_stale_staging` clears.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

STAGING_PATTERN = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<tag>\d+)")
#: Free space under which a failed write counts as a full disk: a short write fills the disk up to its
#: last block (torch's zip writer then says only "unexpected pos 1024 vs 918"), and another process may
#: free a little meanwhile.
NEARLY_FULL_BYTES = 1 << 20
#: What the libraries' messages say when a write found the disk full (safetensors: "No space left on
#: device (os error 28)") or the user's quota used up.
_DISK_FULL_WORDS = ("no space left on device", "os error 28", "disk quota exceeded")


class DiskFullError(OSError):
    """A write failed because the disk (or the user's quota) is full (`errno.ENOSPC`); the message names
    what was being written, the folder, its free space and what to do.

    Attributes:
        folder: the folder that was being written.
        free: the bytes free there after the failure (`None`: unknown).
    """

    def __init__(self, message: str, folder: str | os.PathLike, free: int | None = None):
        super().__init__(errno.ENOSPC, message)
        self.folder, self.free = Path(folder), free

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # picklable (errors are broadcast to the other processes)
        return type(self), (self.strerror, self.folder, self.free)


def format_bytes(size: int) -> str:
    """A byte count for people: powers of 1024, one decimal.

    Example:
        >>> format_bytes(918), format_bytes(64 * 1024), format_bytes(3 * 1024**3 // 2)
        ('918 B', '64.0 KiB', '1.5 GiB')
    """
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then its causes and contexts (`raise ... from`, or raised while handling another)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _disk_usage(folder: Path) -> tuple[int, int] | None:
    """`(free, total)` bytes of the disk holding `folder` (or its nearest existing parent)."""
    for candidate in (folder, *folder.parents):
        try:
            usage = shutil.disk_usage(candidate)
        except OSError:
            continue
        return usage.free, usage.total
    return None


def folder_size(folder: str | os.PathLike) -> int:
    """The bytes of the files under `folder` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def disk_full_error(
    error: BaseException,
    folder: str | os.PathLike,
    what: str,
    fix: str = "Free space on that disk, or write to another one, and try again.",
    written: int | None = None,
) -> DiskFullError | None:
    """The error to raise instead of `error` when a write failed because the disk is full, else `None`.

    A full disk is recognised by `ENOSPC`/`EDQUOT` (or their words) anywhere in the error's chain, or, for
    a write error that does not say why (torch's zip writer: `[enforce fail at inline_container.cc:672]
    unexpected pos 1024 vs 918`), by less than `NEARLY_FULL_BYTES` free in `folder` right after it. Call
    it before deleting what the failed write left, which would free the space again.

    Args:
        error: what the write raised.
        folder: the folder being written (its disk's free space is reported).
        what: what was being written, for the message (`"checkpoint-8"`).
        fix: what to do, for the message.
        written: the bytes written before the failure, if known (a lower bound of what is needed).

    Example:
        >>> try:
        ...     torch.save(state, "run/checkpoints/.checkpoint-8.tmp-1/optimizer.bin")
        ... except RuntimeError as error:
        ...     full = disk_full_error(error, "run/checkpoints", "checkpoint-8")
        ...     raise full or error
    """
    if not isinstance(error, Exception) or isinstance(error, DiskFullError):
        return None
    folder = Path(folder)
    chain = list(_error_chain(error))
    codes = {getattr(link, "errno", None) for link in chain}
    words = " ".join(str(link) for link in chain).lower()
    quota = getattr(errno, "EDQUOT", None) in codes or "disk quota exceeded" in words
    said = errno.ENOSPC in codes or quota or any(word in words for word in _DISK_FULL_WORDS)
    usage = _disk_usage(folder)
    free = usage[0] if usage else None
    write_error = any(isinstance(link, (OSError, RuntimeError)) for link in chain)
    if not (said or (write_error and free is not None and free < NEARLY_FULL_BYTES)):
        return None
    room = (
        f"{format_bytes(usage[0])} free of {format_bytes(usage[1])} there now"
        if usage
        else "its free space unknown"
    )
    if quota:
        room += " (your disk quota is used up: the quota, not the disk, is full)"
    needed = f"; it needs more than the {format_bytes(written)} it had written" if written else ""
    message = f"No space left on device: writing {what} in {folder} failed ({room}{needed}). {fix}"
    return DiskFullError(message, folder, free)


def staging_path(final_path: str | os.PathLike, tag: int | None = None) -> Path:
    """The staging name of `final_path`: `.<name>.tmp-<tag>` beside it (`tag`: the id of the process
    that writes it, by default this one; `remove_stale_staging` keeps those of live processes).

    Example:
        >>> staging_path("run/checkpoints/checkpoint-8", tag=123).as_posix()
        'run/checkpoints/.checkpoint-8.tmp-123'
    """
    final = Path(final_path)
    return final.parent / f".{final.name}.tmp-{os.getpid() if tag is None else tag}"


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename, a new file) to disk; a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old content or the new, never a part.

    Example:
        >>> atomic_write_bytes("weights.bin", b"\\x00\\x01")
    """
    path = Path(path)
    staging = staging_path(path)
    try:
        with open(staging, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    except BaseException as error:
        full = disk_full_error(error, path.parent, path.name)
        with contextlib.suppress(OSError):
            staging.unlink()
        if full is not None:
            raise full from error
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` of `text` encoded with `encoding`.

    Example:
        >>> atomic_write_text("notes.txt", "trained for 10 epochs\\n")
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj, **dumps_kwargs) -> None:
    """`atomic_write_text` of `json.dumps(obj, **dumps_kwargs)`.

    Example:
        >>> atomic_write_json("state.json", {"global_step": 12}, indent=1)
    """
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def fsync_tree(folder: str | os.PathLike) -> None:
    """Flush every file and folder under `folder` (and `folder` itself) to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())
        fsync_dir(root)


def commit_folder(staging: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Flush the finished folder `staging` to disk and rename it to `final_path`, replacing a folder there.

    A folder already at `final_path` is first renamed aside (`.<name>.old-<pid>`), then deleted:
    if the process dies between the two renames, `remove_stale_staging` puts it back.
    """
    staging, final = Path(staging), Path(final_path)
    fsync_tree(staging)
    aside = None
    if final.exists():
        aside = final.parent / f".{final.name}.old-{os.getpid()}"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(staging, final)
    fsync_dir(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(
    final_path: str | os.PathLike, tag: int | None = None, disk_full_fix: str | None = None
) -> Iterator[Path]:
    """Build a folder in a staging folder beside it (`staging_path`) and rename it into place when the
    block ends without an error; an error deletes the staging folder and leaves `final_path` as it was.
    A full disk is raised as `DiskFullError` naming the folder and its free space (and `disk_full_fix`,
    what to do, when given).

    Example:
        >>> with atomic_folder("run/adapter") as folder:
        ...     (folder / "config.json").write_text("{}")
        ...     (folder / "model.safetensors").write_bytes(b"...")
    """
    final = Path(final_path)
    staging = staging_path(final, tag)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        commit_folder(staging, final)
    except BaseException as error:
        fix = {"fix": disk_full_fix} if disk_full_fix else {}
        full = disk_full_error(error, final.parent, final.name, written=folder_size(staging), **fix)
        shutil.rmtree(staging, ignore_errors=True)
        if full is not None:
            raise full from error
        raise


def remove_stale_staging(folder: str | os.PathLike) -> list[Path]:
    """Delete what interrupted writes left in `folder` (staging names, `STAGING_PATTERN`), except those
    of another live process (their tag is its id); a folder that `commit_folder` had renamed aside is
    put back when nothing replaced it. Returns the paths removed or restored.

    Example:
        >>> remove_stale_staging("run/checkpoints")
        [PosixPath('run/checkpoints/.checkpoint-8.tmp-4242')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        match = STAGING_PATTERN.fullmatch(path.name)
        if not match:
            continue
        tag = match["tag"]
        if int(tag) != os.getpid() and _pid_alive(int(tag)):
            continue  # being written by a running process
        final = folder / match["name"]
        if match["kind"] == "old" and not final.exists():
            os.replace(path, final)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        found.append(path)
    return found


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class FolderLock:
    """An exclusive, non-blocking lock on a folder, held through `filelock`, with its holder's record beside it.

    The lock is `filelock.FileLock` on the file `name` in the folder: `fcntl.flock` on Linux and macOS (the
    kernel releases it when its process dies, however it dies; on a filesystem without flock, filelock falls
    back to its soft lock by itself), the Windows file lock on Windows (released with its process too).
    `use_flock=False` takes `filelock.SoftFileLock` instead: a marker file created exclusively, which records
    its holder's process, and which a process on the same host takes over once that holder is dead. The lock
    file stays when the lock is released (filelock's rule: a waiter may have it open).

    The holder record (`<name>.holder.json`: `pid`, `host`, `since` and `command`) is written atomically once
    the lock is taken and deleted before it is given up, so a refused process names the holder (a crashed
    holder's record stays until the next holder replaces it).

    Args:
        folder: the folder to lock (created if missing).
        name: the lock file's name in it.
        use_flock: `None` (default): `filelock.FileLock`, the platform's lock; `True`: `fcntl.flock`
            (`filelock.UnixFileLock`; refused where there is no `fcntl`); `False`: `filelock.SoftFileLock`.

    Example:
        >>> with FolderLock("outputs/run"):      # FolderLockedError, naming the holder, if another process holds it
        ...     train()
    """

    def __init__(self, folder: str | os.PathLike, name: str = "train.lock", use_flock: bool | None = None):
        self.path = Path(folder) / name
        self.record_path = self.path.with_name(f"{name}.holder.json")
        if use_flock and not filelock.has_fcntl:
            raise ValueError("fcntl.flock is not available on this platform: use use_flock=False or None.")
        self.use_flock = use_flock
        self._lock: filelock.BaseFileLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def holder(self) -> dict:
        """The holder record beside the lock file (`{}` when there is none or it cannot be read)."""
        return _read_holder(self.record_path)

    def _lock_type(self) -> type[filelock.BaseFileLock]:
        if self.use_flock is None:
            return filelock.FileLock
        return filelock.UnixFileLock if self.use_flock else filelock.SoftFileLock

    def _locked(self, holder: dict) -> FolderLockedError:
        if holder.get("pid") is not None:
            who = f"process {holder['pid']} on {holder.get('host', '?')}"
            who += f" since {holder['since']}" if holder.get("since") else ""
            who += f", running `{holder['command']}`" if holder.get("command") else ""
            record = f"holder record {self.record_path}"
        else:
            who = "another process"
            record = f"it has written no readable holder record in {self.record_path} yet"
        return FolderLockedError(f"{self.path.parent} is locked by {who} ({self.path}; {record}).", holder)

    def acquire(self) -> FolderLock:
        """Take the lock and write the holder record, or raise `FolderLockedError` naming the holder."""
        if self._lock is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self._lock_type()(str(self.path))
        # two tries: a filelock version that breaks a dead holder's soft lock on a try takes it on the next
        for attempt in (1, 2):
            try:
                lock.acquire(timeout=0)
                break
            except filelock.Timeout:
                if attempt == 2:
                    raise self._locked(self.holder()) from None
        try:
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": shlex.join(sys.argv),
            }
            atomic_write_json(self.record_path, record)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        return self

    def release(self) -> None:
        """Delete the holder record and give the lock up; a no-op when not held."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        with contextlib.suppress(OSError):
            self.record_path.unlink()
        lock.release()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
