"""Training on Accelerate: `PromptTrainer`, `TrainingConfig`, learning-rate schedules."""

from ..core.atomic import FolderLockedError
from .schedule import SCHEDULES, learning_rate
from .trainer import (
    NonFiniteLossError,
    NonFiniteParametersError,
    NonFiniteTrainingError,
    PromptTrainer,
    RunMismatchError,
    TrainerState,
    TrainingConfig,
    augment_views_used,
    checkpoint_problem,
    list_checkpoints,
    settings_used,
)

__all__ = [
    "SCHEDULES",
    "FolderLockedError",
    "NonFiniteLossError",
    "NonFiniteParametersError",
    "NonFiniteTrainingError",
    "PromptTrainer",
    "RunMismatchError",
    "TrainerState",
    "TrainingConfig",
    "augment_views_used",
    "checkpoint_problem",
    "learning_rate",
    "list_checkpoints",
    "settings_used",
]
