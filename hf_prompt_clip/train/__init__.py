"""Training on Accelerate: `PromptTrainer`, `TrainingConfig`, learning-rate schedules."""

from .schedule import SCHEDULES, learning_rate
from .trainer import NonFiniteLossError, PromptTrainer, TrainerState, TrainingConfig, list_checkpoints

__all__ = [
    "SCHEDULES",
    "NonFiniteLossError",
    "PromptTrainer",
    "TrainerState",
    "TrainingConfig",
    "learning_rate",
    "list_checkpoints",
]
