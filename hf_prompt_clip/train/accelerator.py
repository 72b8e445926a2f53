"""The Accelerator of a training run: built for one (`training_accelerator`), or one shared by a whole
process set up for one training run and restored after it (`accelerator_for`).

Room: training. A run (`hf_prompt_clip.experiment`) builds one `Accelerator` per process and hands it to
every seed's `PromptTrainer` and to evaluation; what differs between seeds is set on it for each training
and put back afterwards, so each seed trains exactly as with an Accelerator of its own:

- the data order: `DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)` (Accelerate reads
  `accelerator.dataloader_config` when a loader is prepared);
- the gradient accumulation steps (`accelerator.gradient_accumulation_steps`);
- the trackers: `log_with` = the config's `report_to`, logging into the seed's folder
  (`project_configuration`), a fresh list of started trackers (`init_trackers` once per seed);
- nothing prepared before (evaluation loaders) is held, so a checkpoint saves only this training's state
  (`free_memory` before and after).

Mixed precision is fixed when an Accelerator is built: a shared one must have the run's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from accelerate import Accelerator
from accelerate.tracking import filter_trackers
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

if TYPE_CHECKING:
    from .config import TrainingConfig


def _data_order(config: TrainingConfig) -> DataLoaderConfiguration:
    """The seeded data order of one training run (its sampler draws with `data_seed` + epoch)."""
    return DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed)


def training_accelerator(config: TrainingConfig) -> Accelerator:
    """An Accelerator for one training run of `config`: its mixed precision, gradient accumulation,
    trackers logging into `config.output_dir`, and the data order seeded with `config.seed`."""
    return Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.report_to or None,
        project_config=ProjectConfiguration(project_dir=config.output_dir),
        dataloader_config=_data_order(config),
    )


def check_accelerator(accelerator: Accelerator, config: TrainingConfig) -> None:
    """Refuse an Accelerator that cannot train `config`: its mixed precision, fixed when it was built, is
    another than `config.mixed_precision`."""
    if accelerator.mixed_precision != config.mixed_precision:
        raise ValueError(
            f"The accelerator runs mixed_precision={accelerator.mixed_precision!r} but the training asks for "
            f"mixed_precision={config.mixed_precision!r}, which is fixed when an Accelerator is built: build it "
            f"with Accelerator(mixed_precision={config.mixed_precision!r}), or give none."
        )


@contextlib.contextmanager
def accelerator_for(accelerator: Accelerator, config: TrainingConfig) -> Iterator[Accelerator]:
    """`accelerator`, shared by the process, set up for one training run of `config` as
    `training_accelerator(config)` would be; its own settings are restored on leaving.

    Raises:
        ValueError: its mixed precision is not `config.mixed_precision` (fixed when it was built).

    Example:
        ```python
        accelerator = Accelerator(mixed_precision=training.mixed_precision)  # one per process
        for seed in seeds:
            config = dataclasses.replace(training, seed=seed, output_dir=f"run/seed{seed}")
            with accelerator_for(accelerator, config):
                PromptTrainer(model, data, config, accelerator=accelerator).train()
            evaluate_accuracy(model, test_set, collate_fn, accelerator=accelerator)
        ```
    """
    check_accelerator(accelerator, config)
    saved: dict[str, Any] = {
        "dataloader_config": accelerator.dataloader_config,
        "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
        "log_with": accelerator.log_with,
        "project_configuration": accelerator.project_configuration,
        "trackers": accelerator.trackers,
    }
    accelerator.free_memory()  # what was prepared before (evaluation loaders) is no part of this training
    project = ProjectConfiguration(project_dir=config.output_dir)
    accelerator.dataloader_config = _data_order(config)
    accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps
    accelerator.project_configuration = project
    accelerator.log_with = filter_trackers(config.report_to or None, project.logging_dir)
    accelerator.trackers = []
    try:
        yield accelerator
    finally:
        accelerator.free_memory()
        for name, value in saved.items():
            setattr(accelerator, name, value)
