"""Crash safety: runs that cannot mix, checkpoints that survive any kill, numbers that never lie.

Each test builds the tiny CoOp of tests/test_training.py on 32 generated images (4 steps of 8 per
epoch), so each runs in seconds.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import Interrupt, stop_at_forward
from safetensors.torch import load_file

import hf_prompt_clip.train as train
from hf_prompt_clip import CoOpModel
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.testing import pattern_benchmark

HERE = Path(__file__).parent
CLASSES = ["red", "blue", "checkerboard", "stripes"]


def make_model(folder):
    torch.manual_seed(0)
    return CoOpModel.from_clip(folder, CLASSES, n_ctx=4, class_specific_context=True)


def train_set(model, augment=True):
    transform = train_transform(model.image_processor) if augment else eval_transform(model.image_processor)
    return with_image_transform(pattern_benchmark(8, seed=0), transform)


SETTINGS = dict(
    epochs=3,
    batch_size=8,
    learning_rate=0.02,
    optimizer="sgd",
    lr_schedule="constant",
    warmup_epochs=0,
    seed=3,
    checkpoint_every_steps=2,
)


def config(output, **overrides):
    return train.TrainingConfig(output_dir=str(output), **{**SETTINGS, **overrides})


def run(folder, output, stop_at=None, data_collate=collate_fn, **overrides):
    """Train a fresh model into `output`; with `stop_at`, die (`Interrupt`) at that forward call.
    Returns (model, state or None, number of forward calls)."""
    model = make_model(folder)
    calls = stop_at_forward(model, stop_at)
    trainer = train.PromptTrainer(
        model, train_set(model), config(output, **overrides), collate_fn=data_collate
    )
    try:
        state = trainer.train()
    except Interrupt:
        state = None
    return model, state, len(calls)


def names(output) -> list[str]:
    return [path.name for path in train.list_checkpoints(output)]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def warnings_logged(caplog):
    caplog.set_level(logging.WARNING, logger="hf_prompt_clip")
    return caplog


# ---------------------------------------------------------------- (a) runs that cannot mix


def test_a_folder_of_another_run_is_refused_and_overwrite_trains_afresh_resuming_only_its_own(
    tiny_clip_folder, tmp_path
):
    output = tmp_path / "run"
    run(tiny_clip_folder, output, learning_rate=0.05, checkpoint_every_steps=0)  # a finished run
    assert names(output) == ["checkpoint-8", "checkpoint-12"]
    recorded = json.loads((output / "run_fingerprint.json").read_text())
    assert recorded["settings"]["training"]["learning_rate"] == 0.05
    assert "output_dir" not in recorded["settings"]["training"]

    other = dict(learning_rate=0.1, epochs=2)
    for resume in (None, "latest"):  # neither a new run nor a resume with other settings mixes with it
        with pytest.raises(train.RunMismatchError) as refused:
            run(tiny_clip_folder, output, resume_from_checkpoint=resume, **other)
        message = str(refused.value)
        assert "training.learning_rate (0.05 there, 0.1 now)" in message
        assert "training.epochs (3 there, 2 now)" in message
        assert "overwrite_output_dir=True" in message and "--overwrite-output-dir" in message
    assert names(output) == ["checkpoint-8", "checkpoint-12"]  # untouched

    expected, _, _ = run(tiny_clip_folder, tmp_path / "uninterrupted", **other)
    run(tiny_clip_folder, output, stop_at=4, overwrite_output_dir=True, **other)  # dies in step 4
    assert names(output) == ["checkpoint-2"]  # the old run's checkpoints are gone, this one's kept
    resumed, state, calls = run(tiny_clip_folder, output, resume_from_checkpoint="latest", **other)
    assert state.global_step == 8 and calls == 6  # from step 2 of this run, not step 12 of the other
    assert torch.equal(resumed.context, expected.context)


def test_the_fingerprint_holds_the_callers_settings_and_not_the_checkpoint_cadence(
    tiny_clip_folder, tmp_path
):
    model = make_model(tiny_clip_folder)
    trainer = train.PromptTrainer(
        model, train_set(model), config(tmp_path), fingerprint={"method": "coop", "shots": 8}
    )
    settings = trainer.run_settings()
    assert settings["run"] == {"method": "coop", "shots": 8}
    assert settings["train_examples"] == 32 and settings["model_type"] == model.config.model_type
    for ignored in ("output_dir", "resume_from_checkpoint", "checkpoint_every_steps", "keep_checkpoints"):
        assert ignored not in settings["training"]
    same = train.PromptTrainer(
        model,
        train_set(model),
        config(tmp_path / "elsewhere", checkpoint_every_steps=0, keep_checkpoints=5, num_workers=0),
        fingerprint={"shots": 8, "method": "coop"},
    )
    assert same.fingerprint == trainer.fingerprint
    other = train.PromptTrainer(
        model, train_set(model), config(tmp_path), fingerprint={"method": "coop", "shots": 4}
    )
    assert other.fingerprint != trainer.fingerprint


# ---------------------------------------------------------------- (b) only complete checkpoints resume


def test_latest_skips_half_written_checkpoints_and_resumes_the_previous_complete_one(
    tiny_clip_folder, tmp_path, warnings_logged
):
    expected, _, _ = run(tiny_clip_folder, tmp_path / "uninterrupted")
    output = tmp_path / "run"
    run(tiny_clip_folder, output, stop_at=7, keep_checkpoints=5)  # dies in step 7
    assert names(output) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    folder = output / "checkpoints"
    optimizer = folder / "checkpoint-6" / "optimizer.bin"  # killed while writing the optimiser state
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    (folder / "checkpoint-8").mkdir()  # killed before writing anything
    (folder / "checkpoint-10").mkdir()  # killed after the adapter, before trainer_state.json
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(
        (folder / "checkpoint-4" / "model.safetensors").read_bytes()
    )
    stale = folder / f".checkpoint-12.tmp-{dead_pid()}"  # a staging folder of a killed run
    stale.mkdir()

    with pytest.raises(FileNotFoundError, match=r"not a complete checkpoint.*optimizer.bin has \d+ bytes"):
        run(tiny_clip_folder, output, resume_from_checkpoint=str(folder / "checkpoint-6"))
    resumed, state, calls = run(tiny_clip_folder, output, resume_from_checkpoint="latest", keep_checkpoints=5)
    assert state.global_step == 12 and calls == 8  # from step 4
    assert torch.equal(resumed.context, expected.context)
    log = warnings_logged.text
    assert "checkpoint-10 (no trainer_state.json" in log and "checkpoint-8 (no trainer_state.json" in log
    assert "checkpoint-6 (optimizer.bin has" in log and "resuming from checkpoint-4" in log
    assert f"removed {stale}" in log and not stale.exists()
    assert names(output) == ["checkpoint-4", "checkpoint-6", "checkpoint-8", "checkpoint-10", "checkpoint-12"]
    assert all(train.checkpoint_problem(path) is None for path in train.list_checkpoints(output))


def test_a_checkpoint_write_that_fails_leaves_no_checkpoint_behind(tiny_clip_folder, tmp_path, monkeypatch):
    """A full disk in the middle of a checkpoint: the error surfaces, nothing half-written stays, and
    `latest` resumes the checkpoint before it."""
    from accelerate import Accelerator

    expected, _, _ = run(tiny_clip_folder, tmp_path / "uninterrupted")
    original, saves = Accelerator.save_state, []

    def disk_full(self, output_dir=None, **kwargs):
        saves.append(output_dir)
        if len(saves) == 2:
            Path(output_dir, "model.safetensors").write_bytes(b"\0" * 10)
            raise OSError(28, "No space left on device")
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run(tiny_clip_folder, tmp_path / "run")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["checkpoint-2"]  # no staging, no half
    resumed, _, calls = run(tiny_clip_folder, tmp_path / "run", resume_from_checkpoint="latest")
    assert calls == 10 and torch.equal(resumed.context, expected.context)


# ---------------------------------------------------------------- (c) a real kill -9 inside a checkpoint write

CHILD = """
import sys, time
from pathlib import Path

sys.path.insert(0, {tests!r})
import torch
from accelerate import Accelerator

torch.set_num_threads(1)
from test_crash_safety import config, make_model, train_set
import hf_prompt_clip.train as train
from hf_prompt_clip.data import collate_fn

folder, output, marker = sys.argv[1:4]
original, saves = Accelerator.save_state, []


def save_state(self, output_dir=None, **kwargs):  # the second save pauses inside its write
    result = original(self, output_dir, **kwargs)
    saves.append(output_dir)
    if len(saves) == 2:
        optimizer = Path(output_dir) / "optimizer.bin"  # as if killed while writing it
        optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
        Path(marker).write_text(output_dir)
        time.sleep(600)
    return result


Accelerator.save_state = save_state
model = make_model(folder)
train.PromptTrainer(model, train_set(model), config(output), collate_fn=collate_fn).train()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX kill -9")
def test_kill_9_inside_a_checkpoint_write_resumes_to_the_uninterrupted_adapter(
    tiny_clip_folder, tmp_path, warnings_logged
):
    script, output, marker = tmp_path / "child.py", tmp_path / "run", tmp_path / "paused"
    script.write_text(CHILD.format(tests=str(HERE)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    with open(tmp_path / "child.log", "wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(script), tiny_clip_folder, str(output), str(marker)],
            env=env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the child never reached its second checkpoint"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    staging = Path(marker.read_text())
    assert staging.name == f".checkpoint-4.tmp-{child.pid}" and (staging / "model.safetensors").is_file()
    assert names(output) == ["checkpoint-2"]  # checkpoint-4 never appeared under its name
    holder = json.loads((output / "train.lock.holder.json").read_text())
    assert holder["pid"] == child.pid  # the dead run's lock stays behind, naming it ...

    expected, _, _ = run(tiny_clip_folder, tmp_path / "uninterrupted")
    resumed, state, calls = run(tiny_clip_folder, output, resume_from_checkpoint="latest")  # ... and is taken
    assert state.global_step == 12 and calls == 10  # from step 2
    assert torch.equal(resumed.context, expected.context)  # bit for bit
    assert not staging.exists() and f"removed {staging}" in warnings_logged.text
    assert not (output / "train.lock.holder.json").exists()  # released
    saved = load_file(output / "checkpoints" / "checkpoint-12" / "model.safetensors")
    assert torch.equal(saved["context"], expected.context)


# ---------------------------------------------------------------- (d) one run per folder


def test_a_second_run_on_a_locked_folder_is_refused(tiny_clip_folder, tmp_path):
    from hf_prompt_clip.utils.atomic import FolderLock

    output = tmp_path / "run"
    locked = pytest.raises(
        train.FolderLockedError, match=rf"Another training run is using .*process {os.getpid()}"
    )
    with FolderLock(output, "train.lock"), locked:  # another run holds the folder
        run(tiny_clip_folder, output, epochs=1)
    assert not (output / "checkpoints").exists() and not (output / "run_fingerprint.json").exists()
    _, state, _ = run(tiny_clip_folder, output, epochs=1)  # free again
    assert state.global_step == 4 and not (output / "train.lock.holder.json").exists()  # released


def test_the_lock_file_fallback_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    """Where there is no flock, the soft lock (`filelock.SoftFileLock`, `use_flock=False`): the lock file a
    dead process left is taken over; a live holder refuses (more in tests/test_folder_lock.py)."""
    from hf_prompt_clip.utils.atomic import FolderLock, FolderLockedError

    lock_file = tmp_path / "train.lock"
    die_holding = (
        "import filelock, os, sys; lock = filelock.SoftFileLock(sys.argv[1]); lock.acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", die_holding, str(lock_file)], check=True)
    assert lock_file.exists()  # a dead holder's lock
    with FolderLock(tmp_path, use_flock=False) as lock:
        assert lock.held and lock.holder()["pid"] == os.getpid()
        live = f"locked by process {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(FolderLockedError, match=live):
            FolderLock(tmp_path, use_flock=False).acquire()
    assert not lock_file.exists() and not (tmp_path / "train.lock.holder.json").exists()


# ---------------------------------------------------------------- (e) finite or fail


def test_an_overflowing_learning_rate_fails_naming_the_last_good_checkpoint(tiny_clip_folder, tmp_path):
    """A warm-up epoch, then a learning rate of 1e30: its first step makes the context overflow (its
    squares are not finite; the text tower's layer norms turn it into NaN). That step is the last
    one before a save: it used to exit 0, write that checkpoint and report chance accuracy."""
    settings = dict(learning_rate=1e30, warmup_epochs=1, batch_size=32, epochs=2, checkpoint_every_steps=0)
    output = tmp_path / "run"
    with pytest.raises(train.NonFiniteParametersError) as failed:
        run(tiny_clip_folder, output, **settings)
    message = str(failed.value)
    assert (
        "context are not finite before saving checkpoint-2, after step 2 (stage 'prompt', epoch 1)" in message
    )
    assert "learning rate 1e+30" in message
    assert (
        f"known to be good (finite parameters that gave a finite loss) is {output / 'checkpoints' / 'checkpoint-1'}"
        in message
    )
    assert names(output) == ["checkpoint-1"]
    assert torch.isfinite(
        load_file(output / "checkpoints" / "checkpoint-1" / "model.safetensors")["context"]
    ).all()

    # no checkpoint at all before the overflow: caught at the next step, and said so
    with pytest.raises(
        train.NonFiniteParametersError,
        match=r"Optimiser step 2 made the trainable parameters context non-finite \(stage 'prompt', epoch 1\) with learning rate 1e\+30\. No checkpoint of this run is known to be good",
    ):
        run(tiny_clip_folder, tmp_path / "none", **{**settings, "epochs": 3, "checkpoint_every_epochs": 3})


def test_a_nan_loss_names_the_last_checkpoint_that_gave_a_finite_loss(tiny_clip_folder, tmp_path):
    batches = []

    def poisoned(examples):  # the 4th batch holds a NaN image
        batch = collate_fn(examples)
        batches.append(1)
        if len(batches) == 4:
            batch["pixel_values"][0, 0, 0, 0] = float("nan")
        return batch

    output = tmp_path / "run"
    with pytest.raises(train.NonFiniteLossError) as failed:
        run(tiny_clip_folder, output, data_collate=poisoned, checkpoint_every_steps=1)
    message = str(failed.value)
    assert "The loss became nan at step 4 (stage 'prompt', epoch 0) with learning rate 0.02" in message
    assert f"is {output / 'checkpoints' / 'checkpoint-2'}; checkpoint-3, saved after it," in message
    assert "resume_from_checkpoint='latest'" not in message  # no advice to resume into the failure


# ---------------------------------------------------------------- the atomic helpers


def test_atomic_writes_leave_the_old_content_or_the_new(tmp_path):
    from hf_prompt_clip.utils.atomic import (
        atomic_folder,
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
        remove_stale_staging,
    )

    atomic_write_json(tmp_path / "a.json", {"step": 1}, indent=1)
    atomic_write_text(tmp_path / "b.txt", "text")
    atomic_write_bytes(tmp_path / "c.bin", b"\x00\x01")
    assert json.loads((tmp_path / "a.json").read_text()) == {"step": 1}
    assert (tmp_path / "b.txt").read_text() == "text" and (tmp_path / "c.bin").read_bytes() == b"\x00\x01"

    final = tmp_path / "adapter"
    with atomic_folder(final) as staging:
        (staging / "config.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(final) as staging:
        (staging / "config.json").write_text("half")
        raise RuntimeError
    assert (final / "config.json").read_text() == "old"
    with atomic_folder(final) as staging:
        assert staging.name == f".adapter.tmp-{os.getpid()}" and not staging.samefile(final)
        (staging / "new.json").write_text("new")
    assert sorted(os.listdir(final)) == ["new.json"]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "adapter", "b.txt", "c.bin"]

    # killed between the two renames of a replacement: the old folder comes back
    os.replace(final, tmp_path / f".adapter.old-{dead_pid()}")
    (tmp_path / f".b.txt.tmp-{dead_pid()}").write_text("half")
    assert len(remove_stale_staging(tmp_path)) == 2
    assert sorted(os.listdir(tmp_path)) == ["a.json", "adapter", "b.txt", "c.bin"]
