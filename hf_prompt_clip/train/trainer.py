"""The training loop: `PromptTrainer` trains a model's stages on Accelerate, with adapter-only checkpoints
that resume exactly.

Room: the loop. The loop knows nothing about methods: it asks the model for its training stages
(`model.training_stages()`) and trains, in each, exactly the parameters the stage names: a gradient stage
step by step (`_train_stage`, `_step`), a fit stage by `model.fit` (`_fit_stage`). It holds `PromptTrainer`
and `EpochSeededDataset` (the pixel path's augmentation, seeded per epoch and example). The rest of a run
lives in the modules the trainer holds, one job each:

- `config.py`: `TrainingConfig` and the settings a run used (`settings_used`);
- `fingerprint.py`: the run's identity (`run_settings`, `fingerprint_hash`);
- `run_folder.py`: the output folder (`RunFolder`: the lock, a folder of another run refused, the checkpoint
  to resume, crash-safe checkpoints written into a staging folder and renamed into place, pruning);
- `guards.py`: finite or fail (`FiniteGuard`: training stops with an error when the loss or the trainable
  parameters stop being finite, before anything non-finite is saved, naming the last good checkpoint);
- `cached_views.py`: gradient stages on cached augmented views (`augment_views`);
- `fit_stage.py`: what the loop does around `model.fit` in a fit stage;
- `epoch_average.py`: a stage whose result is a weighted average of its epochs (`TrainingStage.epoch_average`):
  the running sum (`EpochSum`), kept in every checkpoint.

`hf_prompt_clip.train` exports the public names of all of them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset

from ..caching.feature_cache import ImageFeatureCache, ProcessShards, SeededViews
from ..modeling.fitting import FitData
from ..modeling.model import PromptCLIPPreTrainedModel
from ..utils.logs import main_process_logger, progress_bar
from .accelerator import training_accelerator
from .cached_views import ExampleIndices, check_augment_views, training_views, warn_unused_views
from .config import TrainingConfig, augment_views_used, tracker_config
from .epoch_average import EpochSum
from .fingerprint import run_settings
from .fit_stage import fit_model, set_model_options
from .guards import FiniteGuard
from .run_folder import (
    RunFolder,
    TrainerState,
    adapter_only_checkpoints,
    list_checkpoints,
    load_trainer_state,
    on_main_process,
)
from .schedule import learning_rate

logger = main_process_logger(__name__)


def torch_rng_state() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """torch's CPU random state and every CUDA device's (the draws of dropout in a model's forward)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def set_torch_rng_state(state: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    """Restore `torch_rng_state()`'s states."""
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


class EpochSeededDataset(SeededViews):
    """Draws each example's random augmentation from a seed of (run seed, epoch, index): epoch `e` shows
    view `e` of every example (`caching.feature_cache.view_seed`, the views the feature cache keeps).

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

    Attributes:
        state: where training stands (`TrainerState`), saved with every checkpoint.
        folder: the output folder (`RunFolder`: lock, fingerprint, checkpoints), made again by `train()`.
        guard: the finite checks and the last good checkpoint (`FiniteGuard`).
        settings / fingerprint / output_dir / checkpoint_dir: the folder's.

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
        self.folder = RunFolder(config, self.run_settings())  # made again by train(), from the config then
        self.guard = FiniteGuard(self.accelerator)
        self._stage_name: str | None = None
        self.epoch_sum: EpochSum | None = None  # the running epoch average of a stage that has one

    # ------------------------------------------------------------------ the run's identity and folder

    def run_settings(self) -> dict[str, Any]:
        """What defines this run's result, as JSON values: the `TrainingConfig` fields that matter (not
        `NOT_IN_FINGERPRINT`), the model type, its training stages, the number of training examples and
        of processes (the global batch), and the caller's `fingerprint`. Its hash is the fingerprint."""
        validation = None if self.validation_dataset is None else len(self.validation_dataset)
        return run_settings(
            self.config,
            self.model,
            len(self.train_dataset),
            validation,
            self.accelerator.num_processes,
            self.caller_fingerprint,
        )

    @property
    def settings(self) -> dict[str, Any]:
        """This run's settings (`run_settings`, as of the construction or the last `train()`)."""
        return self.folder.settings

    @property
    def fingerprint(self) -> str:
        """The hash of `settings` (`fingerprint_hash`): the run's identity in its folder and checkpoints."""
        return self.folder.fingerprint

    @property
    def output_dir(self) -> Path:
        return self.folder.output_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder.checkpoint_dir

    def list_checkpoints(self) -> list[Path]:
        return list_checkpoints(self.config.output_dir)

    def save_checkpoint(self) -> Path:
        """Save adapter, optimiser, RNG states and the trainer state; prune this run's old checkpoints
        (`RunFolder.save`: written into a staging folder renamed into place once complete, so a kill at any
        moment leaves the previous checkpoints as they were). Refused (`NonFiniteParametersError`) when a
        trainable parameter is not finite."""
        self._check_parameters(f"before saving checkpoint-{self.state.global_step}")
        folder = self.folder.save(
            self.accelerator,
            self.model,
            self.state,
            write_extra=None if self.epoch_sum is None else self.epoch_sum.save,
        )
        self.guard.saved(folder)
        return folder

    def _load_checkpoint(self, checkpoint: Path) -> None:
        """Load a checkpoint's adapter, optimiser and RNG states into the prepared objects."""
        with adapter_only_checkpoints(self.accelerator, self.model):
            self.accelerator.load_state(str(checkpoint))

    # ------------------------------------------------------------------ finite or fail

    def _trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]

    def _check_parameters(self, when: str, stage_name: str | None = None) -> None:
        self.guard.check_parameters(
            self._trainable(), when, stage_name or self._stage_name, self.state.global_step, self.state.epoch
        )

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
        check_augment_views(config, self.model)  # before the output folder is touched
        warn_unused_views(config, self.views_used)
        set_seed(config.seed)
        self.folder = folder = RunFolder(config, self.run_settings())  # the config as it is now
        lock = on_main_process(accelerator, folder.lock, share_result=False)
        try:  # the main process's id tags the staging folders of every process
            resume, folder.staging_tag = on_main_process(accelerator, lambda: (folder.prepare(), os.getpid()))
            self._train(Path(resume) if resume is not None else None)
        finally:
            if lock is not None and accelerator.is_main_process:
                lock.release()
        return self.state

    def _train(self, resume: Path | None) -> None:
        config, accelerator = self.config, self.accelerator
        self._stage_name = None
        if resume is not None:
            self.state = load_trainer_state(resume)
            logger.info(
                "resumed from %s (stage %d, epoch %d, step %d of the epoch, %d steps done)",
                resume, self.state.stage, self.state.epoch, self.state.step_in_epoch, self.state.global_step,
            )  # fmt: skip
        self.guard.start(self.state.global_step, resume)
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
            num_workers=self.config.num_workers,
        )

    def _fit_stage(self, stage_index: int, stage, resume: Path | None) -> None:
        """Run a `"fit"` stage: `model.fit(self.fit_data())` on every process (no optimiser), the main
        process's adapter and the config values the fit set shared, then one checkpoint. A checkpoint
        written after the fit is resumed without fitting again (the config values come from its log)."""
        accelerator, model = self.accelerator, self.model
        model.to(accelerator.device)
        if resume is not None:
            self._load_checkpoint(resume)
        else:
            self.state.stage, self.state.epoch, self.state.step_in_epoch = stage_index, 0, 0
        if self.state.epoch >= 1:
            done = next(e for e in reversed(self.state.log) if e["stage"] == stage.name and "fit" in e)
            set_model_options(model, done.get("config") or {})
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
            record, changed = fit_model(model, self.fit_data(), accelerator)
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

    def _step(
        self, model, optimizer, parameters, inputs: dict[str, torch.Tensor], stage_name: str, lr: float
    ) -> tuple[torch.Tensor, float]:
        """One forward/backward (and, at accumulation boundaries, optimiser) step on `inputs` (`pixel_values`
        or `image_features`, and `labels`); returns the loss and its value. The loss and the parameters it
        was computed from are checked first (one host sync)."""
        accelerator = self.accelerator
        with accelerator.accumulate(model):
            loss = model(**inputs).loss
            value = self.guard.check_step(
                loss, parameters, stage_name, lr, self.state.global_step, self.state.epoch
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.config.max_grad_norm is not None:
                accelerator.clip_grad_norm_([p for _, p in parameters], self.config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        if accelerator.sync_gradients:
            self.guard.stepped(self.state.epoch, lr)
        return loss.detach(), value

    # ------------------------------------------------------------------ cached views (`cached_views.py`)

    @property
    def views_used(self) -> int | None:
        """The augmented views this run encodes and trains on (`augment_views_used`), `None` without them."""
        return augment_views_used(self.config, self.model.training_stages())

    def training_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented views of every training example this run trains on, as frozen image features
        (`cached_views.training_views` with this run's data, cache and accelerator).

        Returns:
            features `(V, N, E)` float32 (`V = views_used`) and labels `(N,)`, on the accelerator's device.

        Raises:
            ValueError: `augment_views` is not set, or the model's image path is not frozen.
        """
        return training_views(
            self.model, self.train_dataset, self.config, self.feature_cache, self.accelerator, self.collate_fn
        )

    def _add_epoch_to_average(self, stage_name: str) -> None:
        """After an epoch of a stage with an epoch average: add the trained tensors with the epoch's weight to
        the running sum; after the last epoch, load the average into the model (the stage's result, which the
        last checkpoint then holds)."""
        trained = self._trainable()
        self.epoch_sum.add(trained)
        if self.epoch_sum.complete:
            self.epoch_sum.load_into(trained)
            logger.info(
                "stage %r: its result is the weighted average of its %d epochs (weights %s)",
                stage_name, len(self.epoch_sum.weights),
                ", ".join(f"{w:.3g}" for w in self.epoch_sum.weights),
            )  # fmt: skip

    def _train_stage(self, stage_index, stage, resume: Path | None) -> None:
        config, accelerator = self.config, self.accelerator
        model = self.model
        self._stage_name = stage.name
        self.epoch_sum = None  # a stage's running epoch average is its own
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
        # Dassl's rule: the last incomplete batch goes, but a set smaller than one batch is kept whole; with
        # several processes Accelerate drops the last incomplete round of batches, so one round is the unit
        rounds = config.batch_size * accelerator.num_processes
        drop_last = config.drop_last and len(self.train_dataset) >= rounds
        if cached:  # batches of example indices, in the order the pixel path would load the examples
            examples = ExampleIndices(len(self.train_dataset))
            loader = DataLoader(examples, batch_size=config.batch_size, shuffle=True, drop_last=drop_last)
        else:
            examples = EpochSeededDataset(self.train_dataset, config.seed)
            loader = DataLoader(
                examples,
                batch_size=config.batch_size,
                shuffle=True,
                collate_fn=self.collate_fn,
                num_workers=config.num_workers,
                drop_last=drop_last,
            )
        model_prepared, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        steps_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
        if steps_per_epoch == 0:
            raise ValueError(
                f"training stage {stage.name!r} has no batch to train on: {len(self.train_dataset)} training "
                f"examples, batch size {config.batch_size} x {accelerator.num_processes} processes; give a "
                "smaller batch size or fewer processes."
            )
        max_steps = config.max_steps  # whole epochs, or a number of steps that ends inside the last epoch
        epochs = (
            stage.epochs or config.epochs if max_steps is None else math.ceil(max_steps / steps_per_epoch)
        )
        weights = stage.epoch_weights(epochs)
        self.epoch_sum = None if weights is None else EpochSum(weights)
        resumed_rng = None
        if resume is not None:
            self._load_checkpoint(resume)
            # the random state the checkpoint saved: starting the data loader's iteration draws from it (the
            # sampler's seed), which a run interrupted mid-epoch did before the checkpoint
            resumed_rng = torch_rng_state()
            if self.epoch_sum is not None:  # the sum of the epochs done, as the checkpoint holds it
                self.epoch_sum.load(resume, self.state.epoch, accelerator.device)
        else:
            self.state.stage, self.state.epoch, self.state.step_in_epoch = stage_index, 0, 0
        views = labels = None
        if cached:  # every view of every example encoded once (each process encodes its shard; all get all)
            views, labels = self.training_views()
            used = len(views)
        base_lr = stage.learning_rate or config.learning_rate
        total_steps = epochs * steps_per_epoch if max_steps is None else max_steps
        logger.info(
            "training stage %r (%d of %d): %d epochs x %d steps = %d steps of %d x %d processes x %d "
            "accumulated images; %s, lr %.3g (%s schedule); %d trainable tensors",
            stage.name, stage_index + 1, len(self.model.training_stages()), epochs, steps_per_epoch,
            total_steps, config.batch_size, accelerator.num_processes,
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
        progress = progress_bar(
            total=total_steps,
            initial=self.state.epoch * steps_per_epoch + self.state.step_in_epoch,
            desc=f"training {stage.name}",
            unit="step",
            leave=True,
        )

        def lr_now() -> float:
            return learning_rate(
                config.lr_schedule, base_lr, self.state.epoch, epochs, self.state.step_in_epoch,
                steps_per_epoch, config.warmup_epochs, config.warmup_lr, config.min_lr, total_steps,
            )  # fmt: skip

        def stage_steps() -> int:  # optimisation steps of this stage done
            return self.state.epoch * steps_per_epoch + self.state.step_in_epoch

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
            # resumed mid-epoch: the random draws in the model (dropout) go on from the checkpoint's state, which
            # the uninterrupted run reached after starting this epoch's iteration (at an epoch's start, both runs
            # start it from the checkpoint's state: nothing to restore)
            restore_rng, resumed_rng = (resumed_rng if done else None), None
            losses = []
            batches = accelerator.skip_first_batches(loader, done) if done else loader
            for batch in batches:
                if restore_rng is not None:
                    set_torch_rng_state(restore_rng)
                    restore_rng = None
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
                        self.state.step_in_epoch >= steps_per_epoch or stage_steps() >= total_steps
                    ) and saves_at_epoch_end(self.state.epoch + 1)
                    if (
                        config.checkpoint_every_steps
                        and self.state.global_step % config.checkpoint_every_steps == 0
                        and not epoch_checkpoint_follows
                    ):
                        self.save_checkpoint()
                    if stage_steps() >= total_steps:  # max_steps reached inside the last epoch
                        if hasattr(
                            batches, "end"
                        ):  # what finishing its iteration does: Accelerate forgets it
                            batches.end()
                        break
            mean_loss = accelerator.gather(torch.stack(losses).mean()).mean().item() if losses else None
            self.state.log.append(
                {"stage": stage.name, "epoch": self.state.epoch, "loss": mean_loss, "lr": lr}
            )
            if mean_loss is not None:
                accelerator.log({"train/loss": mean_loss, "train/lr": lr}, step=self.state.global_step)
            self.state.epoch += 1
            self.state.step_in_epoch = 0
            if self.epoch_sum is not None:
                self._add_epoch_to_average(stage.name)
            if saves_at_epoch_end(self.state.epoch):
                self.save_checkpoint()
        progress.close()
        self.epoch_sum = None
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
