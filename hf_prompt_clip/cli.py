"""`hf-prompt-clip`: train, evaluate and inspect prompt learners from the command line.

    hf-prompt-clip train --method cocoop --dataset imagenet --shots 16 --seed 1 \\
        --base-model openai/clip-vit-base-patch16 --push-to-hub org/cocoop-vitb16-imagenet
    hf-prompt-clip train --method coop --data-dir my_photos --base-model openai/clip-vit-base-patch16 \\
        --template "a photo of a {}, a type of flower." --shots 1 2 4 8 16 --protocol few_shot
    accelerate launch -m hf_prompt_clip.cli train ...          # many GPUs (or examples/train.py)
    hf-prompt-clip evaluate --model outputs/run/coop/seed1/adapter          # on the data it was trained on
    hf-prompt-clip evaluate --model org/coop-vitb16-dtd --dataset dtd --protocol base2new
    hf-prompt-clip data-summary eurosat --shots 16
    hf-prompt-clip data export eurosat --split-file split_zhou_EuroSAT.json --image-root eurosat/2750 \\
        --output-dir eurosat-coop --push-to-hub me/eurosat-coop
    hf-prompt-clip push outputs/run/coop/seed1/adapter me/coop-my-photos

Errors are one line (what, why, the flag that fixes it) with exit code 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.feature_cache import ImageFeatureCache
from .core.logs import main_process_logger
from .core.modeling import dtype_name
from .core.registry import METHODS, baseline_method, default_method
from .train import SCHEDULES, TrainingConfig

PROG = "hf-prompt-clip"
DEFAULT_DATASET = "synthetic_shapes_outline"
# Settings for the embedded synthetic world, used there unless given: the papers' SGD at 0.002
# suits ViT-B/16; the 1.75 M-parameter tiny CLIP needs a larger step. (Measured in docs/synthetic.md.)
SYNTHETIC_DEFAULTS = {
    "epochs": 10,
    "lr": 0.01,
    "optimizer": "adamw",
    "options": [("n_ctx", 4), ("ctx_init", "a photo of a")],
}
#: The base model the papers use, suggested when real data is given without --base-model.
SUGGESTED_BASE = "openai/clip-vit-base-patch16"
#: `hf_prompt_clip.data.SAMPLERS`, spelled out so that building the parser imports no dataset code.
FEW_SHOT_SAMPLERS = ("numpy", "dassl")
#: `hf_prompt_clip.data.LOCAL_DATASET`, likewise.
LOCAL_DATASET = "imagefolder"
PROTOCOL_CHOICES = ("few_shot", "base2new", "cross_dataset", "domain_generalization")
SPLIT_CHOICES = ("train", "val", "test")


logger = main_process_logger(__name__)


class CLIError(ValueError):
    """A mistake in the command line: printed as one line, exit code 2."""


# ------------------------------------------------------------------------------------ argument types


def _option(text: str) -> tuple[str, object]:
    """`key=value` with a Python literal value (`n_ctx=4`, `ctx_init='a photo of a'`, `csc=True`)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _shots(text: str) -> int | None:
    """A positive number of shots, or `all` (the full training set: `None`)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of shots or 'all', got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _whole_number(minimum: int, example: str):
    """An argument type: a whole number of at least `minimum` (0 is a value, never "use the default")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}; give e.g. {example}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of at least {minimum}, got {text!r}; give e.g. {example}"
            )
        return value

    return parse


def _learning_rate(text: str) -> float:
    """A positive, finite learning rate (0 would leave the adapter as it was initialised)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"expected a positive learning rate, got {text!r} (a rate of 0 or less trains nothing, or "
            "the wrong way); give e.g. --lr 0.002"
        )
    return value


#: Seeds are what NumPy's and PyTorch's generators take.
MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {MAX_SEED}, got {text!r}; give e.g. 1")
    return value


class _DistinctSeeds(argparse.Action):
    """`--seed 1 2 3`, refusing a repeated seed: it reruns the same run, and its copies would report a
    spread of 0 as if independent runs agreed."""

    def __call__(self, parser, namespace, values, option_string=None):
        repeated = [seed for seed in dict.fromkeys(values) if values.count(seed) > 1]
        if repeated:
            raise argparse.ArgumentError(
                self,
                f"seed {', '.join(map(str, repeated))} given more than once ({' '.join(map(str, values))}): "
                "a repeated seed reruns the same run, and the copies would report a spread of 0 as if "
                "independent runs agreed; give distinct seeds, e.g. --seed 1 2 3",
            )
        setattr(namespace, self.dest, list(values))


def _repo_id(text: str) -> str:
    """A Hub repository id, checked with huggingface_hub's rules (`validate_repo_id`) before anything runs."""
    from .core.push import repo_id_problem

    problem = repo_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


class _Parser(argparse.ArgumentParser):
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _paper_or_synthetic(paper_default, key: str) -> str:
    return f"default: {paper_default}, or {SYNTHETIC_DEFAULTS[key]} on the synthetic world"


# ------------------------------------------------------------------------------------ arguments


def add_source_arguments(parser: argparse.ArgumentParser, dataset_positional: bool = False) -> None:
    """The data to read: a registry key, your own image folder, a CoOp split file or an exported set."""
    group = parser.add_argument_group("data")
    dataset_help = (
        "a benchmark key of the registry (docs/data.md), 'imagefolder' (your own folder, with --data-dir) "
        "or the path of your folder"
    )
    if dataset_positional:
        group.add_argument("dataset", help=dataset_help)
    else:
        group.add_argument("--dataset", default=None, help=dataset_help)
    group.add_argument(
        "--data-dir",
        "--image-folder",
        dest="data_dir",
        default=None,
        metavar="DIR",
        help="a local image folder: DIR/<class>/* (split per class) or DIR/{train,val,test}/<class>/*; "
        "alone or with --dataset imagefolder it is your own dataset, with a registry key it holds that "
        "benchmark's images",
    )
    group.add_argument("--dataset-revision", default=None, help="revision of the dataset on the Hub")
    group.add_argument("--split-file", default=None, help="a CoOp split_zhou_*.json file (with --image-root)")
    group.add_argument("--image-root", default=None, help="the folder the split file's paths start from")
    group.add_argument(
        "--exported",
        default=None,
        metavar="REPO_OR_FOLDER",
        help="a dataset written by `hf-prompt-clip data export` (its folder or Hub repository)",
    )
    own = parser.add_argument_group("your own image folder (--data-dir)")
    own.add_argument(
        "--template", default=None, help="zero-shot template with one {} (default: 'a photo of a {}.')"
    )
    own.add_argument(
        "--class-names",
        default=None,
        metavar="FILE",
        help='class names: one per line in the folders\' ASCII order, or JSON {"folder": "name"} '
        "(default: the folder names, _ read as a space)",
    )
    own.add_argument(
        "--super-category", default=None, help="what every class is (bird, car), for methods that use it"
    )
    own.add_argument(
        "--val-fraction",
        type=_fraction,
        default=None,
        help="share of each class in val of a flat folder (0.1)",
    )
    own.add_argument(
        "--test-fraction",
        type=_fraction,
        default=None,
        help="share of each class in test of a flat folder (0.2)",
    )
    own.add_argument(
        "--split-seed", type=int, default=None, help="seed of the per-class split of a flat folder (0)"
    )


def add_protocol_arguments(parser: argparse.ArgumentParser, default: str | None = "base2new") -> None:
    group = parser.add_argument_group("protocol")
    group.add_argument(
        "--protocol",
        default=default,
        choices=PROTOCOL_CHOICES,
        help="the papers' evaluation protocol (docs/training.md)"
        + ("" if default else "; default: the one the adapter was trained with"),
    )
    group.add_argument(
        "--targets", nargs="*", default=[], help="test datasets for cross_dataset / domain shift"
    )
    group.add_argument(
        "--eval-batch-size", type=_whole_number(1, "--eval-batch-size 64"), default=64, help="per process"
    )


IMAGE_DTYPE_CHOICES = ("float32", "bfloat16", "bf16", "float16", "fp16")


def add_image_tower_arguments(parser: argparse.ArgumentParser, training: bool = True) -> None:
    """`--feature-cache`, `--image-dtype` (and, for training, `--augment-views`): the frozen image tower."""
    group = parser.add_argument_group("frozen image tower (docs/performance.md)")
    group.add_argument(
        "--feature-cache",
        default=None,
        metavar="DIR",
        help="keep the frozen image features on disk in DIR (safetensors, one file per image tower, dataset "
        "and precision) and reuse them in later runs; without it they are reused within the run only",
    )
    group.add_argument(
        "--image-dtype",
        default="float32",
        choices=IMAGE_DTYPE_CHOICES,
        help="run only the frozen image tower in this dtype (features come back in float32); recorded in the "
        "results and the card; refused for methods that train through the tower (PLOT++, MP-FGVC)",
    )
    if training:
        group.add_argument(
            "--augment-views",
            type=_whole_number(1, "--augment-views 10"),
            default=None,
            metavar="V",
            help="train gradient methods on V precomputed augmented views per image: each view is encoded once "
            "and epoch e trains on view e mod V (it changes the augmentation: recorded in the results and the "
            "card; no more views than epochs are encoded or recorded, with a warning); refused for methods whose "
            "image path is not frozen (PLOT, PLOT++, MP-FGVC)",
        )


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    train.add_argument(
        "--method",
        dest="methods",
        nargs="+",
        default=[default_method()],
        choices=list(METHODS),
        help="one or more methods, trained and reported side by side",
    )
    train.add_argument("--all-methods", action="store_true", help="every implemented method side by side")
    train.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not add zero-shot CLIP (the baseline) to the comparison",
    )
    train.add_argument(
        "--option",
        dest="options",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option, e.g. n_ctx=4 or ctx_init='a photo of a' (checked against the method's config)",
    )
    train.add_argument(
        "--base-model",
        default=None,
        help=f"Hub id or folder of the base CLIP, e.g. {SUGGESTED_BASE}; required except on the "
        "synthetic world (there: the package's tiny pretrained CLIP)",
    )
    train.add_argument("--base-revision", default=None, help="a commit, branch or tag of the base model")
    add_source_arguments(train)
    add_protocol_arguments(train)
    train.add_argument(
        "--shots",
        type=_shots,
        nargs="+",
        default=[16],
        help="training images per class, or 'all'; several (1 2 4 8 16) run the few-shot curve and draw it",
    )
    train.add_argument(
        "--few-shot-sampler",
        default="numpy",
        choices=FEW_SHOT_SAMPLERS,
        help="'dassl' draws the shots as the CoOp authors' code does (the same images on their split files)",
    )
    train.add_argument(
        "--seed",
        dest="seeds",
        type=_seed,
        nargs="+",
        action=_DistinctSeeds,
        default=[1],
        help="one or more distinct seeds",
    )
    defaults = TrainingConfig()
    train.add_argument(
        "--epochs",
        type=_whole_number(1, "--epochs 10"),
        default=None,
        help=_paper_or_synthetic(defaults.epochs, "epochs"),
    )
    train.add_argument(
        "--batch-size",
        type=_whole_number(1, "--batch-size 32"),
        default=defaults.batch_size,
        help="per process; the global batch is this x processes x accumulation steps",
    )
    train.add_argument(
        "--lr", type=_learning_rate, default=None, help=_paper_or_synthetic(defaults.learning_rate, "lr")
    )
    train.add_argument(
        "--optimizer",
        default=None,
        choices=["sgd", "adamw"],
        help=_paper_or_synthetic(defaults.optimizer, "optimizer"),
    )
    train.add_argument(
        "--lr-schedule", default=defaults.lr_schedule, choices=SCHEDULES, help="learning-rate schedule"
    )
    train.add_argument(
        "--warmup-epochs",
        type=_whole_number(0, "--warmup-epochs 1 (0: no warm-up)"),
        default=defaults.warmup_epochs,
        help="epochs at the warm-up learning rate",
    )
    train.add_argument(
        "--gradient-accumulation-steps", type=int, default=1, help="batches per optimisation step"
    )
    train.add_argument("--max-grad-norm", type=float, default=None, help="clip the gradient norm to this")
    train.add_argument(
        "--mixed-precision",
        default="no",
        choices=["no", "bf16", "fp16"],
        help="autocast the frozen CLIP; the adapter stays float32",
    )
    train.add_argument(
        "--checkpoint-every-steps",
        type=int,
        default=0,
        help="checkpoint every N steps too (0: each epoch only)",
    )
    train.add_argument("--resume-from-checkpoint", default=None, help="a checkpoint folder or 'latest'")
    train.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        help="train afresh in a folder that holds another run's checkpoints (they are deleted)",
    )
    train.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    train.add_argument("--report-to", nargs="*", default=[], help="trackers, e.g. tensorboard wandb")
    train.add_argument(
        "--output-dir",
        default="outputs/run",
        help="results here, each method's adapters in <method>/seed<N>/ (<method>/shots<K>/seed<N>/ "
        "with several --shots)",
    )
    train.add_argument(
        "--push-to-hub",
        default=None,
        type=_repo_id,
        metavar="REPO_ID",
        help="publish the trained method's adapter (first seed) with its model card; the login and write "
        "access are checked before training",
    )
    train.add_argument("--private", action="store_true", help="create the Hub repository as private")
    add_image_tower_arguments(train)


def add_evaluate_arguments(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument("--model", required=True, help="adapter folder or Hub id")
    add_source_arguments(evaluate)
    add_protocol_arguments(evaluate, default=None)
    evaluate.add_argument(
        "--classes-from-data",
        action="store_true",
        help="evaluate on data other than the adapter's own (another benchmark or class list), classifying "
        "the data's classes; refused without it",
    )
    evaluate.add_argument("--output-dir", default=None, help="write results.json/.md and plots here")
    add_image_tower_arguments(evaluate, training=False)


def add_summary_arguments(summary: argparse.ArgumentParser) -> None:
    add_source_arguments(summary, dataset_positional=True)
    summary.add_argument(
        "--splits",
        nargs="+",
        default=list(SPLIT_CHOICES),
        choices=SPLIT_CHOICES,
        help="the splits to describe",
    )
    summary.add_argument(
        "--subset",
        default="all",
        choices=("all", "base", "new"),
        help="all classes, or the base / new half of the base-to-new protocol",
    )
    summary.add_argument(
        "--shots", type=int, default=None, help="also draw this many training images per class"
    )
    summary.add_argument("--seed", type=_seed, default=1, help="seed of the few-shot draw")
    summary.add_argument(
        "--few-shot-sampler", default="numpy", choices=FEW_SHOT_SAMPLERS, help="how the draw is made"
    )
    summary.add_argument("--max-classes", type=int, default=10, help="class names listed per split")


def add_export_arguments(export: argparse.ArgumentParser) -> None:
    add_source_arguments(export, dataset_positional=True)
    export.add_argument("--output-dir", required=True, help="the folder to write (data/<split>-*.parquet)")
    export.add_argument(
        "--push-to-hub",
        default=None,
        type=_repo_id,
        metavar="REPO_ID",
        help="also upload it to this dataset repo",
    )
    export.add_argument("--private", action="store_true", help="create the Hub repository as private")


def add_push_arguments(push: argparse.ArgumentParser) -> None:
    push.add_argument("adapter", help="a saved adapter folder (e.g. outputs/run/coop/seed1/adapter)")
    push.add_argument("repo_id", type=_repo_id, help="the Hub model repository, namespace/name")
    push.add_argument("--private", action="store_true", help="create the Hub repository as private")


COMMANDS = {
    "train": ("train an adapter with a paper's protocol and evaluate it", add_train_arguments),
    "evaluate": ("evaluate a saved adapter (folder or Hub id)", add_evaluate_arguments),
    "data-summary": ("classes, split sizes and a few-shot draw of a dataset", add_summary_arguments),
    "push": ("publish a saved adapter folder (with its model card) on the Hub", add_push_arguments),
}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only (no progress lines)")


def build_parser(prog: str = PROG, command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or the parser of one `command` alone (what `examples/train.py` offers as `prog`)."""
    if command is not None:
        help_text, add = COMMANDS[command]
        parser = _Parser(
            prog=prog, description=f"{help_text[0].upper()}{help_text[1:]} ({PROG} {command}).",
            formatter_class=_HelpFormatter,
        )  # fmt: skip
        add(parser)
        _add_common(parser)
        parser.set_defaults(command=command)
        return parser
    parser = _Parser(prog=prog, description=__doc__, formatter_class=_HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add) in COMMANDS.items():
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )
        add(sub)
        _add_common(sub)
    data = subparsers.add_parser(
        "data", help="dataset tools: export a benchmark as a Hub-layout parquet dataset"
    )
    actions = data.add_subparsers(dest="data_command", required=True)
    export = actions.add_parser(
        "export",
        help="write a benchmark from any source (a CoOp split file, an image folder, the Hub) as parquet",
        formatter_class=_HelpFormatter,
    )
    add_export_arguments(export)
    _add_common(export)
    return parser


# ------------------------------------------------------------------------------------ data


def _folder_flags(args) -> list[str]:
    flags = {
        "--template": args.template,
        "--class-names": args.class_names,
        "--super-category": args.super_category,
        "--val-fraction": args.val_fraction,
        "--test-fraction": args.test_fraction,
        "--split-seed": args.split_seed,
    }
    return [flag for flag, value in flags.items() if value is not None]


def _registered_source(args):
    """The source of a registered benchmark given on the command line (`None`: its own)."""
    from .data import CoOpSplitSource, ImageFolderSource, exported_source

    given = [flag for flag, value in (("--data-dir", args.data_dir), ("--split-file", args.split_file),
                                      ("--exported", args.exported)) if value]  # fmt: skip
    if len(given) > 1:
        raise CLIError(f"{' and '.join(given)} both name the data; give one of them.")
    if args.dataset_revision and given:
        raise CLIError(
            f"--dataset-revision picks a commit of the registry's Hub source; it does not apply to {given[0]}. "
            "Drop one of them."
        )
    if args.exported:
        return exported_source(args.exported)
    if args.data_dir:
        from .data.sources import has_split_folders

        if os.path.isdir(args.data_dir) and not has_split_folders(args.data_dir):
            raise CLIError(
                f"--dataset {args.dataset} --data-dir {args.data_dir} reads that benchmark's images from the "
                "folder, which then needs train/ and test/ folders of class folders, but it is flat. For "
                "your own classes leave out --dataset (the folder is then split per class)."
            )
        return ImageFolderSource(args.data_dir)
    if args.split_file:
        if not args.image_root:
            raise CLIError("--split-file needs --image-root (the folder the split file's paths start from).")
        return CoOpSplitSource(args.split_file, args.image_root)
    return None


def _folder_settings(args, folder: str, recorded: dict) -> dict:
    """`folder_benchmark` settings from the command line; flags not given take the `recorded` ones (an
    adapter's `training_data.json`: the same names, template and split), else the defaults."""
    from .data.local import DEFAULT_SPLIT_FRACTIONS
    from .data.sources import has_split_folders

    def pick(value, key, default=None):
        return value if value is not None else recorded.get(key, default)

    fractions = dict(pick(None, "split_fractions", DEFAULT_SPLIT_FRACTIONS))
    for name, value in (("val", args.val_fraction), ("test", args.test_fraction)):
        if value is not None:
            fractions[name] = value
    fractions = {name: value for name, value in fractions.items() if value > 0}
    if sum(fractions.values()) >= 1:
        raise CLIError(
            f"--val-fraction and --test-fraction take {sum(fractions.values()):.0%} of each class together; "
            "they must leave some images to train on (e.g. 0.1 and 0.2)."
        )
    if "test" not in fractions and not has_split_folders(folder):
        raise CLIError(
            "--test-fraction 0 leaves a flat folder without test images; give a fraction such as 0.2."
        )
    return {
        "template": pick(args.template, "template"),
        "class_names": pick(args.class_names, "class_names"),
        "super_category": pick(args.super_category, "super_category"),
        "split_fractions": fractions,
        "split_seed": pick(args.split_seed, "split_seed", 0),
        "name": recorded.get("name"),  # a moved folder keeps its dataset name
    }


def resolve_data(args, default: str | None = DEFAULT_DATASET, recorded: dict | None = None):
    """`(spec, source)` of the data named on the command line: your own folder (`--data-dir`, `--dataset
    imagefolder` or `--dataset PATH`) or a registered benchmark with an optional local source.
    `recorded`: the folder record of an adapter being evaluated, whose settings fill the flags not given."""
    from .data import UnknownBenchmarkError, folder_benchmark, get_benchmark

    dataset, folder = args.dataset, args.data_dir
    if dataset and dataset != LOCAL_DATASET and os.path.isdir(dataset):
        try:
            get_benchmark(dataset)
        except UnknownBenchmarkError:
            if folder:
                raise CLIError(
                    f"--dataset {dataset!r} is a folder and --data-dir names another; give one."
                ) from None
            dataset, folder = LOCAL_DATASET, dataset
    if dataset is None and folder and not (args.split_file or args.exported):
        dataset = LOCAL_DATASET
    if dataset == LOCAL_DATASET:
        if not folder:
            raise CLIError("--dataset imagefolder reads your own folder: give it with --data-dir DIR.")
        others = [flag for flag, value in (("--split-file", args.split_file), ("--exported", args.exported),
                                           ("--dataset-revision", args.dataset_revision)) if value]  # fmt: skip
        if others:
            raise CLIError(f"{', '.join(others)} do not apply to your own folder (--data-dir); drop them.")
        settings = _folder_settings(args, folder, recorded or {})
        try:
            return folder_benchmark(folder, **settings)
        except (ValueError, FileNotFoundError) as error:
            raise CLIError(str(error)) from error
    if _folder_flags(args):
        raise CLIError(
            f"{', '.join(_folder_flags(args))} describe your own image folder; a registered benchmark "
            f"({dataset or default!r}) has its own template, names and splits. Drop them, or train on your "
            "folder with --data-dir DIR (without --dataset)."
        )
    if dataset is None:
        if default is None:
            raise CLIError("Say which data to use: --dataset KEY (a registered benchmark) or --data-dir DIR.")
        dataset = default
    try:
        spec = get_benchmark(dataset)
    except UnknownBenchmarkError as error:
        raise CLIError(
            f"{error} For your own images give the folder: --data-dir DIR (or --dataset DIR)."
        ) from error
    return spec, _registered_source(args)


# ------------------------------------------------------------------------------------ train


def fill_defaults(args, methods: Sequence[str], synthetic: bool) -> None:
    """Paper defaults for real benchmarks; `SYNTHETIC_DEFAULTS` for the embedded world (its method
    options, for the methods that have them, unless the user gives `--option`s)."""
    from .runner import method_option_names

    paper = TrainingConfig()
    # only a value not given takes the default: 0 is a value (refused by the parser), not "unset"
    if args.epochs is None:
        args.epochs = SYNTHETIC_DEFAULTS["epochs"] if synthetic else paper.epochs
    if args.lr is None:
        args.lr = SYNTHETIC_DEFAULTS["lr"] if synthetic else paper.learning_rate
    if args.optimizer is None:
        args.optimizer = SYNTHETIC_DEFAULTS["optimizer"] if synthetic else paper.optimizer
    if synthetic and not args.options:
        known = method_option_names(methods)
        args.options = [(key, value) for key, value in SYNTHETIC_DEFAULTS["options"] if key in known]


def base_model_for(args, spec) -> str:
    """`--base-model`, or the shipped tiny CLIP on the synthetic world (it was trained on it)."""
    if args.base_model:
        return args.base_model
    if spec.synthetic:
        from .synthetic import TINY_CLIP_ID

        return TINY_CLIP_ID
    raise CLIError(
        f"--base-model is required for {spec.key!r}: only the synthetic world has a default base model (the "
        f"package's tiny CLIP). Give a Hub id such as --base-model {SUGGESTED_BASE} or a local CLIP folder."
    )


def train_command(args) -> list[dict]:
    from .runner import ExperimentConfig, run_comparison

    methods = list(METHODS) if args.all_methods else list(dict.fromkeys(args.methods))
    named = list(methods)
    baseline = baseline_method()
    learned = [method for method in methods if method != baseline]
    if args.push_to_hub and len(learned) > 1:
        raise CLIError(
            f"--push-to-hub publishes one adapter but {len(learned)} methods were given ({', '.join(learned)}); "
            "run the method you want to publish with --method on its own."
        )
    if baseline and not args.no_baseline and baseline not in methods:
        methods.insert(0, baseline)
    spec, source = resolve_data(args)
    base_model = base_model_for(args, spec)
    fill_defaults(args, methods, spec.synthetic)
    training = TrainingConfig(
        output_dir=args.output_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_grad_norm=args.max_grad_norm,
        mixed_precision=args.mixed_precision,
        checkpoint_every_steps=args.checkpoint_every_steps,
        resume_from_checkpoint=args.resume_from_checkpoint,
        overwrite_output_dir=args.overwrite_output_dir,
        num_workers=args.num_workers,
        report_to=args.report_to,
    )
    config = ExperimentConfig(
        method=(learned or methods)[0],  # the method that --push-to-hub publishes
        method_options=dict(args.options),
        base_model=base_model,
        base_revision=args.base_revision,
        dataset=spec,
        source=source,
        dataset_revision=args.dataset_revision,
        shots=args.shots[0],
        few_shot_sampler=args.few_shot_sampler,
        seeds=args.seeds,
        protocol=args.protocol,
        targets=args.targets,
        eval_batch_size=args.eval_batch_size,
        output_dir=args.output_dir,
        push_to_hub=args.push_to_hub,
        private=args.private,
        training=training,
        feature_cache=args.feature_cache,
        image_dtype=args.image_dtype,
        augment_views=args.augment_views,
    )
    return run_comparison(config, methods, skip_unsupported=args.all_methods, shots=args.shots, named=named)


def written_files(output_dir: str | os.PathLike) -> list[str]:
    """The report files present in `output_dir` (`write_report` removes charts that do not apply)."""
    from .evaluate.report import REPORT_FILES

    return [name for name in REPORT_FILES.values() if (Path(output_dir) / name).is_file()]


def _print_train_results(results: list[dict], output_dir: str) -> None:
    from .evaluate.report import results_table

    print("\n" + results_table(results))
    print(
        f"\nwrote {', '.join(written_files(output_dir))} in {output_dir}; adapters with model cards in "
        f"{output_dir}/<method>/.../seed<N>/adapter"
    )


# ------------------------------------------------------------------------------------ evaluate


def load_adapter(name: str):
    """`AutoModel.from_pretrained(name)` with one clear error for a missing folder or Hub repository, a folder
    that is no adapter of a method this release knows, and an unreachable Hub (asked once, its timeouts named)."""
    from transformers import AutoModel

    from .core.loading import AdapterLoadError, check_adapter_config, hub_failure_advice, saved_config

    looks_like_a_path = name.startswith((".", "/", "~")) or name.count("/") > 1  # Hub ids have one "/"
    if not os.path.isdir(name) and looks_like_a_path:
        raise CLIError(
            f"--model {name!r}: no such adapter folder. Give the folder an adapter was saved in (e.g. "
            "outputs/run/coop/seed1/adapter) or a Hub id."
        )
    where = "" if os.path.isdir(name) else "no adapter folder of that name is here, and "
    try:
        # the Hub is asked once: when it cannot be reached, that is said at once, with its timeouts
        saved = saved_config(name)
    except AdapterLoadError as error:
        advice = hub_failure_advice(error.__cause__ or error)
        raise CLIError(f"--model {name!r}: {where}it could not be loaded: {advice}.") from error
    check_adapter_config(name, saved)  # what the folder is, if no adapter of a method this release knows
    try:
        return AutoModel.from_pretrained(name)
    except AdapterLoadError:
        raise  # ours: one line naming the problem and the fix
    except OSError as error:
        raise CLIError(
            f"--model {name!r}: {where}it could not be loaded: {hub_failure_advice(error)}. Give a saved adapter "
            "folder (e.g. outputs/run/coop/seed1/adapter) or a Hub id."
        ) from error


def read_adapter_record(name: str, filename: str) -> dict | None:
    """A JSON record saved beside an adapter (folder or Hub repository), or `None` when it has none."""
    from transformers.utils import cached_file

    path = cached_file(name, filename, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None


def _names_data(args) -> bool:
    """Whether the command line names the data (else an adapter's record does)."""
    return bool(args.dataset or args.data_dir or args.split_file or args.exported)


def _data_of_record(args, record: dict | None):
    """The data to evaluate on: as given on the command line, else the adapter's recorded data."""
    from .data import describe_data, folder_benchmark_from_record, get_benchmark

    given = _names_data(args)
    folder = (record or {}).get("folder")
    if folder and args.data_dir and args.dataset in (None, LOCAL_DATASET):  # the folder moved
        spec, source = resolve_data(args, default=None, recorded=folder)
        if (dict(source.split_fractions or {}), source.split_seed) != (
            folder["split_fractions"],
            folder["split_seed"],
        ):
            logger.warning(
                "the split differs from the one the adapter was trained with (%s, seed %s): its test "
                "images may include training images", folder["split_fractions"], folder["split_seed"],
            )  # fmt: skip
        return spec, source
    if given or record is None:
        if not given:
            raise CLIError(
                "Say which data to evaluate on: --dataset KEY or --data-dir DIR (this adapter has no record "
                "of its training data, training_data.json, to default to)."
            )
        return resolve_data(args, default=None)
    if folder:
        if not os.path.isdir(folder["root"]):
            raise CLIError(
                f"The adapter was trained on the folder {folder['root']!r}, which is not here; give its new "
                "place with --data-dir DIR (its recorded names, template and split apply)."
            )
        return folder_benchmark_from_record(folder)
    spec = get_benchmark(record["dataset"])
    registry = describe_data(spec, None, record.get("dataset_revision"))
    if record.get("data") and record["data"] != registry:
        logger.warning(
            "the adapter was trained on %s; evaluating on %s (name the same source with --data-dir, "
            "--split-file or --exported to read the same images)", record["data"], registry,
        )  # fmt: skip
    return spec, None


def evaluate_command(args) -> dict:
    from .data import describe_data
    from .evaluate.report import write_report
    from .hub import DATA_RECORD_FILE, SELECTION_FILE, method_of
    from .runner import check_adapter_data, evaluate_protocol, format_metrics, hub_datasets_of, results_record

    model = load_adapter(args.model)
    record = read_adapter_record(args.model, DATA_RECORD_FILE)
    spec, source = _data_of_record(args, record)
    protocol = (
        args.protocol or (record or {}).get("protocol") or ("base2new" if spec.base_new else "few_shot")
    )
    revision = args.dataset_revision or (
        None if _names_data(args) else (record or {}).get("dataset_revision")
    )
    trained_on = check_adapter_data(
        model,
        record,
        spec,
        protocol,
        source=source,
        revision=revision,
        classes_from_data=args.classes_from_data,
    )
    if record is not None:
        shots = record["shots"]
    elif not model.capabilities.learns_parameters:
        shots = 0
    else:  # an adapter saved without a data record: its few-shot draw, if any
        selection = read_adapter_record(args.model, SELECTION_FILE)
        shots = selection["shots"] if selection else None
    image_dtype = dtype_name(args.image_dtype)
    if image_dtype != "float32":
        model.set_image_dtype(image_dtype)  # refused for a method that trains through its image tower
    feature_cache = ImageFeatureCache(directory=args.feature_cache) if args.feature_cache else None
    metrics = evaluate_protocol(
        model,
        spec,
        protocol,
        source=source,
        targets=args.targets,
        dataset_revision=revision,
        batch_size=args.eval_batch_size,
        feature_cache=feature_cache,
    )
    if feature_cache is not None:
        logger.info("%s", feature_cache.summary())
    results = results_record(
        method_of(model.config),
        model.config.base_model_name_or_path,
        spec,
        protocol,
        shots,
        [{"seed": (record or {}).get("seed"), "metrics": metrics}],
        describe_data(spec, source, revision),
        trained_on=trained_on,
        trained_protocol=(record or {}).get("protocol"),
        hub_datasets=hub_datasets_of(spec, protocol, args.targets or (), source, revision),
    )
    if image_dtype != "float32":
        results["image_dtype"] = image_dtype
    if _is_main_process():
        if args.output_dir:
            write_report([results], args.output_dir)
        print(f"{results['method']} on {spec.key} ({protocol}): {format_metrics(results['mean'])}")
        print(json.dumps(results["mean"], indent=1))
    return results


# ------------------------------------------------------------------------------------ the rest


def summary_command(args) -> None:
    from .data import summarize

    spec, source = resolve_data(args, default=None)
    summarize(
        spec,
        source=source,
        revision=args.dataset_revision,
        splits=args.splits,
        shots=args.shots,
        seed=args.seed,
        sampler=args.few_shot_sampler,
        subset=args.subset,
        max_classes=args.max_classes,
    )


def export_command(args) -> None:
    from .data import export_benchmark

    spec, source = resolve_data(args, default=None)
    folder = export_benchmark(
        spec,
        args.output_dir,
        source=source,
        revision=args.dataset_revision,
        push_to_hub=args.push_to_hub,
        private=args.private,
    )
    print(f"wrote {folder}" + (f" and pushed it to {args.push_to_hub}" if args.push_to_hub else ""))


def push_command(args) -> None:
    from .core.model_card import retarget_model_card
    from .hub import check_adapter_folder, check_push_access
    from .runner import publish

    check_adapter_folder(args.adapter)
    check_push_access(args.repo_id)
    retarget_model_card(args.adapter, args.repo_id)  # its loading example names the repository
    print(f"pushed {args.adapter} to {publish(args.adapter, args.repo_id, private=args.private)}")


def configure_logging(quiet: bool = False) -> None:
    """The package's progress lines on stderr (time and message); other libraries' logs and progress
    bars silenced to errors, so the output tells what runs and how it ends."""
    import datasets
    import huggingface_hub
    import transformers

    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # the package's own bars too
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("hf_prompt_clip").setLevel(logging.WARNING if quiet else logging.INFO)
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    huggingface_hub.utils.logging.set_verbosity_error()  # its retry lines: the final error names the timeouts


def one_line(error: BaseException) -> str:
    """An exception's message on one line (a `KeyError`'s without its quotes)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def run(args) -> None:
    """Run the parsed command."""
    from .runner import PushFailedError

    if args.command == "train":
        try:
            results = train_command(args)
        except PushFailedError as error:  # everything but the push is done: show it, then fail
            if _is_main_process():
                _print_train_results(error.results, args.output_dir)
            end_processes()  # the other processes finished and wait at the end
            raise
        if _is_main_process():
            _print_train_results(results, args.output_dir)
    elif args.command == "evaluate":
        evaluate_command(args)
    elif args.command == "data":
        export_command(args)
    elif args.command == "push":
        push_command(args)
    else:
        summary_command(args)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG, command: str | None = None) -> None:
    """The command line. `command` builds the parser of that command alone (under `prog`)."""
    args = build_parser(prog, command).parse_args(argv)
    configure_logging(args.quiet)
    try:
        run(args)
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted (train: rerun with --resume-from-checkpoint latest to continue)",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    except Exception as error:
        if args.debug:
            raise
        print(f"{prog}: error: {one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
    end_processes()


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def end_processes() -> None:
    """Wait for every process, then end the process group: under `accelerate launch`/torchrun a rank
    that exits while gloo/NCCL still holds the group can abort ("terminate called ...")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
