"""One process at a time owns a folder: `utils.atomic.FolderLock`, on `filelock`, with its holder's record beside it.

Each holder here is another process (a small script that loads `utils/atomic.py` alone, so that it starts in
a fraction of a second), holding the lock through `filelock.FileLock` (flock on Linux) or
`filelock.SoftFileLock` (a marker file, for filesystems without flock).
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hf_prompt_clip.utils import atomic
from hf_prompt_clip.utils.atomic import FolderLock, FolderLockedError

HOLDER = """
import importlib.util, os, signal, sys

spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
lock = atomic.FolderLock(sys.argv[2], use_flock={"native": None, "soft": False}[sys.argv[3]]).acquire()
print("held", flush=True)
if sys.stdin.readline().strip() == "crash":
    os.kill(os.getpid(), signal.SIGKILL)  # no release, no atexit: as a killed run
lock.release()
print("released", flush=True)
"""

KINDS = {"native": None, "soft": False}


@pytest.fixture(params=sorted(KINDS))
def kind(request) -> str:
    return request.param


def hold(folder: Path, kind: str) -> subprocess.Popen:
    """Another process holding `folder`'s lock (it has written its record when this returns)."""
    script = folder.parent / "holder.py"
    script.write_text(HOLDER)
    child = subprocess.Popen(
        [sys.executable, str(script), atomic.__file__, str(folder), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()
    assert line == "held\n", child.stderr.read()
    return child


def finish(child: subprocess.Popen, how: str = "release") -> str:
    out, err = child.communicate(f"{how}\n", timeout=60)
    return out + err


def test_a_second_holder_in_another_process_is_refused_naming_the_holder_record(tmp_path, kind):
    folder = tmp_path / "run"
    child = hold(folder, kind)
    try:
        record = json.loads((folder / "train.lock.holder.json").read_text())
        assert record["pid"] == child.pid and record["host"] == socket.gethostname()
        assert "holder.py" in record["command"] and record["since"]
        with pytest.raises(FolderLockedError) as refused:
            FolderLock(folder, use_flock=KINDS[kind]).acquire()
        message = str(refused.value)
        assert f"process {child.pid} on {socket.gethostname()} since {record['since']}" in message
        assert record["command"] in message and "train.lock.holder.json" in message
        assert refused.value.holder == record
    finally:
        output = finish(child)
    assert child.returncode == 0 and "released" in output, output
    assert not (folder / "train.lock.holder.json").exists()  # released: its record goes with it
    with FolderLock(folder, use_flock=KINDS[kind]) as lock:  # and the folder is free
        assert lock.held
        assert json.loads((folder / "train.lock.holder.json").read_text())["pid"] == os.getpid()
    assert not (folder / "train.lock.holder.json").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX kill -9")
def test_a_crashed_holders_lock_is_taken_over(tmp_path, kind):
    folder = tmp_path / "run"
    child = hold(folder, kind)
    finish(child, "crash")
    assert child.returncode == -signal.SIGKILL
    stale = json.loads((folder / "train.lock.holder.json").read_text())
    assert stale["pid"] == child.pid  # the dead holder's record stays behind ...
    with FolderLock(folder, use_flock=KINDS[kind]) as lock:  # ... and its lock is taken over
        assert lock.held
        assert json.loads((folder / "train.lock.holder.json").read_text())["pid"] == os.getpid()
        with pytest.raises(FolderLockedError, match=f"process {os.getpid()}"):  # now held by this one
            FolderLock(folder, use_flock=KINDS[kind]).acquire()


def test_a_lock_without_a_holder_record_is_still_refused(tmp_path):
    """A holder that has not written its record yet (or whose record was deleted) still holds the folder."""
    folder = tmp_path / "run"
    with FolderLock(folder):
        (folder / "train.lock.holder.json").unlink()
        with pytest.raises(FolderLockedError, match="another process"):
            FolderLock(folder).acquire()
