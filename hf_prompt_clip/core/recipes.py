"""A paper's training recipe as data each method declares beside its code (`MethodInfo.recipe`), and the one
resolver that turns (protocol, dataset, shots) into the settings the authors used.

Room: `core/` (pure data and matching: it imports nothing of the package and checks no setting; the trainer's
`TrainingConfig` and the method's config check the values when a run is built, and
`tests/test_recipes.py` builds every entry).

A `Recipe` is a list of `RecipeEntry`s. Each entry says where it applies (protocols, datasets, shot counts;
empty means "every one"), what it sets (training settings, the fields of `TrainingConfig`; method options,
the fields of the method's config) and which of the authors' files it comes from. Resolving a cell layers
every entry that applies, the more specific over the less specific: an entry naming a dataset beats one
naming shot counts, which beats one naming a protocol, which beats a default entry (weights 4, 2, 1; ties go
to the later entry). So CoOp's recipe reads as its authors wrote it: batch 32 and SGD at 0.002 everywhere,
50 / 100 / 200 epochs by shots, and 50 on ImageNet whatever the shots.

Example:
    >>> coop = Recipe("CoOp", (
    ...     RecipeEntry("configs/trainers/CoOp/vit_b16.yaml", training={"epochs": 200, "batch_size": 32}),
    ...     RecipeEntry("configs/trainers/CoOp/vit_b16_ep50.yaml", shots=(1,), training={"epochs": 50}),
    ...     RecipeEntry("scripts/coop/main.sh", datasets=("imagenet",), training={"epochs": 50}),
    ... ))
    >>> coop.resolve("few_shot", "dtd", 1).training
    {'epochs': 50, 'batch_size': 32}
    >>> coop.resolve("few_shot", "imagenet", 16).training["epochs"]
    50
    >>> Recipe("CLIP-LoRA", (RecipeEntry("main.py", training={"max_steps": PerShot(500)}),)).resolve(
    ...     "few_shot", "dtd", 4).training
    {'max_steps': 2000}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..utils.settings import SettingError

#: What `--recipe` takes: the paper's recipe, or none (the plain defaults of `TrainingConfig` and the config).
RECIPE_CHOICES = ("paper", "none")

#: The few-shot sampler of the papers' code (Dassl's, and the copies of it in the other authors' repositories):
#: the default draw with the paper's recipe, and a deviation when another is used.
PAPER_SAMPLER = "dassl"

#: Specificity of an entry's selectors (`RecipeEntry.specificity`): dataset over shots over protocol.
_WEIGHTS = {"datasets": 4, "shots": 2, "protocols": 1}


@dataclass(frozen=True)
class PerShot:
    """A setting that scales with the number of shots: `PerShot(500)` is `500 x shots` (CLIP-LoRA trains
    `n_iters * shots` iterations, `main.py`).

    Example:
        >>> PerShot(500).value(16)
        8000
    """

    factor: int

    def value(self, shots: int | None, name: str = "setting") -> int:
        """`factor x shots`.

        Args:
            shots: training images per class.
            name: the setting's name, for the error.

        Raises:
            SettingError: `shots` is `None` (the full training set has no shot count to scale with).
        """
        if shots is None:
            raise SettingError(
                f"the recipe's {{{name}}} is {self.factor} x shots, but the run uses the full training set "
                f"({{shots=None}}); give a number of shots ({{shots=16}}), or {{{name}}} or {{epochs}} yourself "
                "(either replaces the recipe's)."
            )
        return self.factor * shots

    def __str__(self) -> str:
        return f"{self.factor} x shots"


@dataclass(frozen=True)
class RecipeEntry:
    """Settings the authors used where the selectors match.

    Attributes:
        source: the authors' file(s) the values come from (`"KaiyangZhou/CoOp configs/trainers/CoOp/vit_b16.yaml"`).
        training: `TrainingConfig` field -> value (`{"epochs": 200, "batch_size": 32}`); a `PerShot` value
            scales with the shots.
        options: method config field -> value (`{"n_ctx": 16}`).
        protocols: the protocol keys it applies to (`()`: every protocol).
        datasets: the benchmark keys it applies to (`()`: every dataset, and a user's own data).
        shots: the shot counts it applies to (`()`: every count; `None` in it: the full training set).
        note: what a reader should know (a choice the authors' files leave open, a difference).
    """

    source: str
    training: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    protocols: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    shots: tuple[int | None, ...] = ()
    note: str = ""

    def applies(self, protocol: str, dataset: str, shots: int | None) -> bool:
        """Whether every selector matches (an empty one matches everything)."""
        return (
            (not self.protocols or protocol in self.protocols)
            and (not self.datasets or dataset in self.datasets)
            and (not self.shots or shots in self.shots)
        )

    @property
    def specificity(self) -> int:
        """How specific it is: 4 for naming datasets, 2 for shots, 1 for protocols, summed."""
        return sum(weight for name, weight in _WEIGHTS.items() if getattr(self, name))

    def where(self) -> str:
        """Where it applies, in words: `"base2new, imagenet, 16 shots"`, `"every cell"`."""
        parts = []
        if self.protocols:
            parts.append("/".join(self.protocols))
        if self.datasets:
            parts.append("/".join(self.datasets))
        if self.shots:
            counts = "/".join("all" if count is None else str(count) for count in self.shots)
            parts.append(f"{counts} shots")
        return ", ".join(parts) or "every cell"


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe resolved for one cell: the settings to use, and where each came from.

    Attributes:
        name: whose recipe (`Recipe.name`).
        protocol, dataset, shots: the cell.
        training: `TrainingConfig` field -> value.
        options: method option -> value.
        sources: the files of the entries that set something, in the order they were layered.
        origin: setting -> the file its value comes from (method options as `option.<name>`).
    """

    name: str
    protocol: str
    dataset: str
    shots: int | None
    training: dict[str, Any]
    options: dict[str, Any]
    sources: tuple[str, ...]
    origin: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.training or self.options)

    def record(
        self,
        applied: Mapping[str, Any] | None = None,
        deviations: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> RecipeRecord:
        """What a run with these settings records: `applied` defaults to every setting of the cell (method
        options as `option.<name>`), `deviations` to none."""
        if applied is None:
            applied = {**self.training, **{f"option.{name}": value for name, value in self.options.items()}}
        shots = "all" if self.shots is None else self.shots
        cell = f"{self.protocol}, {self.dataset}, {shots} shots"
        return RecipeRecord("paper", self.name, cell, self.sources, dict(applied), dict(deviations or {}))


@dataclass(frozen=True)
class Recipe:
    """A method's published training recipe.

    Attributes:
        name: whose recipe, as a table names it (`"CoOp (KaiyangZhou/CoOp)"`).
        entries: the settings and where they apply (`RecipeEntry`).
        protocols: the protocols the paper reports, with the shot counts of its tables
            (`{"few_shot": (1, 2, 4, 8, 16), "base2new": (16,)}`): what `hf-prompt-clip reproduce` runs.
        not_exact: what a run with this recipe does differently from the authors' code (docs/reproducing.md).
    """

    name: str
    entries: tuple[RecipeEntry, ...]
    protocols: Mapping[str, tuple[int | None, ...]] = field(default_factory=dict)
    not_exact: tuple[str, ...] = ()

    def resolve(
        self, protocol: str, dataset: str, shots: int | None, given: Collection[str] = ()
    ) -> ResolvedRecipe:
        """The settings of the cell (protocol, dataset, shots): every entry that applies, layered from the
        least to the most specific (`RecipeEntry.specificity`; ties in declaration order).

        Args:
            protocol: a protocol key (`"few_shot"`).
            dataset: a benchmark key (`"dtd"`; a user's own data: any other name, which only default entries match).
            shots: training images per class (`None`: the full training set).
            given: training settings the user gives: a `PerShot` one among them is left out on the full
                training set (which has no shot count: the user's value replaces it) instead of refused.

        Returns:
            A `ResolvedRecipe` (empty when no entry applies: the plain defaults).

        Raises:
            ValueError: a `PerShot` setting applies to a run on the full training set.
        """
        matching = [entry for entry in self.entries if entry.applies(protocol, dataset, shots)]
        matching.sort(key=lambda entry: entry.specificity)  # stable: declaration order within a weight
        training: dict[str, Any] = {}
        options: dict[str, Any] = {}
        origin: dict[str, str] = {}
        sources: list[str] = []
        for entry in matching:
            for name, value in entry.training.items():
                if isinstance(value, PerShot):
                    if shots is None and name in given:  # no value on the full set, and the user replaces it
                        continue
                    value = value.value(shots, name)
                training[name] = value
                origin[name] = entry.source
            for name, value in entry.options.items():
                options[name] = value
                origin[f"option.{name}"] = entry.source
            if (entry.training or entry.options) and entry.source not in sources:
                sources.append(entry.source)
        return ResolvedRecipe(self.name, protocol, dataset, shots, training, options, tuple(sources), origin)

    def paper_shots(self, protocol: str) -> tuple[int | None, ...]:
        """The shot counts of the paper's table for `protocol` (`()`: the paper does not report it)."""
        return tuple(self.protocols.get(protocol, ()))


@dataclass(frozen=True)
class RecipeRecord:
    """Which recipe a run used and where it departed from it (the `recipe` entry of results and
    `training_args.json`; cards and the log say it in words, `describe`).

    Attributes:
        recipe: `"paper"` or `"none"`.
        name: whose recipe (`None` with `"none"`, or when the method has no recipe).
        cell: the (protocol, dataset, shots) it was resolved for, in words.
        sources: the authors' files its settings come from.
        applied: setting -> the value taken from the recipe (method options as `option.<name>`).
        deviations: setting -> `{"recipe": value, "used": value}` where the user's setting won.
    """

    recipe: str
    name: str | None = None
    cell: str | None = None
    sources: tuple[str, ...] = ()
    applied: Mapping[str, Any] = field(default_factory=dict)
    deviations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (results, `training_args.json`)."""
        found = {"recipe": self.recipe}
        if self.name is not None:
            found.update(name=self.name, cell=self.cell, sources=list(self.sources))
            found.update(
                applied=dict(self.applied), deviations={k: dict(v) for k, v in self.deviations.items()}
            )
        return found

    def describe(self) -> str:
        """One sentence, e.g. "the paper's recipe (CoOp (KaiyangZhou/CoOp); few_shot, dtd, 16 shots), except
        epochs 1 (recipe: 200)"."""
        return describe_recipe(self.to_dict())


def dassl_defaults(
    repository: str = "KaiyangZhou/Dassl.pytorch", folder: str = ""
) -> tuple[RecipeEntry, ...]:
    """The settings every method built on Dassl inherits: SGD momentum 0.9 and weight decay 5e-4
    (`dassl/config/defaults.py`), and a training loader that drops its last incomplete batch when the set holds
    at least one batch (`dassl/data/data_manager.py`: `drop_last=is_train and len(data_source) >= batch_size`).

    Args:
        repository: where that Dassl is (a fork inside a method's repository: `"htyao89/KgCoOp"`).
        folder: its folder inside `repository` (`"Dassl.ProGrad.pytorch/"`).

    Example:
        >>> [entry.training for entry in dassl_defaults()]
        [{'momentum': 0.9, 'weight_decay': 0.0005}, {'drop_last': True}]
    """
    return (
        RecipeEntry(
            f"{repository} {folder}dassl/config/defaults.py", training={"momentum": 0.9, "weight_decay": 5e-4}
        ),
        RecipeEntry(
            f"{repository} {folder}dassl/data/data_manager.py",
            training={"drop_last": True},
            note="the training loader drops the last incomplete batch when the set holds at least one batch",
        ),
    )


def describe_recipe(record: Mapping[str, Any] | None) -> str:
    """A recipe record (`RecipeRecord.to_dict()`) in one sentence, as logs and cards say it.

    Example:
        >>> describe_recipe({"recipe": "none"})
        "the plain defaults (recipe none), not a paper's recipe"
    """
    if not record or record.get("recipe") != "paper":
        return "the plain defaults (recipe none), not a paper's recipe"
    if not record.get("name"):
        return "the plain defaults: the method declares no paper recipe"
    text = f"the paper's recipe ({record['name']}; {record.get('cell')})"
    deviations = record.get("deviations") or {}
    if not record.get("applied") and not deviations:
        return text + " sets nothing here: the plain defaults"
    if deviations:
        text += ", except " + "; ".join(
            f"{name} {_shown(change['used'])} (recipe: {_shown(change['recipe'])})"
            for name, change in deviations.items()
        )
    else:
        text += ", with no deviation"
    return text


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value) if isinstance(value, str) else str(value)


__all__ = [
    "RECIPE_CHOICES",
    "PerShot",
    "Recipe",
    "RecipeEntry",
    "ResolvedRecipe",
    "dassl_defaults",
    "describe_recipe",
]
