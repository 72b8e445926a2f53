"""`hf-prompt-clip`: train, evaluate and inspect prompt learners from the command line.

Room: `cli/`.

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
    hf-prompt-clip recipes coop --protocol few_shot --dataset imagenet --shots 16
    hf-prompt-clip reproduce coop --protocol few_shot --base-model openai/clip-vit-base-patch16

Errors are one line (what, why, the flag that fixes it) with exit code 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.registry import METHODS, baseline_method
from ..data import list_benchmarks
from ..evaluate.records import ExperimentResult
from ..experiment import runner
from ..experiment.checks import method_option_names
from ..experiment.evaluation import evaluate_adapter, format_metrics, load_adapter, read_data_record
from ..experiment.settings import ExperimentConfig
from ..train import TrainingConfig
from .arguments import (
    FEW_SHOT_SAMPLERS,
    SPLIT_CHOICES,
    SUGGESTED_BASE,
    SYNTHETIC_DEFAULTS,
    HelpFormatter,
    Parser,
    _repo_id,
    add_settings,
    given_settings,
    one_line,
    seed_type,
    settings_of,
)
from .data import (
    DEFAULT_DATASET,
    LOCAL_DATASET,
    CLIError,
    _folder_flags,
    add_source_arguments,
    names_data,
    resolve_data,
)

__all__ = [
    "DEFAULT_DATASET",
    "FEW_SHOT_SAMPLERS",
    "LOCAL_DATASET",
    "PROG",
    "SUGGESTED_BASE",
    "SYNTHETIC_DEFAULTS",
    "CLIError",
    "build_parser",
    "fill_defaults",
    "load_adapter",
    "main",
    "one_line",
    "resolve_data",
]

PROG = "hf-prompt-clip"

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ the commands' arguments

TRAIN_FLAGS = ["--method", "--all-methods", "--no-baseline", "--option", "--base-model", "--base-revision"]
RUN_FLAGS = ["--shots", "--few-shot-sampler", "--seed", "--recipe", "--epochs", "--batch-size", "--lr",
             "--optimizer", "--lr-schedule", "--warmup-epochs", "--weight-decay", "--max-steps", "--gradient-accumulation-steps", "--max-grad-norm",
             "--mixed-precision", "--checkpoint-every-steps", "--resume-from-checkpoint",
             "--overwrite-output-dir", "--num-workers", "--report-to", "--output-dir", "--push-to-hub",
             "--private", "--feature-cache", "--image-dtype", "--augment-views"]  # fmt: skip
PROTOCOL_FLAGS = ["--protocol", "--targets", "--eval-batch-size"]


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    add_settings(train, TRAIN_FLAGS)
    add_source_arguments(train)
    add_settings(train, [*PROTOCOL_FLAGS, *RUN_FLAGS])


def add_evaluate_arguments(evaluate: argparse.ArgumentParser) -> None:
    add_settings(evaluate, ["--model"])
    add_source_arguments(evaluate)
    protocol_help = (
        "the papers' evaluation protocol (docs/training.md); default: the one the adapter was trained with"
    )
    add_settings(
        evaluate, [*PROTOCOL_FLAGS, "--classes-from-data", "--output-dir", "--feature-cache", "--image-dtype"],
        **{"--protocol": {"default": None, "help": protocol_help},
           "--output-dir": {"default": None, "help": "write results.json/.md and plots here"}},
    )  # fmt: skip


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
    summary.add_argument("--seed", type=seed_type, default=1, help="seed of the few-shot draw")
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
    push.add_argument("adapter", help="a saved adapter folder (e.g. outputs/run/<method>/seed1/adapter)")
    push.add_argument("repo_id", type=_repo_id, help="the Hub model repository, namespace/name")
    push.add_argument("--private", action="store_true", help="create the Hub repository as private")


def add_merge_arguments(merge: argparse.ArgumentParser) -> None:
    merge.add_argument(
        "adapter", help="a saved adapter folder or Hub id whose adapter folds into CLIP's weights"
    )
    merge.add_argument("output", help="the folder to write the plain CLIPModel to (with classes.json)")


def add_recipes_arguments(recipes: argparse.ArgumentParser) -> None:
    recipes.add_argument(
        "methods", nargs="*", metavar="METHOD", help="methods to show (default: every one with a recipe)"
    )
    add_settings(
        recipes, ["--protocol", "--shots"],
        **{"--protocol": {"default": None, "help": "with --dataset (and --shots): the settings of one cell"},
           "--shots": {"nargs": None, "default": 16, "help": "training images per class of that cell, or 'all'"}},
    )  # fmt: skip
    recipes.add_argument("--dataset", default=None, help="a benchmark key (another name: your own data)")


def add_reproduce_arguments(reproduce: argparse.ArgumentParser) -> None:
    reproduce.add_argument("method", choices=list(METHODS), help="the method whose paper table to reproduce")
    add_settings(reproduce, ["--option", "--base-model", "--base-revision"])
    reproduce.add_argument(
        "--datasets", nargs="+", default=None, metavar="DATASET",
        help="training datasets (default: those the paper reports for the protocol)",
    )  # fmt: skip
    add_settings(
        reproduce, ["--shots"],
        **{"--shots": {"dest": "shot_counts", "default": None, "metavar": "K",
                       "help": "shot counts (default: the paper table's, `hf-prompt-clip recipes METHOD`)"}},
    )  # fmt: skip
    flags = [flag for flag in RUN_FLAGS if flag not in ("--shots", "--push-to-hub", "--private", "--recipe")]
    add_settings(
        reproduce, [*PROTOCOL_FLAGS, *flags],
        **{"--protocol": {"default": "few_shot"}, "--seed": {"default": [1, 2, 3]},
           "--few-shot-sampler": {"default": "dassl"},
           "--output-dir": {"default": None, "help": "default: outputs/reproduce/<method>-<protocol>"}},
    )  # fmt: skip


COMMANDS = {
    "train": ("train an adapter with a paper's protocol and evaluate it", add_train_arguments),
    "evaluate": ("evaluate a saved adapter (folder or Hub id)", add_evaluate_arguments),
    "data-summary": ("classes, split sizes and a few-shot draw of a dataset", add_summary_arguments),
    "push": ("publish a saved adapter folder (with its model card) on the Hub", add_push_arguments),
    "merge": ("fold an adapter into a plain CLIPModel folder for stock transformers", add_merge_arguments),
    "recipes": ("print the papers' training recipes the methods declare (`--recipe paper`)", add_recipes_arguments),
    "reproduce": ("train a method's paper grid with its recipe and compare with the paper's table",
                  add_reproduce_arguments),
}  # fmt: skip


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only (no progress lines)")


def build_parser(prog: str = PROG, command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or the parser of one `command` alone (what `examples/train.py` offers as `prog`)."""
    if command is not None:
        help_text, add = COMMANDS[command]
        parser = Parser(
            prog=prog, description=f"{help_text[0].upper()}{help_text[1:]} ({PROG} {command}).",
            formatter_class=HelpFormatter,
        )  # fmt: skip
        add(parser)
        _add_common(parser)
        parser.set_defaults(command=command)
        return parser
    parser = Parser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add) in COMMANDS.items():
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
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
        formatter_class=HelpFormatter,
    )
    add_export_arguments(export)
    _add_common(export)
    return parser


# ------------------------------------------------------------------------------------ train


def fill_defaults(args, methods: Sequence[str], synthetic: bool, recipe: str = "none") -> None:
    """`SYNTHETIC_DEFAULTS` for the embedded world without a recipe (its method options too, for the methods
    that have them, unless the user gives `--option`s). Elsewhere a setting not given stays unset: the
    recipe's value, else `TrainingConfig`'s default, applies (`training_config`)."""
    if not synthetic or recipe != "none":
        return
    # only a value not given takes the default: 0 is a value (refused by the parser), not "unset"
    if args.epochs is None:
        args.epochs = SYNTHETIC_DEFAULTS["epochs"]
    if args.lr is None:
        args.lr = SYNTHETIC_DEFAULTS["lr"]
    if args.optimizer is None:
        args.optimizer = SYNTHETIC_DEFAULTS["optimizer"]
    if not args.options:
        known = method_option_names(methods)
        args.options = [(key, value) for key, value in SYNTHETIC_DEFAULTS["options"] if key in known]


def default_recipe(spec) -> str:
    """`--recipe`'s default: `"paper"` on a registered benchmark, `"none"` on your own data and the synthetic
    world (the tiny CLIP needs other settings than ViT-B/16).

    Args:
        spec: the run's benchmark (`resolve_data`).

    Example:
        >>> default_recipe(get_benchmark("dtd"))
        'paper'
    """
    return "paper" if spec.key in list_benchmarks() and not spec.synthetic else "none"


def training_config(args) -> TrainingConfig:
    """The `TrainingConfig` of the flags (a setting not given: its default; which were given, and so win over
    a recipe, is `given_settings`).

    Args:
        args: the parsed `train` or `reproduce` arguments.
    """
    values = {name: value for name, value in settings_of(args, TrainingConfig).items() if value is not None}
    return TrainingConfig(**values, output_dir=args.output_dir)


def base_model_for(args, spec) -> str:
    """`--base-model`, or the shipped tiny CLIP on the synthetic world (it was trained on it)."""
    if args.base_model:
        return args.base_model
    if spec.synthetic:
        from ..synthetic import TINY_CLIP_ID

        return TINY_CLIP_ID
    raise CLIError(
        f"--base-model is required for {spec.key!r}: only the synthetic world has a default base model (the "
        f"package's tiny CLIP). Give a Hub id such as --base-model {SUGGESTED_BASE} or a local CLIP folder."
    )


def train_command(args) -> list[ExperimentResult]:
    """`hf-prompt-clip train`: the flags as an `ExperimentConfig` (with its `TrainingConfig`), then
    `run_comparison`."""
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
    spec, source = resolve_data(args, default=DEFAULT_DATASET)
    base_model = base_model_for(args, spec)
    recipe = args.recipe or default_recipe(spec)
    overrides = given_settings(args, TrainingConfig)  # before the synthetic world's defaults fill the rest
    fill_defaults(args, methods, spec.synthetic, recipe)
    training = training_config(args)
    given = {
        "recipe": recipe,
        "overrides": overrides,
        "method": (learned or methods)[0],  # the method that --push-to-hub publishes
        "method_options": dict(args.options),
        "base_model": base_model,
        "dataset": spec,
        "source": source,
        "shots": args.shots[0],
        "training": training,
    }
    config = ExperimentConfig(**{**settings_of(args, ExperimentConfig), **given})
    return runner.run_comparison(
        config, methods, skip_unsupported=args.all_methods, shots=args.shots, named=named
    )


def written_files(output_dir: str | os.PathLike) -> list[str]:
    """The report files present in `output_dir` (`write_report` removes charts that do not apply)."""
    from ..evaluate.report import REPORT_FILES

    return [name for name in REPORT_FILES.values() if (Path(output_dir) / name).is_file()]


def _print_train_results(results: list[dict], output_dir: str) -> None:
    from ..evaluate.report import results_table

    print("\n" + results_table(results))
    print(
        f"\nwrote {', '.join(written_files(output_dir))} in {output_dir}; adapters with model cards in "
        f"{output_dir}/<method>/.../seed<N>/adapter"
    )


# ------------------------------------------------------------------------------------ evaluate


def _record_quietly(model: str):
    """The adapter's data record, or `None` (a missing adapter is refused by `evaluate_adapter`)."""
    try:
        return read_data_record(model)
    except Exception:
        return None


def evaluate_command(args) -> ExperimentResult:
    """`hf-prompt-clip evaluate`: the data flags read into a benchmark, `evaluate_adapter`, the metrics printed."""
    dataset = source = data_dir = None
    own_folder = (
        args.data_dir and args.dataset in (None, LOCAL_DATASET) and not (args.split_file or args.exported)
    )
    if own_folder and not _folder_flags(args) and not args.dataset_revision:
        data_dir = (
            args.data_dir
        )  # the adapter's recorded folder moved there (its names and split), or a folder
    elif own_folder:  # the flags given over the recorded folder's settings
        record = _record_quietly(args.model)
        dataset, source = resolve_data(args, default=None, recorded=record.folder if record else None)
    elif names_data(args):
        dataset, source = resolve_data(args, default=None)
    result = evaluate_adapter(
        args.model, dataset=dataset, source=source, data_dir=data_dir, dataset_revision=args.dataset_revision,
        protocol=args.protocol, targets=args.targets, classes_from_data=args.classes_from_data,
        eval_batch_size=args.eval_batch_size, image_dtype=args.image_dtype, feature_cache=args.feature_cache,
        output_dir=args.output_dir,
    )  # fmt: skip
    if _is_main_process():
        print(f"{result.method} on {result.dataset} ({result.protocol}): {format_metrics(result.mean)}")
        print(json.dumps(result.mean, indent=1))
    return result


# ------------------------------------------------------------------------------------ the rest


def summary_command(args) -> None:
    from ..data import summarize

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
    from ..data import export_benchmark

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
    from ..experiment.runner import publish
    from ..hub import check_adapter_folder, check_push_access
    from ..serialization.card import retarget_model_card

    check_adapter_folder(args.adapter)
    check_push_access(args.repo_id)
    retarget_model_card(args.adapter, args.repo_id)  # its loading example names the repository
    print(f"pushed {args.adapter} to {publish(args.adapter, args.repo_id, private=args.private)}")


def merge_command(args) -> str:
    """`hf-prompt-clip merge ADAPTER OUTPUT`: the adapter folded into a plain `CLIPModel` folder
    (`save_merged`), where the model says it can be (`merge_problem`)."""
    model = load_adapter(args.adapter)
    if model.merge_problem is not None:
        raise CLIError(f"{args.adapter}: {model.merge_problem}; use the adapter folder itself.")
    folder = model.save_merged(args.output)
    print(
        f"wrote a plain CLIPModel with the adapter folded in to {folder} (classes and template in classes.json)"
    )
    return folder


def recipes_command(args) -> str:
    """`hf-prompt-clip recipes [METHOD ...]`: each method's recipe entries, or with `--protocol` and
    `--dataset` the settings of that cell."""
    from ..experiment.recipes import method_recipe, recipe_text, resolved_text

    unknown = [method for method in args.methods if method not in METHODS]
    if unknown:
        raise CLIError(f"unknown method {', '.join(unknown)}; the methods are {', '.join(METHODS)}")
    methods = args.methods or [method for method in METHODS if method_recipe(method) is not None]
    if args.protocol or args.dataset:
        if not (args.protocol and args.dataset):
            raise CLIError("give --protocol and --dataset together (and --shots) to see one cell's settings")
        text = "\n\n".join(
            resolved_text(method, args.protocol, args.dataset, args.shots) for method in methods
        )
        if args.dataset not in list_benchmarks():
            text += f"\n\n({args.dataset!r} is not a registered benchmark: only the entries for every dataset apply)"
    else:
        text = "\n\n".join(recipe_text(method) for method in methods)
    print(text)
    return text


def reproduce_command(args):
    """`hf-prompt-clip reproduce METHOD --protocol P`: the paper's grid with its recipe (`experiment.reproduce`)."""
    from ..data import get_benchmark
    from ..experiment.reproduce import TABLE_FILE, paper_grid, reproduce

    datasets = args.datasets or paper_grid(args.method, args.protocol)[0]
    if not datasets:
        raise CLIError(
            f"no dataset to reproduce {args.method} on under {args.protocol}; name them with --datasets"
        )
    synthetic = all(get_benchmark(key).synthetic for key in datasets)
    args.base_model = args.base_model or (
        base_model_for(args, get_benchmark(datasets[0])) if synthetic else None
    )
    if not args.base_model:
        raise CLIError(
            f"--base-model is required for real benchmarks; the papers use --base-model {SUGGESTED_BASE}."
        )
    args.output_dir = args.output_dir or f"outputs/reproduce/{args.method}-{args.protocol}"
    training, overrides = training_config(args), given_settings(args, TrainingConfig)
    config = ExperimentConfig(**{
        **settings_of(args, ExperimentConfig), "method": args.method, "method_options": dict(args.options),
        "base_model": args.base_model, "dataset": datasets[0], "training": training, "recipe": "paper",
        "overrides": overrides,
    })  # fmt: skip
    results, rows = reproduce(config, datasets=datasets, shots=args.shot_counts)
    if _is_main_process():
        from ..experiment.reproduce import reproduction_table

        print("\n" + reproduction_table(rows))
        print(f"\nwrote {TABLE_FILE}, reproduction.json and the report in {args.output_dir}")
    return results, rows


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


def run(args) -> None:
    """Run the parsed command."""
    if args.command == "train":
        try:
            results = train_command(args)
        except runner.PushFailedError as error:  # everything but the push is done: show it, then fail
            if _is_main_process():
                _print_train_results(error.results, args.output_dir)
            end_processes()  # the other processes finished and wait at the end
            raise
        if _is_main_process():
            _print_train_results(results, args.output_dir)
    else:
        HANDLERS[args.command](args)


#: The commands other than `train`, by name (`data` is `data export`).
HANDLERS = {
    "evaluate": evaluate_command,
    "data": export_command,
    "data-summary": summary_command,
    "push": push_command,
    "merge": merge_command,
    "recipes": recipes_command,
    "reproduce": reproduce_command,
}


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
