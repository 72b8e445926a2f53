"""Training on Accelerate: `PromptTrainer`, `TrainingConfig`, learning-rate schedules.

Room: `train/`.

One module per job: `trainer.py` (the loop), `config.py` (the settings), `fingerprint.py` (a run's identity),
`run_folder.py` (the output folder: lock, checkpoints, resume), `guards.py` (finite or fail),
`cached_views.py` (training on cached augmented views), `fit_stage.py` (fit stages), `epoch_average.py` (a stage's
result as a weighted average of its epochs), `schedule.py` (learning rates).
"""

from ..utils.atomic import FolderLockedError
from .config import TrainingConfig, augment_views_used, settings_used
from .epoch_average import EpochSum
from .guards import NonFiniteLossError, NonFiniteParametersError, NonFiniteTrainingError
from .run_folder import RunMismatchError, TrainerState, checkpoint_problem, list_checkpoints
from .schedule import SCHEDULES, learning_rate
from .trainer import PromptTrainer

__all__ = [
    "SCHEDULES",
    "EpochSum",
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
