"""The command line's arguments: one table of settings and their flags (`SETTINGS`), from which the
parsers are built and every refusal of a setting is spelled for the command line (`FLAGS`, `one_line`).

Room: the command line. A flag's value is checked while parsing by the dataclass that defines the setting
(`ExperimentConfig`: `experiment.settings.check_setting`; `TrainingConfig`: the config built with that
value), never by a copy of its rule here; choices come from the registries (methods, protocols, samplers,
image dtypes, schedules). Help texts and errors name no method.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.recipes import RECIPE_CHOICES
from ..core.registry import METHODS, baseline_method, default_method
from ..data.fewshot import SAMPLERS
from ..evaluate.protocol_registry import protocol_keys
from ..experiment.settings import MAX_SEED, ExperimentConfig, check_seed, check_seeds, check_setting
from ..modeling.image_dtype import IMAGE_DTYPES
from ..train import SCHEDULES, TrainingConfig
from ..utils.settings import Flag, setting_template, spell

#: Settings for the embedded synthetic world, used there unless given: the papers' SGD at 0.002 suits
#: ViT-B/16; the 1.75 M-parameter tiny CLIP needs a larger step. (Measured in docs/synthetic.md.)
SYNTHETIC_DEFAULTS = {
    "epochs": 10,
    "lr": 0.01,
    "optimizer": "adamw",
    "options": [("n_ctx", 4), ("ctx_init", "a photo of a")],
}
#: The base model the papers use, suggested when real data is given without --base-model.
SUGGESTED_BASE = "openai/clip-vit-base-patch16"
#: The few-shot samplers (`hf_prompt_clip.data.SAMPLERS`).
FEW_SHOT_SAMPLERS = SAMPLERS
SPLIT_CHOICES = ("train", "val", "test")
#: `--image-dtype`'s values (`modeling.model.IMAGE_DTYPES`).
IMAGE_DTYPE_CHOICES = tuple(IMAGE_DTYPES)


# ------------------------------------------------------------------------------------ parsing one value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


def _shots(text: str) -> int | None:
    """A number of shots, or `all` (the full training set: `None`)."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected a positive number of shots or 'all'") from None


def _option(text: str) -> tuple[str, object]:
    """`key=value` with a Python literal value (`n_ctx=4`, `ctx_init='a photo of a'`, `csc=True`)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _repo_id(text: str) -> str:
    """A Hub repository id, checked with huggingface_hub's rules (`validate_repo_id`) before anything runs."""
    from ..serialization.push import repo_id_problem

    problem = repo_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _paper_or_synthetic(paper_default, key: str) -> str:
    return f"default: the recipe's, else {paper_default}, or {SYNTHETIC_DEFAULTS[key]} on the synthetic world"


# ------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Setting:
    """One flag and the setting it gives.

    Attributes:
        flags: the option strings (`("--seed",)`).
        field: the setting (the field of `owner`; the argparse destination unless `options` names one).
        owner: the dataclass that defines and checks the setting (`ExperimentConfig`, `TrainingConfig`), or
            `None` for the command line's own switches.
        parse: text -> a value of the field's type (a `ValueError` says what was expected); checked by the
            owner (`check`, default: the owner's own check of the field).
        group: the help section.
        options: argparse's (`default`, `nargs`, `choices`, `action`, `metavar`, `dest`, `help`).
        values: how some values are written on the command line (`{None: "all"}`).
        example: the example a refusal gives (default: the owner's default value).
    """

    flags: tuple[str, ...]
    field: str
    owner: type | None = None
    parse: Callable[[str], Any] | None = None
    group: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[Any, str] = field(default_factory=dict)
    check: Callable[[Any], Any] | None = None
    example: Any = None

    @property
    def flag(self) -> str:
        return self.flags[0]

    def spelling(self) -> Flag:
        return Flag(self.flag, self.values, switch=self.options.get("action") == "store_true")

    def example_text(self) -> str | None:
        value = self.example
        if value is None and self.owner is not None:
            value = getattr(self.owner, self.field, None)
        return None if value is None else f"{self.flag} {value}"

    def checked(self) -> Callable[[str], Any]:
        """The argparse type: `parse`, then the owner's check, refusals spelled with this flag."""

        def parse(text: str) -> Any:
            try:
                value = self.parse(text)
            except ValueError as error:
                example = self.example_text()
                raise argparse.ArgumentTypeError(
                    f"{error}, got {text!r}" + (f"; give e.g. {example}" if example else "")
                ) from None
            try:
                self._check(value)
            except ValueError as error:
                message = one_line(error).rstrip(".")
                if message.startswith(f"{self.field} "):  # the owner's message names its field
                    message = self.flag + message[len(self.field) :]
                example = self.example_text()
                if example and "e.g." not in message:
                    message += f"; give e.g. {example}"
                raise argparse.ArgumentTypeError(f"{text!r} refused: {message}") from None
            return value

        return parse

    def _check(self, value: Any) -> None:
        if self.check is not None:
            self.check(value)
        elif self.owner is ExperimentConfig:
            check_setting(self.field, value)
        elif self.owner is TrainingConfig:
            TrainingConfig(**{self.field: value})  # the config checks its own fields

    def add_to(self, parser, **overrides: Any) -> None:
        options = {**self.options, **overrides}
        if self.parse is not None:
            options["type"] = self.checked()
        options.setdefault("dest", self.field)
        parser.add_argument(*self.flags, **options)


class _DistinctSeeds(argparse.Action):
    """`--seed 1 2 3`, checked as `ExperimentConfig` checks its seeds (distinct, at least one)."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            seeds = check_seeds(values)
        except ValueError as error:
            raise argparse.ArgumentError(self, one_line(error)) from None
        setattr(namespace, self.dest, seeds)


def _settings(*settings: Setting) -> dict[str, Setting]:
    return {setting.flag: setting for setting in settings}


EC, TC = ExperimentConfig, TrainingConfig
_TRAINING = TrainingConfig()
IMAGE_TOWER = "frozen image tower (docs/performance.md)"
PROTOCOL = "protocol"

SETTINGS: dict[str, Setting] = _settings(
    # what runs
    Setting(("--method",), "methods", options=dict(
        dest="methods", nargs="+", default=[default_method()], choices=list(METHODS),
        help="one or more methods, trained and reported side by side")),
    Setting(("--all-methods",), "skip_unsupported", options=dict(
        dest="all_methods", action="store_true", help="every implemented method side by side")),
    Setting(("--no-baseline",), "no_baseline", options=dict(
        action="store_true", help=f"do not add the baseline ({baseline_method()}) to the comparison")),
    Setting(("--option",), "method_options", EC, options=dict(
        dest="options", type=_option, action="append", default=[], metavar="KEY=VALUE",
        help="a method option, e.g. n_ctx=4 or ctx_init='a photo of a' (checked against the method's config)")),
    Setting(("--base-model",), "base_model", EC, options=dict(default=None, help=(
        f"Hub id or folder of the base CLIP, e.g. {SUGGESTED_BASE}; required except on the synthetic world "
        "(there: the package's tiny pretrained CLIP)"))),
    Setting(("--base-revision",), "base_revision", EC, options=dict(
        default=None, help="a commit, branch or tag of the base model")),
    # the protocol
    Setting(("--protocol",), "protocol", EC, group=PROTOCOL, options=dict(
        default="base2new", help="the papers' evaluation protocol (docs/training.md)")),
    Setting(("--targets",), "targets", EC, group=PROTOCOL, options=dict(
        nargs="*", default=[], help="test datasets for cross_dataset / domain shift")),
    Setting(("--eval-batch-size",), "eval_batch_size", EC, _whole_number, PROTOCOL, dict(
        default=64, help="per process")),
    # the data drawn, the seeds
    Setting(("--shots",), "shots", EC, _shots, options=dict(nargs="+", default=[16], help=(
        "training images per class, or 'all'; several (1 2 4 8 16) run the few-shot curve and draw it")),
        values={None: "all"}),
    Setting(("--few-shot-sampler",), "few_shot_sampler", EC, options=dict(default=None, help=(
        "'dassl' draws the shots as the CoOp authors' code does (the same images on their split files); "
        "default: 'dassl' with the paper's recipe, else 'numpy'"))),
    Setting(("--seed", "--seeds"), "seeds", EC, _whole_number, check=check_seed, example=1, options=dict(
        nargs="+", action=_DistinctSeeds, default=[1], help="one or more distinct seeds")),
    # training
    Setting(("--epochs",), "epochs", TC, _whole_number, options=dict(
        default=None, help=_paper_or_synthetic(_TRAINING.epochs, "epochs"))),
    Setting(("--recipe",), "recipe", EC, options=dict(default=None, choices=list(RECIPE_CHOICES), help=(
        "'paper': train each method with its paper's settings for this protocol, dataset and shots (the default "
        "on a registered benchmark; `hf-prompt-clip recipes` lists them); 'none': the plain defaults (the default "
        "on your own data and the synthetic world). Settings given on the command line win and are recorded as "
        "deviations"))),
    Setting(("--batch-size",), "batch_size", TC, _whole_number, options=dict(
        default=None, help=f"per process; the global batch is this x processes x accumulation steps (default: the "
        f"recipe's, else {_TRAINING.batch_size})")),
    Setting(("--lr",), "learning_rate", TC, _number, options=dict(
        dest="lr", default=None, help=_paper_or_synthetic(_TRAINING.learning_rate, "lr"))),
    Setting(("--optimizer",), "optimizer", TC, options=dict(
        default=None, choices=["sgd", "adamw"], help=_paper_or_synthetic(_TRAINING.optimizer, "optimizer"))),
    Setting(("--lr-schedule",), "lr_schedule", TC, options=dict(
        default=None, choices=SCHEDULES, help=f"learning-rate schedule (default: the recipe's, else "
        f"{_TRAINING.lr_schedule})")),
    Setting(("--warmup-epochs",), "warmup_epochs", TC, _whole_number, options=dict(
        default=None, help=f"epochs at the warm-up learning rate (default: the recipe's, else "
        f"{_TRAINING.warmup_epochs})")),
    Setting(("--weight-decay",), "weight_decay", TC, _number, example=5e-4, options=dict(
        default=None, help=f"the optimiser's weight decay (default: the recipe's, else {_TRAINING.weight_decay})")),
    Setting(("--max-steps",), "max_steps", TC, _whole_number, example=8000, options=dict(
        default=None, help="train each stage this many optimisation steps instead of whole epochs (default: the "
        "recipe's, else whole epochs)")),
    Setting(("--gradient-accumulation-steps",), "gradient_accumulation_steps", TC, _whole_number, options=dict(
        default=1, help="batches per optimisation step")),
    Setting(("--max-grad-norm",), "max_grad_norm", TC, _number, example=1.0, options=dict(
        default=None, help="clip the gradient norm to this")),
    Setting(("--mixed-precision",), "mixed_precision", TC, options=dict(
        default="no", choices=["no", "bf16", "fp16"], help="autocast the frozen CLIP; the adapter stays float32")),
    Setting(("--checkpoint-every-steps",), "checkpoint_every_steps", TC, _whole_number, options=dict(
        default=0, help="checkpoint every N steps too (0: each epoch only)")),
    Setting(("--resume-from-checkpoint",), "resume_from_checkpoint", TC, options=dict(
        default=None, help="a checkpoint folder or 'latest'")),
    Setting(("--overwrite-output-dir",), "overwrite_output_dir", TC, options=dict(action="store_true", help=(
        "train afresh in a folder that holds another run's checkpoints (they are deleted)"))),
    Setting(("--num-workers",), "num_workers", TC, _whole_number, options=dict(
        default=0, help="data-loading worker processes")),
    Setting(("--report-to",), "report_to", TC, options=dict(
        nargs="*", default=[], help="trackers, e.g. tensorboard wandb")),
    Setting(("--output-dir",), "output_dir", EC, options=dict(default="outputs/run", help=(
        "results here, each method's adapters in <method>/seed<N>/ (<method>/shots<K>/seed<N>/ with several "
        "--shots)"))),
    Setting(("--push-to-hub",), "push_to_hub", EC, options=dict(default=None, type=_repo_id, metavar="REPO_ID", help=(
        "publish the trained method's adapter (first seed) with its model card; the login and write access "
        "are checked before training"))),
    Setting(("--private",), "private", EC, options=dict(
        action="store_true", help="create the Hub repository as private")),
    # the frozen image tower
    Setting(("--feature-cache",), "feature_cache", EC, group=IMAGE_TOWER, options=dict(
        default=None, metavar="DIR", help=(
            "keep the frozen image features on disk in DIR (safetensors, one file per image tower, dataset "
            "and precision) and reuse them in later runs; without it they are reused within the run only"))),
    Setting(("--image-dtype",), "image_dtype", EC, group=IMAGE_TOWER, options=dict(default="float32", help=(
        "run only the frozen image tower in this dtype (features come back in float32); recorded in the "
        "results and the card; refused for methods that train through the tower"))),
    Setting(("--augment-views",), "augment_views", TC, _whole_number, IMAGE_TOWER, example=10, options=dict(
        default=None, metavar="V", help=(
            "train gradient methods on V precomputed augmented views per image: each view is encoded once and "
            "epoch e trains on view e mod V (it changes the augmentation: recorded in the results and the card; "
            "no more views than epochs are encoded or recorded, with a warning); refused for methods whose "
            "image path is not frozen"))),
    # evaluating a saved adapter
    Setting(("--model",), "model", options=dict(required=True, help="adapter folder or Hub id")),
    Setting(("--classes-from-data",), "classes_from_data", options=dict(action="store_true", help=(
        "evaluate on data other than the adapter's own (another benchmark or class list), classifying the "
        "data's classes; refused without it"))),
)  # fmt: skip


def _choices() -> dict[str, Any]:
    """Choices read from the registries when a parser is built (a protocol registered later is offered)."""
    return {
        "--protocol": protocol_keys(),
        "--few-shot-sampler": FEW_SHOT_SAMPLERS,
        "--image-dtype": IMAGE_DTYPE_CHOICES,
        "--method": list(METHODS),
    }


#: Setting -> how the command line spells it: what `one_line` turns a refusal's field names into.
FLAGS: dict[str, Flag] = {setting.field: setting.spelling() for setting in SETTINGS.values()}
FLAGS.update(
    {
        "method": FLAGS["methods"],
        "seed": FLAGS["seeds"],
        "training.augment_views": FLAGS["augment_views"],
        "dataset": Flag("--dataset"),
        "data_dir": Flag("--data-dir"),
        "dataset_revision": Flag("--dataset-revision"),
        "source": Flag("--data-dir"),
    }
)


def one_line(error: BaseException) -> str:
    """An exception's message on one line for the command line: settings it names spelled as flags
    (`utils.settings`), a `KeyError`'s without its quotes."""
    template = setting_template(error)
    if template is not None:
        text = spell(template, FLAGS)
    else:
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def add_settings(parser: argparse.ArgumentParser, flags: list[str], **overrides: dict[str, Any]) -> None:
    """Add the settings of `flags` to `parser` (in their help sections), with per-flag `overrides`
    (`{"--protocol": {"default": None}}`)."""
    groups: dict[str | None, Any] = {None: parser}
    choices = _choices()
    for flag in flags:
        setting = SETTINGS[flag]
        if setting.group not in groups:
            groups[setting.group] = parser.add_argument_group(setting.group)
        extra = dict(overrides.get(flag, {}))
        if flag in choices:
            extra.setdefault("choices", choices[flag])
        setting.add_to(groups[setting.group], **extra)


def settings_of(args: argparse.Namespace, owner: type) -> dict[str, Any]:
    """The values the command line gave for the settings `owner` defines (field -> value)."""
    return {
        setting.field: getattr(args, setting.options.get("dest", setting.field))
        for setting in SETTINGS.values()
        if setting.owner is owner and hasattr(args, setting.options.get("dest", setting.field))
    }


def given_settings(args: argparse.Namespace, owner: type) -> tuple[str, ...]:
    """The settings of `owner` the command line gave: a flag whose default is unset (`None`) and that holds a
    value, or one whose value differs from its default (a switch turned on, `--num-workers 2`).

    Args:
        args: parsed arguments.
        owner: the dataclass whose settings to look at (`TrainingConfig`, `ExperimentConfig`).

    Example:
        >>> given_settings(build_parser().parse_args(["train", "--epochs", "3"]), TrainingConfig)  # doctest: +SKIP
        ('epochs',)
    """
    found = []
    for setting in SETTINGS.values():
        dest = setting.options.get("dest", setting.field)
        if setting.owner is not owner or not hasattr(args, dest):
            continue
        value, default = getattr(args, dest), setting.options.get("default")
        if setting.options.get("action") == "store_true":
            default = False  # a switch is given when it is on
        if value is not None and (default is None or value != default):
            found.append(setting.field)
    return tuple(found)


# ------------------------------------------------------------------------------------ the parser


class Parser(argparse.ArgumentParser):
    """argparse, naming a value it took for an option because it starts with "-" (`push ADAPTER -/x`:
    argparse would say "the following arguments are required: repo_id"): the value is checked as the
    argument that lacks it, whose own refusal (an invalid repository id) is the error, else the error says
    how to pass it (`-- VALUE`, `--flag=VALUE`)."""

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        super().error(self._value_taken_for_an_option(message) or message)

    def _value_taken_for_an_option(self, message: str) -> str | None:
        given = list(getattr(self, "_given", ()))

        def stray(
            arg: str,
        ) -> bool:  # no option's name holds a "/": this is a value (a repository id, a path)
            return arg[:1] == "-" and "/" in arg.split("=", 1)[0]

        if message.startswith("the following arguments are required: "):
            missing = message.split(": ", 1)[1].split(", ")
            wanting = [a for a in self._actions if not a.option_strings and (a.metavar or a.dest) in missing]
            values = [arg for arg in given if stray(arg)]
        elif message.endswith(": expected one argument"):
            wanting = [a for a in self._actions if a.option_strings and message.startswith(
                f"argument {'/'.join(a.option_strings)}:")]  # fmt: skip
            flags = wanting[0].option_strings if wanting else ()
            values = [arg for flag, arg in itertools.pairwise(given) if flag in flags and stray(arg)]
        else:
            return None
        if not wanting or not values:
            return None
        action, value = wanting[0], values[0]
        name = "/".join(action.option_strings) or action.metavar or action.dest
        if callable(action.type):
            try:
                action.type(value)
            except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
                return f"argument {name}: {error}"
        how = (
            f"{action.option_strings[0]}={value}"
            if action.option_strings
            else f"-- {value} (after the options)"
        )
        return (
            f"argument {name}: {value!r} starts with '-', so it was read as an option; to give it as {name}, "
            f"write {how}"
        )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def seed_type(text: str) -> int:
    """A seed (`--seed` of `data-summary`): checked as `ExperimentConfig` checks its seeds."""
    return Setting(("--seed",), "seeds", EC, _whole_number, check=check_seed, example=1).checked()(text)


__all__ = [
    "FLAGS",
    "MAX_SEED",
    "SETTINGS",
    "HelpFormatter",
    "Parser",
    "add_settings",
    "given_settings",
    "one_line",
    "settings_of",
]
