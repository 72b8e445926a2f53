"""Training on Accelerate: `PromptTrainer`, `TrainingConfig`, learning-rate schedules."""

from .schedule import SCHEDULES, learning_rate
from .trainer import NonFiniteLossError, PromptTrainer, TrainerState, TrainingConfig

__all__ = [
    "SCHEDULES",
    "NonFiniteLossError",
    "PromptTrainer",
    "TrainerState",
    "TrainingConfig",
    "learning_rate",
]
