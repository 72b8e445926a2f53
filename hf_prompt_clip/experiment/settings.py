"""What a run is: `ExperimentConfig`, its settings checked once, where they are defined.

Room: the experiment (the orchestration floor). A setting is checked by the dataclass that defines it:
`ExperimentConfig` checks its own fields (`check_setting`, also what the command line's flags call while
parsing), `TrainingConfig` the training ones (epochs, learning rate, augmented views, ...). Refusals name
the fields (`utils.settings.SettingError`); the command line spells them as its flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.options import option, option_problem
from ..core.recipes import PAPER_SAMPLER, RECIPE_CHOICES
from ..core.registry import default_method
from ..data import BenchmarkSpec, Source, get_benchmark
from ..data.fewshot import SAMPLERS
from ..evaluate.protocol_registry import get_protocol
from ..modeling.image_dtype import dtype_name
from ..train import TrainingConfig
from ..utils.settings import SettingError

#: Seeds are what NumPy's and PyTorch's generators take.
MAX_SEED = 2**32 - 1


@dataclass
class ExperimentConfig:
    """What to run. `training` carries the optimisation settings (epochs, lr, ...).

    `dataset` is a registry key or a `BenchmarkSpec` (your own folder: `data.folder_benchmark`), `protocol` a
    key of the protocol registry (`evaluate.protocol_registry`).

    Frozen image tower (docs/performance.md): `feature_cache` a folder that keeps the frozen image features
    on disk across runs (`None`: in memory, for this run only; every run shares one cache between its
    methods, seeds and protocols); `image_dtype` the dtype the frozen image tower runs in (`"float32"`,
    `"bfloat16"`/`"bf16"`, `"float16"`/`"fp16"`; refused for methods that train through it; recorded in
    the results and the card); `augment_views` is `training.augment_views` (`TrainingConfig` checks it;
    see there), settable here too: two different values are refused.

    Every field is checked when the config is made (`check_setting`; `TrainingConfig` checks its own), and
    the protocol against the dataset and targets (`check_protocol`); a refusal is a `SettingError` naming
    the field.

    Recipe (docs/reproducing.md): `recipe="paper"` trains each method with its paper's settings for the run's
    protocol, dataset and shots (`MethodInfo.recipe`, applied per run by `experiment.recipes.apply_recipe`);
    `"none"` (the default here; the command line's default is `"paper"` on a registered benchmark) keeps
    `training` and the options as given. `overrides` names the training settings the user set, which win over
    the recipe and are recorded as deviations (`None`: those of `training` that differ from the defaults);
    `method_options` given always win.

    Example:
        >>> ExperimentConfig(method=default_method(), dataset="dtd", protocol="few_shot", seeds=(1, 2, 3))
        >>> ExperimentConfig(seeds=(1, 1))
        Traceback (most recent call last):
        SettingError: seed 1 given more than once (1, 1): ... e.g. seeds=(1, 2, 3)
    """

    method: str = field(default_factory=default_method)
    method_options: dict[str, Any] = field(default_factory=dict)
    base_model: str = "openai/clip-vit-base-patch16"
    base_revision: str | None = None
    dataset: str | BenchmarkSpec = "dtd"
    source: Source | None = None
    dataset_revision: str | None = None
    shots: int | None = 16  # None: the full training set
    # "dassl": the CoOp authors' draw; None: "dassl" with the paper's recipe, else "numpy"
    few_shot_sampler: str | None = option(None, choices=SAMPLERS)
    seeds: Sequence[int] = (1,)
    protocol: str = "base2new"
    targets: Sequence[str] = ()
    eval_batch_size: int = option(64, minimum=1, why="test images per batch and process")
    output_dir: str = "outputs/run"
    push_to_hub: str | None = None
    private: bool = False
    training: TrainingConfig = field(default_factory=TrainingConfig)
    feature_cache: str | None = None
    image_dtype: str = "float32"
    augment_views: int | None = None
    recipe: str = option("none", choices=RECIPE_CHOICES)
    overrides: Sequence[str] | None = None

    def __post_init__(self):
        if self.few_shot_sampler is None:  # the papers' draw goes with the papers' recipe
            self.few_shot_sampler = PAPER_SAMPLER if self.recipe == "paper" else "numpy"
        for name in ("shots", "few_shot_sampler", "seeds", "eval_batch_size", "recipe"):
            check_setting(name, getattr(self, name))
        self.image_dtype = check_setting("image_dtype", self.image_dtype)
        views, trained = self.augment_views, self.training.augment_views
        if views is not None and trained is not None and trained != views:
            raise SettingError(
                f"{{augment_views}} is {views!r} but {{training.augment_views}} is {trained!r}: give it once "
                "(either is read)."
            )
        if views is not None:  # TrainingConfig's setting: it checks the value
            self.training = dataclasses.replace(self.training, augment_views=views)
        self.augment_views = self.training.augment_views
        if self.overrides is not None:
            self.overrides = tuple(check_setting("overrides", self.overrides))
        check_protocol(self.protocol, get_benchmark(self.dataset), self.targets)
        resume = self.training.resume_from_checkpoint
        if resume not in (None, "latest") and len(self.seeds) > 1:
            raise SettingError(
                f"{{resume_from_checkpoint={resume!r}}} names one seed's checkpoint but {len(self.seeds)} seeds "
                "run; use {resume_from_checkpoint='latest'} (each seed resumes from its own last checkpoint)."
            )


def check_seed(seed: Any) -> int:
    """`seed` when it is a seed (a whole number from 0 to `MAX_SEED`), else a `SettingError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SettingError(
            f"a seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}; e.g. {{seeds=(1,)}}."
        )
    return seed


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """`seeds` when they are distinct seeds, at least one: a repeated seed reruns the same run, and its
    copies would report a spread of 0 as if independent runs agreed."""
    seeds = list(seeds)
    for seed in seeds:
        check_seed(seed)
    repeated = [seed for seed in dict.fromkeys(seeds) if seeds.count(seed) > 1]
    if repeated or not seeds:
        given = " ".join(map(str, seeds)) or "none"
        what = (
            f"seed {', '.join(map(str, repeated))} given more than once ({given})"
            if repeated
            else "no seed given"
        )
        raise SettingError(
            f"{what}: {{seeds}} must be distinct and at least one; a repeated seed reruns the same run, and the "
            "copies would report a spread of 0 as if independent runs agreed. Give distinct seeds, e.g. "
            "{seeds=(1, 2, 3)}."
        )
    return seeds


def check_setting(name: str, value: Any) -> Any:
    """`value` for the `ExperimentConfig` field `name`, checked (the value to keep: an image dtype by its
    canonical name); what `ExperimentConfig` and the command line's flags both call.

    Raises:
        SettingError: naming the field, what it takes, what was given and an example.

    Example:
        >>> check_setting("eval_batch_size", 0)
        Traceback (most recent call last):
        SettingError: eval_batch_size must be at least 1, got 0 (test images per batch and process); e.g. ...
    """
    if name == "seeds":
        return check_seeds(value)
    if name == "image_dtype":
        return dtype_name(value)  # a SettingError naming the dtypes
    if name == "protocol":
        return get_protocol(value).key
    if name == "overrides":
        known = {f.name for f in dataclasses.fields(TrainingConfig)}
        unknown = [setting for setting in value if setting not in known]
        if isinstance(value, str) or unknown:
            raise SettingError(
                f"{{overrides}} names the training settings the user set (fields of TrainingConfig), got "
                f"{value!r}{f' ({unknown} are not fields)' if unknown and not isinstance(value, str) else ''}; e.g. "
                "{overrides=('epochs', 'learning_rate')}."
            )
        return value
    if name == "shots":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SettingError(
                "{shots} must be a positive number of shots (training images per class) or {shots=None} (the full "
                f"training set), got {value!r}; e.g. {{shots=16}}."
            )
        return value
    default = getattr(ExperimentConfig, name, None)
    if name == "eval_batch_size" and (isinstance(value, bool) or not isinstance(value, int)):
        raise SettingError(
            f"{{eval_batch_size}} must be a whole number, got {value!r}; e.g. {{eval_batch_size=64}}."
        )
    problem = option_problem(ExperimentConfig, name, value)
    if problem:
        example = f"; e.g. {{{name}={default!r}}}" if default is not None else ""
        raise SettingError(f"{{{name}}}{problem.removeprefix(name)}{example}.")
    return value


def check_protocol(protocol: str, spec: BenchmarkSpec, targets: Sequence[str] = ()) -> None:
    """Refuse a protocol that is not registered or cannot run on `spec` with these `targets`, saying what
    would (`Protocol.problem`).

    Raises:
        SettingError: naming the protocol, the dataset or the targets.
    """
    problem = get_protocol(protocol).problem(spec, targets)
    if problem:
        raise SettingError(problem)
