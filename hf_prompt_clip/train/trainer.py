"""A method-agnostic training loop on Accelerate, with adapter-only checkpoints that resume exactly.

The loop knows nothing about methods: it asks the model for its training stages
(`model.training_stages()`) and trains, in each, exactly the parameters the stage names.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..core.logs import main_process_logger
from ..core.modeling import PromptCLIPPreTrainedModel
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
        resume_from_checkpoint: a checkpoint folder, or `"latest"` for the newest in `output_dir`.
        num_workers: DataLoader workers.
        report_to: trackers for `Accelerator(log_with=...)` (`[]`: none).
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
    num_workers: int = 0
    report_to: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}.")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}.")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")


@dataclass
class TrainerState:
    """Where training stands; saved with every checkpoint."""

    stage: int = 0
    epoch: int = 0
    step_in_epoch: int = 0  # optimisation steps done in the current epoch
    global_step: int = 0
    log: list[dict] = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints that a trainer with this `output_dir` saved, oldest first."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


class EpochSeededDataset(Dataset):
    """Draws each example's random augmentation from a seed of (run seed, epoch, index).

    Augmentations then depend on neither the order in which batches are loaded (Accelerate
    prefetches one ahead), nor a resume in the middle of an epoch, nor the number of processes:
    an interrupted run resumes exactly and two processes see what one would.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + int(index))
            return self.dataset[index]


class PromptTrainer:
    """Trains a prompt learner's adapter on a dataset of `{"pixel_values", "labels"}` examples.

    Args:
        model: any `PromptCLIPPreTrainedModel`.
        train_dataset: a map-style dataset whose items `collate_fn` turns into a batch dict with
            `pixel_values` and `labels`.
        config: a `TrainingConfig`.
        collate_fn: batches examples (default: torch's).
        accelerator: an `Accelerator` to use; one is built from the config when omitted.

    Example:
        ```python
        trainer = PromptTrainer(model, train_set, TrainingConfig(epochs=10), collate_fn=collate_fn)
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
    ):
        self.model = model
        self.train_dataset = train_dataset
        self.config = config
        self.collate_fn = collate_fn
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=config.report_to or None,
            project_config=ProjectConfiguration(project_dir=config.output_dir),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
        )
        self.state = TrainerState()
        self.checkpoint_dir = Path(config.output_dir) / CHECKPOINT_DIR
        self.accelerator.register_save_state_pre_hook(self._save_adapter_only)
        self.accelerator.register_load_state_pre_hook(self._load_adapter_only)

    # ------------------------------------------------------------------ checkpoint hooks

    def _save_adapter_only(self, models, weights, output_dir) -> None:
        # Accelerate would write the whole frozen CLIP (under the wrapper's key prefix, if any);
        # write the adapter tensors under their own names instead.
        for model, state_dict in zip(models, weights):
            adapter = self.accelerator.unwrap_model(model).adapter_state_dict()
            state_dict.clear()
            state_dict.update({key: value.detach() for key, value in adapter.items()})

    def _load_adapter_only(self, models, input_dir) -> None:
        for index in reversed(range(len(models))):
            name = ADAPTER_FILE if index == 0 else f"model_{index}.safetensors"
            unwrapped = self.accelerator.unwrap_model(models[index])
            unwrapped.load_adapter_state_dict(load_file(os.path.join(input_dir, name)), source=input_dir)
            models.pop(index)

    def save_checkpoint(self) -> Path:
        """Save adapter, optimiser, RNG states and the trainer state; prune old checkpoints."""
        folder = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.state.global_step}"
        self.accelerator.save_state(str(folder))
        if self.accelerator.is_main_process:
            (folder / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1))
            for old in self.list_checkpoints()[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return folder

    def list_checkpoints(self) -> list[Path]:
        return list_checkpoints(self.config.output_dir)

    def _resolve_checkpoint(self, name: str) -> Path:
        if name == "latest":
            checkpoints = self.list_checkpoints()
            if not checkpoints:
                raise FileNotFoundError(
                    f"resume_from_checkpoint='latest' but {self.checkpoint_dir} holds no checkpoint. "
                    "Start without resuming, or point at the run's output_dir."
                )
            return checkpoints[-1]
        path = Path(name)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a checkpoint of this trainer (no {STATE_FILE}).")
        return path

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
        """Run every training stage to the end (resuming first if configured)."""
        config, accelerator = self.config, self.accelerator
        set_seed(config.seed)
        resume = (
            self._resolve_checkpoint(config.resume_from_checkpoint) if config.resume_from_checkpoint else None
        )
        if resume is not None:
            self.state = TrainerState(**json.loads((resume / STATE_FILE).read_text()))
            logger.info(
                "resumed from %s (stage %d, epoch %d, step %d of the epoch, %d steps done)",
                resume, self.state.stage, self.state.epoch, self.state.step_in_epoch, self.state.global_step,
            )  # fmt: skip
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
        return self.state

    def _step(self, model, optimizer, parameters, batch, stage_name: str) -> torch.Tensor:
        """One forward/backward (and, at accumulation boundaries, optimiser) step; returns the loss."""
        accelerator = self.accelerator
        with accelerator.accumulate(model):
            loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"The loss became {loss.item()} at step {self.state.global_step + 1} (stage "
                    f"{stage_name!r}, epoch {self.state.epoch}). Lower the learning rate, set "
                    "max_grad_norm, or check the inputs; resume from the last checkpoint with "
                    "resume_from_checkpoint='latest'."
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(parameters, self.config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        return loss.detach()

    def _train_stage(self, stage_index, stage, resume: Path | None) -> None:
        config, accelerator = self.config, self.accelerator
        model = self.model
        trainable = model.set_training_stage(stage)
        if not trainable:
            raise ValueError(
                f"Training stage {stage.name!r} names no trainable parameter of {type(model).__name__}: "
                "a model without learned parameters (zero-shot CLIP) needs no training; evaluate it "
                "directly (hf_prompt_clip.evaluate)."
            )
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = self._optimizer(self._parameter_groups(model, stage))
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

        model_prepared.train()
        while self.state.epoch < epochs:
            loader.set_epoch(self.state.epoch)
            examples.set_epoch(self.state.epoch)
            lr = lr_now()
            done = self.state.step_in_epoch * config.gradient_accumulation_steps
            losses = []
            for batch in accelerator.skip_first_batches(loader, done) if done else loader:
                lr = lr_now()
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                loss = self._step(model_prepared, optimizer, parameters, batch, stage.name)
                losses.append(loss)
                if accelerator.sync_gradients:
                    self.state.step_in_epoch += 1
                    self.state.global_step += 1
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
                    if (
                        config.checkpoint_every_steps
                        and self.state.global_step % config.checkpoint_every_steps == 0
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
            if self.state.epoch % config.checkpoint_every_epochs == 0 or self.state.epoch == epochs:
                self.save_checkpoint()
        progress.close()
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
