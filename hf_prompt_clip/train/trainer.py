"""A method-agnostic training loop on Accelerate, with adapter-only checkpoints that resume exactly.

The loop knows nothing about methods: it asks the model for its training stages
(`model.training_stages()`) and trains, in each, exactly the parameters the stage names.

Crash safety: a run records its fingerprint (the settings that define its result) in its output
folder and refuses a folder that holds another run; it holds a lock on the folder while it trains;
checkpoints are written into a staging folder and renamed into place, so `"latest"` only ever sees
complete ones (and skips any that are not, with a warning); and training stops with an error when the
loss or the trainable parameters stop being finite, before anything non-finite is saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast, broadcast_object_list, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..core.atomic import (
    FolderLock,
    FolderLockedError,
    atomic_write_json,
    commit_folder,
    disk_full_error,
    folder_size,
    remove_stale_staging,
    staging_path,
)
from ..core.configuration import option_types
from ..core.feature_cache import FrozenFeaturesUnavailable, ImageFeatureCache, ProcessShards, SeededViews
from ..core.fitting import FitData
from ..core.logs import main_process_logger
from ..core.modeling import PromptCLIPPreTrainedModel, TrainingStage
from .accelerator import training_accelerator
from .schedule import SCHEDULES, learning_rate

logger = main_process_logger(__name__)


def tracker_config(values: dict) -> dict[str, bool | int | float | str]:
    """Settings as every tracker takes them (TensorBoard's `add_hparams` takes only scalars and
    strings): lists, tuples and dicts as JSON text, `None` as `"None"`, others as they are.

    Example:
        >>> tracker_config({"report_to": ["tensorboard"], "max_grad_norm": None, "epochs": 10})
        {'report_to': '["tensorboard"]', 'max_grad_norm': 'None', 'epochs': 10}
    """
    flat = {}
    for key, value in values.items():
        if value is None:
            flat[key] = "None"
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            flat[key] = json.dumps(value, default=str)
    return flat


CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
ADAPTER_FILE = "model.safetensors"
FINGERPRINT_FILE = "run_fingerprint.json"
LOCK_FILE = "train.lock"
#: `TrainingConfig` fields that do not change the trained adapter, so not part of a run's fingerprint.
NOT_IN_FINGERPRINT = (
    "output_dir",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "checkpoint_every_epochs",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "num_workers",
    "report_to",
)


@dataclass
class TrainingConfig:
    """How to train (defaults: the CoOp/CoCoOp reference recipe, docs/training.md).

    Args:
        output_dir: where checkpoints and the final adapter go.
        epochs: epochs per training stage (a stage may override it).
        batch_size: images per device per step.
        learning_rate: peak learning rate (SGD 0.002 in the papers).
        optimizer: `"sgd"` (momentum 0.9, weight decay 5e-4) or `"adamw"`.
        lr_schedule: `"reference"` (warm-up epoch at `warmup_lr`, then cosine set once per epoch),
            `"cosine"` (per step) or `"constant"`.
        gradient_accumulation_steps: steps whose gradients are summed before an update.
        max_grad_norm: clip the gradient norm to this value (`None`: no clipping).
        mixed_precision: `"no"`, `"bf16"` or `"fp16"` (autocast; trainable tensors stay fp32).
        seed: seeds Python, NumPy, torch and the data order.
        checkpoint_every_epochs: save a checkpoint every N epochs (and at the end).
        checkpoint_every_steps: also save every N optimisation steps (0: off).
        keep_checkpoints: how many recent checkpoints to keep.
        resume_from_checkpoint: a checkpoint folder, or `"latest"` for the newest complete checkpoint
            of this run (same fingerprint) in `output_dir`.
        overwrite_output_dir: train in an `output_dir` that holds another run (other settings),
            deleting that run's checkpoints; without it such a folder is refused.
        num_workers: DataLoader workers.
        report_to: trackers for `Accelerator(log_with=...)` (`[]`: none).
        augment_views: train gradient stages on this many precomputed augmented views per image (`--augment-views
            V`, the Tip-Adapter practice): view `v` of every training image is encoded once through the feature
            cache before the stage (drawn as the pixel path draws epoch `v`, `view_seed`), and epoch `e` trains
            on view `e mod V`'s features, batches shuffled as the pixel path shuffles them. It changes the
            augmentation (views repeat every V epochs), so it is off (`None`) by default; for `V >= epochs` it
            trains what the pixel path trains. No more views than the longest gradient stage's epochs are
            encoded, and that number is what the run records (`augment_views_used`; a warning when it is less). Only methods whose image path is frozen take it
            (`PromptCLIPPreTrainedModel.training_image_encoder`); fit stages ignore it.
    """

    output_dir: str = "outputs/run"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.002
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "reference"
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = None
    mixed_precision: str = "no"
    seed: int = 1
    checkpoint_every_epochs: int = 1
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None
    overwrite_output_dir: bool = False
    num_workers: int = 0
    report_to: list[str] = field(default_factory=list)
    augment_views: int | None = None

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}.")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}.")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("warmup_epochs", "checkpoint_every_epochs", "checkpoint_every_steps", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, got {getattr(self, name)} (0 turns it off).")
        for name in ("learning_rate", "warmup_lr", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{name} must be a positive finite number, got {value!r}"
                    + (" (None turns clipping off)." if name == "max_grad_norm" else ".")
                )
        views = self.augment_views
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ValueError(
                f"augment_views must be a positive number of views per training image, got {views!r}; e.g. "
                "augment_views=10 (--augment-views 10), or None to draw a fresh augmentation every epoch."
            )
        if not 0 <= self.weight_decay < math.inf or not 0 <= self.momentum < 1:
            raise ValueError(
                f"weight_decay must be >= 0 and momentum in [0, 1), got {self.weight_decay} and {self.momentum}."
            )


#: `TrainingConfig` fields that only gradient stages read: a run whose stages are all fits ignores them.
GRADIENT_SETTINGS = (
    "epochs",
    "learning_rate",
    "optimizer",
    "momentum",
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "warmup_lr",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "checkpoint_every_steps",
    "augment_views",
)


def settings_used(training: TrainingConfig, stages: Sequence[TrainingStage]) -> dict[str, Any]:
    """The training settings a run with `stages` used, as its results and model card record them.

    A run of fit stages only (a linear probe, Tip-Adapter) drops the optimiser's settings (`GRADIENT_SETTINGS`),
    which it never read; gradient stages that override the epochs or learning rate are listed as `stages`;
    `augment_views` is listed only when set and a gradient stage reads it, as the number of views used
    (`augment_views_used`: no more than the longest gradient stage's epochs).

    Args:
        training: the run's `TrainingConfig`.
        stages: the model's `training_stages()`.

    Returns:
        A JSON-able dict: `dataclasses.asdict(training)` less what the run did not use, plus `stages` where
        a stage overrides the configuration.

    Example:
        >>> settings_used(TrainingConfig(), [TrainingStage("fit", (), kind="fit")]).get("learning_rate")  # None
        >>> settings_used(TrainingConfig(epochs=5), [TrainingStage("ctx", ("ctx",))])["epochs"]
        5
    """
    settings = asdict(training)
    settings["augment_views"] = augment_views_used(training, stages)
    if settings["augment_views"] is None:
        settings.pop("augment_views")
    gradient = [stage for stage in stages if stage.kind == "gradient"]
    if not gradient:
        for name in GRADIENT_SETTINGS:
            settings.pop(name, None)
    if any(stage.epochs is not None or stage.learning_rate is not None for stage in gradient):
        settings["stages"] = [
            f"{stage.name}: {stage.epochs or training.epochs} epochs at learning rate "
            f"{stage.learning_rate or training.learning_rate}"
            for stage in gradient
        ]
    return settings


def augment_views_used(training: TrainingConfig, stages: Sequence[TrainingStage]) -> int | None:
    """The augmented views a run encodes and trains on: `training.augment_views` (V), but no more than the
    most epochs a gradient stage trains (`stage.epochs or training.epochs`), as epoch `e` reads view
    `e mod V` and views past the last epoch would be encoded for nothing. `None` when V is unset or no
    stage is a gradient stage (fit stages do not read it).

    With `V >= epochs` this is the number of epochs: each epoch reads its own view, what the pixel path
    trains. Results, `training_args.json`, the card and the run's fingerprint record this number.

    Args:
        training: the run's `TrainingConfig`.
        stages: the model's `training_stages()`.

    Example:
        >>> augment_views_used(TrainingConfig(epochs=1, augment_views=5), [TrainingStage("ctx", ("ctx",))])
        1
        >>> augment_views_used(TrainingConfig(epochs=10, augment_views=5), [TrainingStage("ctx", ("ctx",))])
        5
    """
    epochs = [stage.epochs or training.epochs for stage in stages if stage.kind == "gradient"]
    if training.augment_views is None or not epochs:
        return None
    return min(training.augment_views, max(epochs))


@dataclass
class TrainerState:
    """Where training stands; saved with every checkpoint."""

    stage: int = 0
    epoch: int = 0
    step_in_epoch: int = 0  # optimisation steps done in the current epoch
    global_step: int = 0
    log: list[dict] = field(default_factory=list)


class NonFiniteTrainingError(FloatingPointError):
    """Training stopped being finite (the loss or the trainable parameters); nothing non-finite was saved."""


class NonFiniteLossError(NonFiniteTrainingError):
    """The training loss became NaN or infinite."""


class NonFiniteParametersError(NonFiniteTrainingError):
    """An optimiser step made trainable parameters overflow: NaN, infinite, or so large that their
    squares are not finite (above about 1.8e19 in float32), where every layer norm over them gives NaN."""


def _stage_settings(stage) -> Any:
    """A training stage as the run's settings record it (`kind` only when it is not the default, so runs
    of gradient stages keep the fingerprints that earlier versions wrote)."""
    if not dataclasses.is_dataclass(stage):
        return repr(stage)
    settings = asdict(stage)
    if settings.get("kind") == "gradient":
        del settings["kind"]
    return settings


def overflowing(tensor: torch.Tensor) -> torch.Tensor:
    """A boolean tensor (no host sync): does `tensor` hold NaN, inf, or values whose square overflows?

    Example:
        >>> overflowing(torch.tensor([1.0, 3e19])).item(), overflowing(torch.tensor([1.0, 2.0])).item()
        (True, False)
    """
    if tensor.numel() == 0:
        return torch.zeros((), dtype=torch.bool, device=tensor.device)
    return ~torch.isfinite(tensor.detach().abs().amax().float().square())


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


def fingerprint_hash(settings: dict) -> str:
    """The hash of a run's settings: sha256 of their sorted JSON, first 16 hex digits.

    Example:
        >>> fingerprint_hash({"training": {"learning_rate": 0.002}})
        '97226d48e7cee6ef'
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        flat = {}
        for key, value in values.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: values}


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """The settings that differ between two fingerprints' settings, as `key (old there, new now)`.

    Example:
        >>> fingerprint_differences({"training": {"epochs": 10}}, {"training": {"epochs": 5}})
        ['training.epochs (10 there, 5 now)']
    """
    old_flat, new_flat = _flatten(old), _flatten(new)
    missing = object()
    return [
        f"{key} ({old_flat.get(key, 'unset')!r} there, {new_flat.get(key, 'unset')!r} now)"
        for key in sorted(old_flat.keys() | new_flat.keys())
        if old_flat.get(key, missing) != new_flat.get(key, missing)
    ]


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


class EpochSeededDataset(SeededViews):
    """Draws each example's random augmentation from a seed of (run seed, epoch, index): epoch `e` shows
    view `e` of every example (`core.feature_cache.view_seed`, the views the feature cache keeps).

    Augmentations then depend on neither the order in which batches are loaded (Accelerate
    prefetches one ahead), nor a resume in the middle of an epoch, nor the number of processes:
    an interrupted run resumes exactly and two processes see what one would.
    """

    def __init__(self, dataset: Dataset, seed: int):
        super().__init__(dataset, seed, view=0)

    @property
    def epoch(self) -> int:
        return self.view

    def set_epoch(self, epoch: int) -> None:
        self.view = epoch


class ExampleIndices(Dataset):
    """Item `i` is `i`: what a gradient stage on cached features (`augment_views`) loads, batched, shuffled
    and sharded exactly as the pixel path's loader would batch the examples themselves."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class PromptTrainer:
    """Trains a prompt learner's adapter on a dataset of `{"pixel_values", "labels"}` examples.

    Args:
        model: any `PromptCLIPPreTrainedModel`.
        train_dataset: a map-style dataset whose items `collate_fn` turns into a batch dict with
            `pixel_values` and `labels`.
        config: a `TrainingConfig`.
        collate_fn: batches examples (default: torch's).
        accelerator: an `Accelerator` to use as it is (a run shares one: `train.accelerator.accelerator_for` sets it
            up for this training); one is built from the config when omitted (`training_accelerator`).
        fingerprint: what else defines the result, as JSON-able values (method, options, data, shots,
            base model, ...): with the config's settings that matter, the model type, its training
            stages, the number of examples and of processes, it makes the run's fingerprint
            (`run_settings`). A folder or checkpoint of another fingerprint is never resumed.
        train_eval_dataset: the training examples through the test transform (no augmentation), which
            `"fit"` stages read (`FitData.train`); `validation_dataset`: validation examples through the
            test transform (`FitData.validation`), for methods whose fit searches on them.
        feature_cache: the `ImageFeatureCache` fit stages, and gradient stages with `config.augment_views`,
            encode through (one per run shares features between methods and seeds; default: a new one).

    Example:
        ```python
        trainer = PromptTrainer(model, train_set, TrainingConfig(epochs=10), collate_fn=collate_fn,
                                fingerprint={"method": model.config.model_type, "dataset": "dtd", "shots": 16})
        trainer.train()                     # resumable: TrainingConfig(resume_from_checkpoint="latest")
        model.save_pretrained("adapter")
        ```
    """

    def __init__(
        self,
        model: PromptCLIPPreTrainedModel,
        train_dataset: Dataset,
        config: TrainingConfig,
        collate_fn: Callable | None = None,
        accelerator: Accelerator | None = None,
        fingerprint: dict[str, Any] | None = None,
        train_eval_dataset: Dataset | None = None,
        validation_dataset: Dataset | None = None,
        feature_cache: ImageFeatureCache | None = None,
    ):
        self.model = model
        self.train_dataset = train_dataset
        self.config = config
        self.collate_fn = collate_fn
        self.caller_fingerprint = dict(fingerprint or {})
        self.train_eval_dataset = train_eval_dataset
        self.validation_dataset = validation_dataset
        self.feature_cache = feature_cache if feature_cache is not None else ImageFeatureCache()
        self.accelerator = accelerator or training_accelerator(config)
        self.state = TrainerState()
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / CHECKPOINT_DIR
        self.settings = self.run_settings()
        self.fingerprint = fingerprint_hash(self.settings)
        self._staging_tag = os.getpid()  # the main process's id (shared at the start of train())
        self._good_checkpoint: Path | None = None  # finite parameters that gave a finite loss
        self._unchecked_checkpoint: Path | None = None  # finite parameters, no loss computed from them yet
        self._resumed_from: Path | None = None
        self._steps_at_start = 0
        self._last_step: tuple[int, float] | None = None  # (epoch, learning rate) of the last optimiser step

    # ------------------------------------------------------------------ the run's identity

    def run_settings(self) -> dict[str, Any]:
        """What defines this run's result, as JSON values: the `TrainingConfig` fields that matter (not
        `NOT_IN_FINGERPRINT`), the model type, its training stages, the number of training examples and
        of processes (the global batch), and the caller's `fingerprint`. Its hash is the fingerprint."""
        training = {k: v for k, v in asdict(self.config).items() if k not in NOT_IN_FINGERPRINT}
        model_stages = self.model.training_stages()
        training["augment_views"] = augment_views_used(self.config, model_stages)  # the views trained on
        if training["augment_views"] is None:
            training.pop("augment_views")  # unset or unused: the fingerprint runs had before the option
        stages = [_stage_settings(stage) for stage in model_stages]
        settings = {
            "training": training,
            "model_type": getattr(self.model.config, "model_type", None) or type(self.model).__name__,
            "training_stages": stages,
            "train_examples": len(self.train_dataset),
            **(
                {"validation_examples": len(self.validation_dataset)}
                if self.validation_dataset is not None
                else {}
            ),
            "num_processes": self.accelerator.num_processes,
            "run": self.caller_fingerprint,
        }
        return json.loads(json.dumps(settings, sort_keys=True, default=str))

    # ------------------------------------------------------------------ checkpoint hooks

    def _save_adapter_only(self, models, weights, output_dir) -> None:
        # Accelerate would write the whole frozen CLIP (under the wrapper's key prefix, if any);
        # write the adapter tensors under their own names instead.
        for model, state_dict in zip(models, weights):
            adapter = self.accelerator.unwrap_model(model).adapter_state_dict()
            state_dict.clear()
            state_dict.update({key: value.detach() for key, value in adapter.items()})
        if (
            not models
        ):  # only fit stages ran: nothing was prepared, the adapter is written as model 0 would be
            weights.append({key: value.detach() for key, value in self.model.adapter_state_dict().items()})

    def _load_adapter_only(self, models, input_dir) -> None:
        if not models:  # a checkpoint written after fit stages only
            self.model.load_adapter_state_dict(
                load_file(os.path.join(input_dir, ADAPTER_FILE)), source=input_dir
            )
        for index in reversed(range(len(models))):
            name = ADAPTER_FILE if index == 0 else f"model_{index}.safetensors"
            unwrapped = self.accelerator.unwrap_model(models[index])
            unwrapped.load_adapter_state_dict(load_file(os.path.join(input_dir, name)), source=input_dir)
            models.pop(index)

    def save_checkpoint(self) -> Path:
        """Save adapter, optimiser, RNG states and the trainer state; prune this run's old checkpoints.

        Everything is written into a staging folder (`.checkpoint-<step>.tmp-<pid>`) that is renamed
        to `checkpoint-<step>` once complete, `trainer_state.json` last: a kill at any moment leaves
        the previous checkpoints as they were. Refused (`NonFiniteParametersError`) when a trainable
        parameter is not finite.
        """
        accelerator = self.accelerator
        self._check_parameters(f"before saving checkpoint-{self.state.global_step}")
        folder = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.state.global_step}"
        staging = staging_path(folder, self._staging_tag)
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(staging))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                files = {
                    file.relative_to(staging).as_posix(): file.stat().st_size
                    for file in sorted(staging.rglob("*"))
                    if file.is_file()
                }
                record = {**asdict(self.state), "fingerprint": self.fingerprint, "files": files}
                (staging / STATE_FILE).write_text(json.dumps(record, indent=1))
                commit_folder(staging, folder)
                self._prune()
        except BaseException as error:
            if accelerator.is_main_process:
                full = self._disk_full(error, folder, staging)  # before the cleanup frees the space
                shutil.rmtree(staging, ignore_errors=True)
                if full is not None:
                    raise full from error
            raise
        accelerator.wait_for_everyone()
        self._unchecked_checkpoint = folder
        return folder

    def _disk_full(self, error: BaseException, folder: Path, staging: Path):
        """`disk_full_error` of a failed checkpoint write: the folder, its free space, and the resume."""
        complete = self._own_checkpoints()
        keep = f"{complete[-1].name} is complete" if complete else "no checkpoint of this run is complete yet"
        fix = (
            f"Free space on that disk (or train in an output_dir, --output-dir, on a disk with room), then "
            f"resume with resume_from_checkpoint='latest' (--resume-from-checkpoint latest): {keep}."
        )
        return disk_full_error(error, folder.parent, folder.name, fix, written=folder_size(staging))

    def _own_checkpoints(self) -> list[Path]:
        """This run's complete checkpoints, oldest first."""
        return [c for c in self.list_checkpoints() if checkpoint_problem(c, self.fingerprint) is None]

    def _prune(self) -> None:
        for old in self._own_checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def list_checkpoints(self) -> list[Path]:
        return list_checkpoints(self.config.output_dir)

    # ------------------------------------------------------------------ the output folder

    def _on_main_process(self, function: Callable[[], Any], share_result: bool = True) -> Any:
        """Run `function` on the main process only; every process raises its error, and returns its
        result (`share_result`) or None (the main process: the result)."""
        result, error = None, None
        if self.accelerator.is_main_process:
            try:
                result = function()
            except Exception as caught:  # re-raised below, on every process
                error = caught
        if self.accelerator.num_processes > 1:
            shared = [result if share_result else None, error]
            broadcast_object_list(shared, from_process=0)
            if not self.accelerator.is_main_process:
                result, error = shared
            error = shared[1]
        if error is not None:
            raise error
        return result

    def _lock(self) -> FolderLock:
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

    def _prepare_output_dir(self) -> tuple[str | None, int]:
        """On the main process, holding the lock: clear what interrupted writes left, refuse a folder of
        another run (unless `overwrite_output_dir`), pick the checkpoint to resume, delete the
        checkpoints that will not be used, and record this run's fingerprint. Returns (the checkpoint
        to resume or None, the staging tag)."""
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
        resume = self._resolve_checkpoint(config.resume_from_checkpoint, checkpoints)
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
        return (str(resume) if resume is not None else None), os.getpid()

    def _resolve_checkpoint(self, name: str | None, checkpoints: list[Path]) -> Path | None:
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

    # ------------------------------------------------------------------ finite or fail

    def _checkpoints_text(self) -> str:
        """The last checkpoint known to be good (finite parameters that gave a finite loss), or none."""
        good, unchecked = self._good_checkpoint, self._unchecked_checkpoint
        if good is not None:
            text = (
                f"The last checkpoint known to be good (finite parameters that gave a finite loss) is {good}"
            )
        elif unchecked is not None and unchecked == self._resumed_from:
            text = f"No checkpoint is known to be good: this failure comes from the one resumed, {unchecked}"
            unchecked = None
        else:
            text = "No checkpoint of this run is known to be good"
        if unchecked is not None:
            text += f"; {unchecked.name}, saved after it, has finite parameters but gave no finite loss yet"
        return text + ". No checkpoint with non-finite parameters was saved"

    def _non_finite(
        self, error: type, what: str, stage_name: str, epoch: int, lr: float | None, detail: str = ""
    ) -> NonFiniteTrainingError:
        lr_text = f"learning rate {lr:.3g}" if lr is not None else "learning rate unknown"
        return error(
            f"{what} (stage {stage_name!r}, epoch {epoch}) with {lr_text}{detail}. "
            f"{self._checkpoints_text()}. Resuming with the same settings repeats the same steps: lower "
            "the learning rate, set max_grad_norm or check the inputs, then train afresh (a new "
            "output_dir, or overwrite_output_dir=True)."
        )

    def _finite_flags(self, parameters: list[torch.Tensor], loss: torch.Tensor | None) -> list[float]:
        """One host sync: [loss value, loss non-finite, each parameter non-finite] (flags summed over
        processes, so that every process stops at the same step)."""
        device = parameters[0].device if parameters else self.accelerator.device
        with torch.no_grad():
            bad = [overflowing(p) for p in parameters]
            if loss is not None:
                bad.insert(0, ~torch.isfinite(loss.detach()).all())
            flags = torch.stack(bad).float() if bad else torch.zeros(0, device=device)
            if self.accelerator.num_processes > 1:
                flags = self.accelerator.reduce(flags, "sum")
            value = (
                loss.detach().float().reshape(1) if loss is not None else torch.zeros(1, device=flags.device)
            )
            return torch.cat([value.to(flags.device), flags]).tolist()

    def _trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]

    def _check_parameters(self, when: str, stage_name: str | None = None) -> None:
        named = self._trainable()
        flags = self._finite_flags([p for _, p in named], None)[1:]
        bad = [name for (name, _), flag in zip(named, flags) if flag]
        if bad:
            epoch, lr = self._last_step or (self.state.epoch, None)
            raise self._non_finite(
                NonFiniteParametersError,
                f"The trainable parameters {', '.join(bad[:5])} are not finite {when}, after step "
                f"{self.state.global_step}",
                stage_name or self._stage_name,
                epoch,
                lr,
            )

    def _check_finite(self, loss: torch.Tensor, named, stage_name: str, lr: float) -> float:
        """Check the loss just computed and the parameters it was computed from (the last step's
        result); raise naming step, stage, epoch, learning rate and the last good checkpoint. Returns
        the loss value. A finite result confirms the checkpoint saved since the last check."""
        values = self._finite_flags([p for _, p in named], loss)
        value, loss_bad, params_bad = values[0], values[1], values[2:]
        bad = [name for (name, _), flag in zip(named, params_bad) if flag]
        step = self.state.global_step
        if bad and step > self._steps_at_start:
            epoch, step_lr = self._last_step or (self.state.epoch, None)
            raise self._non_finite(
                NonFiniteParametersError,
                f"Optimiser step {step} made the trainable parameters {', '.join(bad[:5])} non-finite",
                stage_name,
                epoch,
                step_lr,
            )
        if loss_bad:
            already = (
                f"; the trainable parameters were not finite already ({', '.join(bad[:5])})" if bad else ""
            )
            raise self._non_finite(
                NonFiniteLossError,
                f"The loss became {value} at step {step + 1}",
                stage_name,
                self.state.epoch,
                lr,
                already,
            )
        if self._unchecked_checkpoint is not None:
            self._good_checkpoint, self._unchecked_checkpoint = self._unchecked_checkpoint, None
        return value

    # ------------------------------------------------------------------ training

    def _optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        """The optimiser over parameter groups `{"params", "lr_scale"}` (the lr is set every step)."""
        config = self.config
        if config.optimizer == "sgd":
            return torch.optim.SGD(
                groups,
                lr=config.learning_rate,
                momentum=config.momentum,
                weight_decay=config.weight_decay,
            )
        return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)

    @staticmethod
    def _parameter_groups(model: torch.nn.Module, stage) -> list[dict]:
        """The stage's trainable parameters, one group per learning-rate scale (in first-seen order)."""
        groups: dict[float, list[torch.nn.Parameter]] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault(stage.learning_rate_scale(name), []).append(parameter)
        return [{"params": params, "lr_scale": scale} for scale, params in groups.items()]

    def train(self) -> TrainerState:
        """Run every training stage to the end (resuming first if configured).

        The main process holds a lock on `output_dir` throughout (`FolderLockedError` if another run
        holds it) and refuses a folder of another run (`RunMismatchError`, unless
        `overwrite_output_dir`); a non-finite loss or parameter stops training with a
        `NonFiniteTrainingError` before anything non-finite is saved.
        """
        config, accelerator = self.config, self.accelerator
        self._check_augment_views()  # before the output folder is touched
        self._warn_unused_views()
        set_seed(config.seed)
        self.settings = self.run_settings()  # the config as it is now
        self.fingerprint = fingerprint_hash(self.settings)
        lock = self._on_main_process(self._lock, share_result=False)
        # checkpoints hold the adapter only; the hooks live while this trainer trains (an accelerator can be shared)
        hooks = [
            accelerator.register_save_state_pre_hook(self._save_adapter_only),
            accelerator.register_load_state_pre_hook(self._load_adapter_only),
        ]
        try:
            resume, self._staging_tag = self._on_main_process(self._prepare_output_dir)
            self._train(Path(resume) if resume is not None else None)
        finally:
            for hook in hooks:
                hook.remove()
            if lock is not None and accelerator.is_main_process:
                lock.release()
        return self.state

    def _train(self, resume: Path | None) -> None:
        config, accelerator = self.config, self.accelerator
        self._stage_name = None
        if resume is not None:
            record = json.loads((resume / STATE_FILE).read_text())
            names = {f.name for f in dataclasses.fields(TrainerState)}
            self.state = TrainerState(**{key: value for key, value in record.items() if key in names})
            self._resumed_from = self._unchecked_checkpoint = resume
            logger.info(
                "resumed from %s (stage %d, epoch %d, step %d of the epoch, %d steps done)",
                resume, self.state.stage, self.state.epoch, self.state.step_in_epoch, self.state.global_step,
            )  # fmt: skip
        self._steps_at_start = self.state.global_step
        if config.report_to:
            accelerator.init_trackers("hf_prompt_clip", config=tracker_config(asdict(config)))
        stages = self.model.training_stages()
        for stage_index in range(self.state.stage, len(stages)):
            self._train_stage(
                stage_index, stages[stage_index], resume if stage_index == self.state.stage else None
            )
            resume = None
        for tracker in accelerator.trackers:  # not end_training(): it ends the process group too
            tracker.finish()

    def fit_data(self) -> FitData:
        """What a `"fit"` stage reads: the training set through both transforms, the validation set, the
        feature cache, and how this run encodes (device, precision, batch size, seed)."""
        if self.train_eval_dataset is None:
            raise ValueError(
                f"{type(self.model).__name__} fits on the training images through the test transform: pass "
                "PromptTrainer(..., train_eval_dataset=with_image_transform(train, eval_transform(processor)))."
            )
        return FitData(
            train=self.train_eval_dataset,
            validation=self.validation_dataset,
            train_views=self.train_dataset,
            collate_fn=self.collate_fn,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
            device=self.accelerator.device,
            precision=self.config.mixed_precision,
            autocast=self.accelerator.autocast,
            cache=self.feature_cache,
            processes=ProcessShards.of(self.accelerator),
        )

    def _fit_stage(self, stage_index: int, stage, resume: Path | None) -> None:
        """Run a `"fit"` stage: `model.fit(self.fit_data())` on every process (no optimiser), the main
        process's adapter and the config values the fit set shared, then one checkpoint. A checkpoint
        written after the fit is resumed without fitting again (the config values come from its log)."""
        accelerator, model = self.accelerator, self.model
        model.to(accelerator.device)
        if resume is not None:
            accelerator.load_state(str(resume))
        else:
            self.state.stage, self.state.epoch, self.state.step_in_epoch = stage_index, 0, 0
        if self.state.epoch >= 1:
            done = next(e for e in reversed(self.state.log) if e["stage"] == stage.name and "fit" in e)
            self._set_options(done.get("config") or {})
            logger.info("fit stage %r: already done in %s", stage.name, resume)
        else:
            logger.info(
                "fit stage %r (%d of %d): fitting %s on frozen image features%s",
                stage.name, stage_index + 1, len(model.training_stages()), type(model).__name__,
                "" if accelerator.num_processes == 1 else (
                    " (the processes share encoding the images; every process fits; the main process's result "
                    "is kept)"
                ),
            )  # fmt: skip
            before = self._options()
            model.eval()
            record = model.fit(self.fit_data())  # a fit may take gradients of its own (Tip-Adapter-F)
            changed = {key: value for key, value in self._options().items() if before[key] != value}
            record, changed = self._share_fit(record, changed)
            entry = {
                "stage": stage.name,
                "epoch": 0,
                "loss": None,
                "lr": None,
                "fit": record,
                "config": changed,
            }
            self.state.log.append(json.loads(json.dumps(entry, default=str)))
            logger.info("fit stage %r done: %s", stage.name, json.dumps(record, default=str))
            self.state.epoch = 1
            self.save_checkpoint()
        self._check_parameters("at the end of the stage", stage.name)
        self.state.stage = stage_index + 1
        self.state.epoch = 0
        model.eval()

    def _options(self) -> dict[str, Any]:
        """The model's option values (its config fields), but its class list."""
        config = self.model.config
        return {
            key: getattr(config, key)
            for key in option_types(type(config))
            if key not in ("class_names", "prompt_names")
        }

    def _set_options(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self.model.config, key, value)

    def _share_fit(self, record: dict, changed: dict[str, Any]) -> tuple[dict, dict[str, Any]]:
        """With several processes: the main process's fit (its adapter tensors and the config values it set)
        on every process. Each process fitted the same data; this makes them exactly equal."""
        accelerator = self.accelerator
        if accelerator.num_processes == 1:
            return record, changed
        shared = [record, changed]
        broadcast_object_list(shared, from_process=0)
        record, changed = shared
        self._set_options(changed)
        state = self.model.adapter_state_dict()
        self.model.load_adapter_state_dict(
            {
                key: broadcast(value.detach().clone().contiguous(), from_process=0)
                for key, value in state.items()
            },
            source="the main process's fit",
        )
        return record, changed

    def _step(
        self, model, optimizer, parameters, inputs: dict[str, torch.Tensor], stage_name: str, lr: float
    ) -> tuple[torch.Tensor, float]:
        """One forward/backward (and, at accumulation boundaries, optimiser) step on `inputs` (`pixel_values`
        or `image_features`, and `labels`); returns the loss and its value. The loss and the parameters it
        was computed from are checked first (one host sync)."""
        accelerator = self.accelerator
        with accelerator.accumulate(model):
            loss = model(**inputs).loss
            value = self._check_finite(loss, parameters, stage_name, lr)
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.config.max_grad_norm is not None:
                accelerator.clip_grad_norm_([p for _, p in parameters], self.config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        if accelerator.sync_gradients:
            self._last_step = (self.state.epoch, lr)
        return loss.detach(), value

    def _check_augment_views(self) -> None:
        """Refuse `augment_views` for a model with gradient stages that cannot train from cached features
        (asked of the model: `capabilities.cached_features_problem`), before anything is written."""
        views, model = self.config.augment_views, self.model
        if views is None or all(stage.kind != "gradient" for stage in model.training_stages()):
            return
        problem = model.capabilities.cached_features_problem
        if problem is not None:
            raise ValueError(self._augment_views_refusal(f"{type(model).__name__} cannot: {problem}."))

    @property
    def views_used(self) -> int | None:
        """The augmented views this run encodes and trains on (`augment_views_used`), `None` without them."""
        return augment_views_used(self.config, self.model.training_stages())

    def _warn_unused_views(self) -> None:
        """Warn when fewer views are used than asked (`augment_views_used`: no more than the epochs)."""
        asked, used = self.config.augment_views, self.views_used
        if used is not None and used < asked:  # then `used` is the longest gradient stage's epochs
            logger.warning(
                "augment_views=%d asked, but the longest training stage runs %d epoch%s and epoch e reads view "
                "e: %d view%s encoded and used, recorded as augment_views %d (one view per epoch: what the "
                "default path trains). Train %d or more epochs to use %d views.",
                asked, used, "s" if used != 1 else "", used, "s" if used != 1 else "", used, asked, asked,
            )  # fmt: skip

    def _augment_views_refusal(self, reason: str) -> str:
        return (
            f"augment_views={self.config.augment_views} trains on cached image features, which needs a frozen "
            f"image path, but {reason} Train {type(self.model).__name__} without augment_views (drop "
            "--augment-views): it then draws a fresh augmentation every epoch."
        )

    def training_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented views of every training example a run trains on (`views_used`: `config.augment_views`,
        but no more than the longest gradient stage's epochs), as frozen image features.

        View `v` of example `i` is the image the pixel path shows in epoch `v` (`SeededViews` with the run's
        seed, `view_seed(seed, v, i)`), encoded once through the feature cache by the model's
        `training_image_encoder()` (without autograd, under the run's autocast); a resumed run, or another
        stage, reads the same views again (from memory, or from the cache's folder).

        Returns:
            features `(V, N, E)` float32 (`V = views_used`) and labels `(N,)`, on the accelerator's device.

        Raises:
            ValueError: `augment_views` is not set, or the model's image path is not frozen (its
                `FrozenFeaturesUnavailable` reason, with what to do).
        """
        config, model = self.config, self.model
        if config.augment_views is None:
            raise ValueError(
                "training_views() reads config.augment_views, which is None: set augment_views=V."
            )
        try:
            encoder, encode = model.training_image_encoder()
        except FrozenFeaturesUnavailable as error:
            raise ValueError(self._augment_views_refusal(str(error))) from None
        was_training = model.training
        model.eval()  # the frozen tower runs as in the pixel path (frozen parts are in eval mode there too)
        try:
            views, labels = self.feature_cache.features(
                encode,
                encoder,
                self.train_dataset,
                collate_fn=self.collate_fn,
                batch_size=config.batch_size,
                seed=config.seed,
                views=range(self.views_used or config.augment_views),
                precision=config.mixed_precision,
                autocast=self.accelerator.autocast,
                processes=ProcessShards.of(self.accelerator),
            )
        finally:
            model.train(was_training)
        device = self.accelerator.device
        return views.to(device), labels.to(device)

    def _train_stage(self, stage_index, stage, resume: Path | None) -> None:
        config, accelerator = self.config, self.accelerator
        model = self.model
        self._stage_name = stage.name
        trainable = model.set_training_stage(stage)
        if not trainable:
            raise ValueError(
                f"Training stage {stage.name!r} names no trainable parameter of {type(model).__name__}: "
                "a model without learned parameters (zero-shot CLIP) needs no training; evaluate it "
                "directly (hf_prompt_clip.evaluate)."
            )
        if stage.kind == "fit":
            self._fit_stage(stage_index, stage, resume)
            return
        parameters = self._trainable()
        optimizer = self._optimizer(self._parameter_groups(model, stage))
        cached = config.augment_views is not None
        if cached:  # batches of example indices, in the order the pixel path would load the examples
            examples = ExampleIndices(len(self.train_dataset))
            loader = DataLoader(examples, batch_size=config.batch_size, shuffle=True, drop_last=False)
        else:
            examples = EpochSeededDataset(self.train_dataset, config.seed)
            loader = DataLoader(
                examples,
                batch_size=config.batch_size,
                shuffle=True,
                collate_fn=self.collate_fn,
                num_workers=config.num_workers,
                drop_last=False,
            )
        model_prepared, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        if resume is not None:
            accelerator.load_state(str(resume))
        else:
            self.state.stage, self.state.epoch, self.state.step_in_epoch = stage_index, 0, 0
        views = labels = None
        if cached:  # every view of every example encoded once (each process encodes its shard; all get all)
            views, labels = self.training_views()
            used = len(views)
        epochs = stage.epochs or config.epochs
        base_lr = stage.learning_rate or config.learning_rate
        steps_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
        logger.info(
            "training stage %r (%d of %d): %d epochs x %d steps = %d steps of %d x %d processes x %d "
            "accumulated images; %s, lr %.3g (%s schedule); %d trainable tensors",
            stage.name, stage_index + 1, len(self.model.training_stages()), epochs, steps_per_epoch,
            epochs * steps_per_epoch, config.batch_size, accelerator.num_processes,
            config.gradient_accumulation_steps, config.optimizer, base_lr, config.lr_schedule, len(parameters),
        )  # fmt: skip
        if cached:
            logger.info(
                "training on %d cached augmented views of each of the %d images (epoch e reads view e mod %d; "
                "%s%s)", used, len(self.train_dataset), used,
                self.feature_cache.summary(),
                "" if accelerator.num_processes == 1
                else f"; this process encoded its shard, 1/{accelerator.num_processes} of the images",
            )  # fmt: skip
        progress = tqdm(
            total=epochs * steps_per_epoch,
            initial=self.state.epoch * steps_per_epoch + self.state.step_in_epoch,
            desc=f"training {stage.name}",
            disable=not accelerator.is_local_main_process,
        )

        def lr_now() -> float:
            return learning_rate(
                config.lr_schedule, base_lr, self.state.epoch, epochs, self.state.step_in_epoch,
                steps_per_epoch, config.warmup_epochs, config.warmup_lr,
            )  # fmt: skip

        def saves_at_epoch_end(epoch: int) -> bool:  # epoch: the number of epochs done
            return epoch % config.checkpoint_every_epochs == 0 or epoch == epochs

        model_prepared.train()
        while self.state.epoch < epochs:
            loader.set_epoch(self.state.epoch)
            if cached:
                features = views[self.state.epoch % used]
            else:
                examples.set_epoch(self.state.epoch)
            lr = lr_now()
            done = self.state.step_in_epoch * config.gradient_accumulation_steps
            losses = []
            for batch in accelerator.skip_first_batches(loader, done) if done else loader:
                lr = lr_now()
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                if cached:
                    rows = batch.to(features.device)
                    inputs = {"image_features": features[rows], "labels": labels[rows]}
                else:
                    inputs = {"pixel_values": batch["pixel_values"], "labels": batch["labels"]}
                loss, value = self._step(model_prepared, optimizer, parameters, inputs, stage.name, lr)
                losses.append(loss)
                if accelerator.sync_gradients:
                    self.state.step_in_epoch += 1
                    self.state.global_step += 1
                    progress.update(1)
                    progress.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
                    epoch_checkpoint_follows = (
                        self.state.step_in_epoch >= steps_per_epoch
                        and saves_at_epoch_end(self.state.epoch + 1)
                    )
                    if (
                        config.checkpoint_every_steps
                        and self.state.global_step % config.checkpoint_every_steps == 0
                        and not epoch_checkpoint_follows
                    ):
                        self.save_checkpoint()
            mean_loss = accelerator.gather(torch.stack(losses).mean()).mean().item() if losses else None
            self.state.log.append(
                {"stage": stage.name, "epoch": self.state.epoch, "loss": mean_loss, "lr": lr}
            )
            if mean_loss is not None:
                accelerator.log({"train/loss": mean_loss, "train/lr": lr}, step=self.state.global_step)
            self.state.epoch += 1
            self.state.step_in_epoch = 0
            if saves_at_epoch_end(self.state.epoch):
                self.save_checkpoint()
        progress.close()
        self._check_parameters("at the end of the stage", stage.name)
        last = next(
            (entry["loss"] for entry in reversed(self.state.log) if entry["stage"] == stage.name), None
        )
        logger.info(
            "stage %r done after %d steps%s", stage.name, self.state.global_step,
            f"; last epoch's mean loss {last:.4f}" if last is not None else "",
        )  # fmt: skip
        self.state.stage = stage_index + 1
        self.state.epoch = 0
        model_prepared.eval()
        accelerator.free_memory()
