"""A run's output folder: its lock, its recorded fingerprint, and its checkpoints.

Room: everything a run writes or reads in `output_dir` before, between and after the steps of the loop. It
holds the file names, `TrainerState` (where training stands, saved with every checkpoint), the checkpoints'
list and completeness (`list_checkpoints`, `checkpoint_problem`), the adapter-only checkpoint format
(`adapter_only_checkpoints`), and `RunFolder`: the lock on the folder (`utils.atomic.FolderLock`), the
preparation of the folder (stale staging cleared, a folder or checkpoint of another run refused with
`RunMismatchError`, the checkpoint to resume chosen, the fingerprint of `fingerprint.py` recorded), the
crash-safe checkpoint write (a staging folder renamed into place, `trainer_state.json` last) and the pruning
of old checkpoints.

Example:
    ```python
    folder = RunFolder(config, run_settings(config, model, len(train_set), None, 1, {"dataset": "dtd"}))
    # (run_settings: fingerprint.py)
    lock = folder.lock()                       # FolderLockedError if another run holds the folder
    resume = folder.prepare()                  # RunMismatchError if it holds another run
    ```
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from safetensors.torch import load_file

from ..modeling.model import PromptCLIPPreTrainedModel
from ..utils.atomic import (
    FolderLock,
    FolderLockedError,
    atomic_write_json,
    commit_folder,
    disk_full_error,
    folder_size,
    remove_stale_staging,
    staging_path,
)
from ..utils.logs import main_process_logger
from .config import TrainingConfig
from .fingerprint import fingerprint_differences, fingerprint_hash

logger = main_process_logger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
ADAPTER_FILE = "model.safetensors"
FINGERPRINT_FILE = "run_fingerprint.json"
LOCK_FILE = "train.lock"


@dataclass
class TrainerState:
    """Where training stands; saved with every checkpoint."""

    stage: int = 0
    epoch: int = 0
    step_in_epoch: int = 0  # optimisation steps done in the current epoch
    global_step: int = 0
    log: list[dict] = field(default_factory=list)


class RunMismatchError(ValueError):
    """The output folder (or the checkpoint to resume) belongs to a run with other settings."""


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint folders in this `output_dir`, oldest first (complete or not, of any run:
    `PromptTrainer` checks each before it resumes one)."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def read_checkpoint_state(checkpoint: str | os.PathLike) -> dict | None:
    """A checkpoint's `trainer_state.json` (with its `fingerprint` and `files`), or None if unreadable."""
    try:
        record = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def checkpoint_problem(checkpoint: str | os.PathLike, fingerprint: str | None = None) -> str | None:
    """Why `checkpoint` cannot be resumed (a half-written folder, another run's), or None when it can.

    Complete means: `trainer_state.json` is readable, and every file it lists has the size written.
    With `fingerprint`, the checkpoint must also belong to that run.
    """
    path = Path(checkpoint)
    if not path.is_dir():
        return "not a folder"
    if not (path / STATE_FILE).is_file():
        return f"no {STATE_FILE}: its write did not finish"
    record = read_checkpoint_state(path)
    if record is None:
        return f"{STATE_FILE} is unreadable"
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        found = record.get("fingerprint")
        return (
            f"another run's (fingerprint {found}, this run {fingerprint})" if found else "of an unknown run"
        )
    files = record.get("files")
    if not isinstance(files, dict):
        return f"{STATE_FILE} lists no files"
    for name, size in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, {size} were written"
    return None


def load_trainer_state(checkpoint: str | os.PathLike) -> TrainerState:
    """The `TrainerState` a checkpoint was written at (its `trainer_state.json`, less the fingerprint and
    file list `RunFolder.save` adds)."""
    record = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    names = {f.name for f in dataclasses.fields(TrainerState)}
    return TrainerState(**{key: value for key, value in record.items() if key in names})


def on_main_process(accelerator: Accelerator, function: Callable[[], Any], share_result: bool = True) -> Any:
    """Run `function` on the main process only; every process raises its error, and returns its result
    (`share_result`) or None (the main process: the result).

    Example:
        >>> resume = on_main_process(accelerator, folder.prepare)   # the same checkpoint on every process
    """
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = function()
        except Exception as caught:  # re-raised below, on every process
            error = caught
    if accelerator.num_processes > 1:
        shared = [result if share_result else None, error]
        broadcast_object_list(shared, from_process=0)
        if not accelerator.is_main_process:
            result, error = shared
        error = shared[1]
    if error is not None:
        raise error
    return result


@contextlib.contextmanager
def adapter_only_checkpoints(accelerator: Accelerator, model: PromptCLIPPreTrainedModel) -> Iterator[None]:
    """Within the block, `accelerator.save_state` / `load_state` write and read the adapter's tensors only,
    under their own names (`model.safetensors`, then `model_<i>.safetensors` for further prepared models):
    Accelerate would write the whole frozen CLIP. When nothing was prepared (fit stages only), `model`'s
    adapter is written and read as model 0's. The hooks are removed when the block ends, so an `Accelerator`
    shared by several runs keeps no other run's hooks.

    Example:
        >>> with adapter_only_checkpoints(accelerator, model):
        ...     accelerator.save_state("run/checkpoints/.checkpoint-8.tmp-1")
    """

    def save(models, weights, output_dir) -> None:
        for prepared, state_dict in zip(models, weights):
            adapter = accelerator.unwrap_model(prepared).adapter_state_dict()
            state_dict.clear()
            state_dict.update({key: value.detach() for key, value in adapter.items()})
        if (
            not models
        ):  # only fit stages ran: nothing was prepared, the adapter is written as model 0 would be
            weights.append({key: value.detach() for key, value in model.adapter_state_dict().items()})

    def load(models, input_dir) -> None:
        if not models:  # a checkpoint written after fit stages only
            model.load_adapter_state_dict(load_file(os.path.join(input_dir, ADAPTER_FILE)), source=input_dir)
        for index in reversed(range(len(models))):
            name = ADAPTER_FILE if index == 0 else f"model_{index}.safetensors"
            unwrapped = accelerator.unwrap_model(models[index])
            unwrapped.load_adapter_state_dict(load_file(os.path.join(input_dir, name)), source=input_dir)
            models.pop(index)

    handles = [accelerator.register_save_state_pre_hook(save), accelerator.register_load_state_pre_hook(load)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class RunFolder:
    """One run's output folder: the lock, the recorded fingerprint, and the run's checkpoints.

    Args:
        config: the run's `TrainingConfig` (`output_dir`, `resume_from_checkpoint`, `overwrite_output_dir`,
            `keep_checkpoints`).
        settings: what defines the run's result (`run_settings`); their hash is `fingerprint`.

    Attributes:
        output_dir / checkpoint_dir: the folder and its `checkpoints/` subfolder.
        fingerprint: `fingerprint_hash(settings)`.
        staging_tag: the id of the process whose staging names checkpoints are written under (the main
            process's, shared by `PromptTrainer.train`).

    Example:
        ```python
        folder = RunFolder(config, settings)
        lock = folder.lock()
        try:
            resume = folder.prepare()
            ...
            folder.save(accelerator, model, state)
        finally:
            lock.release()
        ```
    """

    def __init__(self, config: TrainingConfig, settings: dict[str, Any]):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / CHECKPOINT_DIR
        self.settings = settings
        self.fingerprint = fingerprint_hash(settings)
        self.staging_tag = os.getpid()

    def list_checkpoints(self) -> list[Path]:
        """The checkpoint folders in `output_dir`, oldest first (`list_checkpoints`)."""
        return list_checkpoints(self.output_dir)

    def own_checkpoints(self) -> list[Path]:
        """This run's complete checkpoints, oldest first."""
        return [c for c in self.list_checkpoints() if checkpoint_problem(c, self.fingerprint) is None]

    def lock(self) -> FolderLock:
        """Take the folder's lock (`LOCK_FILE`), or raise `FolderLockedError` naming the run that holds it."""
        lock = FolderLock(self.output_dir, LOCK_FILE)
        try:
            lock.acquire()
        except FolderLockedError as error:
            raise FolderLockedError(
                f"Another training run is using {self.output_dir}: {error} Two runs in one folder would "
                "mix their checkpoints; wait for it to end, or give this run another output_dir "
                "(--output-dir).",
                error.holder,
            ) from None
        return lock

    # ------------------------------------------------------------------ checkpoints

    def save(
        self,
        accelerator: Accelerator,
        model: PromptCLIPPreTrainedModel,
        state: TrainerState,
        write_extra: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write a checkpoint of `state` (adapter, optimiser, RNG states; `adapter_only_checkpoints`) as
        `checkpoint-<global step>`, then prune this run's old ones (every process calls it). `write_extra`, on
        the main process, writes more of the loop's state into the folder (a stage's running epoch average,
        `epoch_average.py`); its files are listed and checked as the others.

        Everything is written into a staging folder (`.checkpoint-<step>.tmp-<staging_tag>`) that is renamed
        into place once complete, `trainer_state.json` (with the fingerprint and the size of every file)
        last: a kill at any moment leaves the previous checkpoints as they were. A full disk is raised as
        `DiskFullError` naming the folder and the checkpoint to resume.
        """
        folder = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
        staging = staging_path(folder, self.staging_tag)
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        try:
            with adapter_only_checkpoints(accelerator, model):
                accelerator.save_state(str(staging))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                if write_extra is not None:
                    write_extra(staging)
                files = {
                    file.relative_to(staging).as_posix(): file.stat().st_size
                    for file in sorted(staging.rglob("*"))
                    if file.is_file()
                }
                record = {**asdict(state), "fingerprint": self.fingerprint, "files": files}
                (staging / STATE_FILE).write_text(json.dumps(record, indent=1))
                commit_folder(staging, folder)
                self.prune()
        except BaseException as error:
            if accelerator.is_main_process:
                full = self._disk_full(error, folder, staging)  # before the cleanup frees the space
                shutil.rmtree(staging, ignore_errors=True)
                if full is not None:
                    raise full from error
            raise
        accelerator.wait_for_everyone()
        return folder

    def _disk_full(self, error: BaseException, folder: Path, staging: Path):
        """`disk_full_error` of a failed checkpoint write: the folder, its free space, and the resume."""
        complete = self.own_checkpoints()
        keep = f"{complete[-1].name} is complete" if complete else "no checkpoint of this run is complete yet"
        fix = (
            f"Free space on that disk (or train in an output_dir, --output-dir, on a disk with room), then "
            f"resume with resume_from_checkpoint='latest' (--resume-from-checkpoint latest): {keep}."
        )
        return disk_full_error(error, folder.parent, folder.name, fix, written=folder_size(staging))

    def prune(self) -> None:
        """Delete this run's complete checkpoints but the newest `keep_checkpoints`."""
        for old in self.own_checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------ the folder before training

    def _mismatch(self, stored: dict) -> RunMismatchError:
        differences = fingerprint_differences(stored.get("settings") or {}, self.settings)
        listed = "; ".join(differences[:12]) + (
            f"; ... {len(differences) - 12} more" if len(differences) > 12 else ""
        )
        return RunMismatchError(
            f"{self.output_dir} holds another run (fingerprint {stored.get('fingerprint')}, this run "
            f"{self.fingerprint}); its settings differ in: {listed or 'unknown settings'}. Resuming or "
            "reusing it would mix two runs. Give this run a new output_dir (--output-dir), or pass "
            "overwrite_output_dir=True (--overwrite-output-dir) to delete that run's checkpoints and train "
            "afresh."
        )

    def _read_stored_fingerprint(self) -> dict | None:
        try:
            stored = json.loads((self.output_dir / FINGERPRINT_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("%s is unreadable; it is written anew", self.output_dir / FINGERPRINT_FILE)
            return None
        return stored if isinstance(stored, dict) else None

    def prepare(self) -> str | None:
        """On the main process, holding the lock: clear what interrupted writes left, refuse a folder of
        another run (`RunMismatchError`, unless `overwrite_output_dir`), pick the checkpoint to resume,
        delete the checkpoints that will not be used, and record this run's fingerprint. Returns the
        checkpoint to resume, or None."""
        config = self.config
        for folder in (self.checkpoint_dir, self.output_dir):
            for path in remove_stale_staging(folder):
                logger.warning("removed %s, left by a write that was interrupted", path)
        stored = self._read_stored_fingerprint()
        checkpoints = self.list_checkpoints()
        records = {path: read_checkpoint_state(path) for path in checkpoints}
        foreign = [
            p for p, r in records.items() if r is not None and r.get("fingerprint") != self.fingerprint
        ]
        if stored is not None and stored.get("fingerprint") != self.fingerprint:
            if not config.overwrite_output_dir:
                raise self._mismatch(stored)
            differences = fingerprint_differences(stored.get("settings") or {}, self.settings)
            logger.warning(
                "overwrite_output_dir: %s held another run (%s); training afresh",
                self.output_dir, "; ".join(differences),
            )  # fmt: skip
        if foreign and not config.overwrite_output_dir:
            names = ", ".join(p.name for p in foreign)
            raise RunMismatchError(
                f"{self.checkpoint_dir} holds checkpoints of another run ({names}: another fingerprint, or "
                f"none, as an earlier version wrote them); this run's fingerprint is {self.fingerprint}. "
                "Give this run a new output_dir (--output-dir), or pass overwrite_output_dir=True "
                "(--overwrite-output-dir) to delete them and train afresh."
            )
        resume = self.resolve_checkpoint(config.resume_from_checkpoint, checkpoints)
        unused = checkpoints
        if resume is not None:  # this run's complete checkpoints stay (it would write them again)
            unused = [p for p in checkpoints if checkpoint_problem(p, self.fingerprint) is not None]
        if unused:
            ours = any(checkpoint_problem(p, self.fingerprint) is None for p in unused)
            logger.warning(
                "%s: deleting %d checkpoint(s) in %s that %s (%s)%s",
                "resuming" if resume is not None else "starting afresh", len(unused), self.checkpoint_dir,
                "an earlier run left" if resume is None else "are incomplete or another run's",
                ", ".join(p.name for p in unused),
                "; resume_from_checkpoint='latest' continues a run instead" if ours else "",
            )  # fmt: skip
            for path in unused:
                shutil.rmtree(path, ignore_errors=True)
        atomic_write_json(
            self.output_dir / FINGERPRINT_FILE,
            {"fingerprint": self.fingerprint, "settings": self.settings},
            indent=1,
            sort_keys=True,
        )
        return str(resume) if resume is not None else None

    def resolve_checkpoint(self, name: str | None, checkpoints: list[Path]) -> Path | None:
        """The checkpoint to resume: None (start), the newest complete one of this run (`"latest"`,
        skipping incomplete ones with a warning), or a named one (refused unless complete and this run's)."""
        if name is None:
            return None
        if name != "latest":
            path = Path(name)
            problem = checkpoint_problem(path)
            if problem is not None:
                raise FileNotFoundError(f"{path} is not a complete checkpoint of this trainer ({problem}).")
            found = (read_checkpoint_state(path) or {}).get("fingerprint")
            if found != self.fingerprint:
                raise RunMismatchError(
                    f"{path} is a checkpoint of another run (fingerprint {found}, this run "
                    f"{self.fingerprint}): resuming it would mix two runs. Resume a checkpoint of this run "
                    "(the same settings), or start without resuming."
                )
            return path
        if not checkpoints:
            raise FileNotFoundError(
                f"resume_from_checkpoint='latest' but {self.checkpoint_dir} holds no checkpoint. "
                "Start without resuming, or point at the run's output_dir."
            )
        skipped = []
        for path in reversed(checkpoints):
            problem = checkpoint_problem(path, self.fingerprint)
            if problem is None:
                if skipped:
                    logger.warning(
                        "resume_from_checkpoint='latest': skipped %s; resuming from %s, the newest complete "
                        "checkpoint of this run",
                        "; ".join(f"{p.name} ({why})" for p, why in skipped), path.name,
                    )  # fmt: skip
                return path
            skipped.append((path, problem))
        listed = "; ".join(f"{p.name} ({why})" for p, why in skipped)
        if self.config.overwrite_output_dir:
            logger.warning(
                "overwrite_output_dir: no checkpoint of this run to resume (%s); starting afresh", listed
            )
            return None
        raise FileNotFoundError(
            f"resume_from_checkpoint='latest' but {self.checkpoint_dir} holds no complete checkpoint of this "
            f"run: {listed}. Start without resuming."
        )
