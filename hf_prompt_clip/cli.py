"""`hf-prompt-clip`: train, evaluate and inspect prompt learners from the command line.

    hf-prompt-clip train --method cocoop --dataset imagenet --shots 16 --seed 1 \\
        --base-model openai/clip-vit-base-patch16 --push-to-hub org/cocoop-vitb16-imagenet
    accelerate launch -m hf_prompt_clip.cli train ...          # many GPUs (or examples/train.py)
    hf-prompt-clip evaluate --model org/coop-vitb16-dtd --dataset dtd --protocol base2new
    hf-prompt-clip data-summary eurosat --shots 16
    hf-prompt-clip data export eurosat --split-file split_zhou_EuroSAT.json --image-root eurosat/2750 \\
        --output-dir eurosat-coop --push-to-hub me/eurosat-coop
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.registry import METHODS, baseline_method
from .train import SCHEDULES, TrainingConfig

DEFAULT_DATASET = "synthetic_shapes_outline"
# Settings for the embedded synthetic world, used there unless given: the papers' SGD at 0.002
# suits ViT-B/16; the 1.75 M-parameter tiny CLIP needs a larger step. (Measured in docs/synthetic.md.)
SYNTHETIC_DEFAULTS = {
    "epochs": 10,
    "lr": 0.01,
    "optimizer": "adamw",
    "options": [("n_ctx", 4), ("ctx_init", "a photo of a")],
}
DEFAULT_HUB_BASE = "openai/clip-vit-base-patch16"
#: `hf_prompt_clip.data.SAMPLERS`, spelled out so that building the parser imports no dataset code.
FEW_SHOT_SAMPLERS = ("numpy", "dassl")


def default_base_model(dataset: str) -> str:
    """The shipped tiny CLIP for the synthetic world (it was trained on it), CLIP ViT-B/16 otherwise."""
    from .data import get_benchmark

    if get_benchmark(dataset).synthetic:
        from .synthetic import TINY_CLIP_ID

        return TINY_CLIP_ID
    return DEFAULT_HUB_BASE


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


def _source(args):
    from .data import CoOpSplitSource, ImageFolderSource, exported_source

    if getattr(args, "exported", None):
        return exported_source(args.exported)
    if args.image_folder:
        return ImageFolderSource(args.image_folder)
    if args.split_file:
        if not args.image_root:
            raise SystemExit(
                "--split-file needs --image-root (the folder the split file's paths start from)."
            )
        return CoOpSplitSource(args.split_file, args.image_root)
    return None


def _paper_or_synthetic(paper_default, key: str) -> str:
    return f"default: {paper_default}, or {SYNTHETIC_DEFAULTS[key]} on the synthetic world"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="benchmark key of the registry (docs/data.md); the default is the synthetic world",
    )
    group.add_argument("--dataset-revision", default=None, help="revision of the dataset on the Hub")
    group.add_argument(
        "--image-folder", default=None, help="read the benchmark from a local imagefolder tree"
    )
    group.add_argument("--split-file", default=None, help="a CoOp split_zhou_*.json file (with --image-root)")
    group.add_argument("--image-root", default=None, help="the folder the split file's paths start from")
    group.add_argument(
        "--exported",
        default=None,
        metavar="REPO_OR_FOLDER",
        help="a dataset written by `hf-prompt-clip data export` (its folder or Hub repository)",
    )
    group.add_argument(
        "--protocol",
        default="base2new",
        choices=["few_shot", "base2new", "cross_dataset", "domain_generalization"],
        help="the papers' evaluation protocol (docs/training.md)",
    )
    group.add_argument(
        "--targets", nargs="*", default=[], help="test datasets for cross_dataset / domain shift"
    )
    group.add_argument("--eval-batch-size", type=int, default=64, help="per process")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-prompt-clip", description=__doc__, formatter_class=_HelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help, formatter_class=_HelpFormatter)

    train = command("train", "train an adapter with a paper's protocol and evaluate it")
    train.add_argument(
        "--method",
        dest="methods",
        nargs="+",
        default=["coop"],
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
        help="a method option, e.g. n_ctx=4 or ctx_init='a photo of a'",
    )
    train.add_argument(
        "--base-model",
        default=None,
        help=f"Hub id or folder of the base CLIP (default: {DEFAULT_HUB_BASE}, or the "
        "package's tiny pretrained CLIP for the synthetic world)",
    )
    train.add_argument("--base-revision", default=None, help="a commit, branch or tag of the base model")
    add_data_arguments(train)
    train.add_argument(
        "--shots",
        type=_shots,
        default=16,
        help="training images per class, or 'all' for the full training set",
    )
    train.add_argument(
        "--few-shot-sampler",
        default="numpy",
        choices=FEW_SHOT_SAMPLERS,
        help="'dassl' draws the shots as the CoOp authors' code does (the same images on their split files)",
    )
    train.add_argument("--seed", dest="seeds", type=int, nargs="+", default=[1], help="one or more seeds")
    defaults = TrainingConfig()
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=_paper_or_synthetic(defaults.epochs, "epochs"),
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="per process; the global batch is this x processes x accumulation steps",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help=_paper_or_synthetic(defaults.learning_rate, "lr"),
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
        type=int,
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
    train.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    train.add_argument("--report-to", nargs="*", default=[], help="trackers, e.g. tensorboard wandb")
    train.add_argument(
        "--output-dir",
        default="outputs/run",
        help="results here, each method's adapters in <method>/seed<N>/",
    )
    train.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO_ID",
        help="publish the trained method's adapter (first seed) with its model card",
    )
    train.add_argument("--private", action="store_true", help="create the Hub repository as private")

    evaluate = command("evaluate", "evaluate a saved adapter (folder or Hub id)")
    evaluate.add_argument("--model", required=True, help="adapter folder or Hub id")
    add_data_arguments(evaluate)
    evaluate.add_argument("--output-dir", default=None, help="write results.json/.md and plots here")

    summary = command("data-summary", "classes, split sizes and a few-shot draw of a dataset")
    summary.add_argument("dataset")
    summary.add_argument("--shots", type=int, default=None)
    summary.add_argument("--seed", type=int, default=1)
    summary.add_argument("--few-shot-sampler", default="numpy", choices=FEW_SHOT_SAMPLERS)

    data = command("data", "dataset tools: export a benchmark as a Hub-layout parquet dataset")
    actions = data.add_subparsers(dest="data_command", required=True)
    export = actions.add_parser(
        "export",
        help="write a benchmark from any source (a CoOp split file, an image folder, the Hub) as parquet",
        formatter_class=_HelpFormatter,
    )
    export.add_argument(
        "dataset", help="benchmark key of the registry: its class names and label order apply"
    )
    export.add_argument("--output-dir", required=True, help="the folder to write (data/<split>-*.parquet)")
    export.add_argument(
        "--split-file", default=None, help="a CoOp split_zhou_*.json file (with --image-root)"
    )
    export.add_argument("--image-root", default=None, help="the folder the split file's paths start from")
    export.add_argument("--image-folder", default=None, help="a local imagefolder tree")
    export.add_argument("--dataset-revision", default=None, help="revision of the registry's Hub source")
    export.add_argument(
        "--push-to-hub", default=None, metavar="REPO_ID", help="also upload it to this dataset repo"
    )
    export.add_argument("--private", action="store_true", help="create the Hub repository as private")
    return parser


def fill_defaults(args, methods: Sequence[str]) -> None:
    """Paper defaults for real benchmarks; `SYNTHETIC_DEFAULTS` for the embedded world (its method
    options, for the methods that have them, unless the user gives `--option`s)."""
    from .data import get_benchmark
    from .runner import method_option_names

    paper = TrainingConfig()
    synthetic = get_benchmark(args.dataset).synthetic
    args.epochs = args.epochs or (SYNTHETIC_DEFAULTS["epochs"] if synthetic else paper.epochs)
    args.lr = args.lr or (SYNTHETIC_DEFAULTS["lr"] if synthetic else paper.learning_rate)
    args.optimizer = args.optimizer or (SYNTHETIC_DEFAULTS["optimizer"] if synthetic else paper.optimizer)
    if synthetic and not args.options:
        known = method_option_names(methods)
        args.options = [(key, value) for key, value in SYNTHETIC_DEFAULTS["options"] if key in known]


def train_command(args) -> list[dict]:
    from .runner import ExperimentConfig, run_comparison

    methods = list(METHODS) if args.all_methods else list(dict.fromkeys(args.methods))
    baseline = baseline_method()
    learned = [method for method in methods if method != baseline]
    if args.push_to_hub and len(learned) > 1:
        raise SystemExit(
            f"--push-to-hub publishes one adapter but {len(learned)} methods were given ({', '.join(learned)}); "
            "run the method you want to publish with --method on its own."
        )
    if baseline and not args.no_baseline and baseline not in methods:
        methods.insert(0, baseline)
    fill_defaults(args, methods)
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
        num_workers=args.num_workers,
        report_to=args.report_to,
    )
    config = ExperimentConfig(
        method=(learned or methods)[0],  # the method that --push-to-hub publishes
        method_options=dict(args.options),
        base_model=args.base_model or default_base_model(args.dataset),
        base_revision=args.base_revision,
        dataset=args.dataset,
        source=_source(args),
        dataset_revision=args.dataset_revision,
        shots=args.shots,
        few_shot_sampler=args.few_shot_sampler,
        seeds=args.seeds,
        protocol=args.protocol,
        targets=args.targets,
        eval_batch_size=args.eval_batch_size,
        output_dir=args.output_dir,
        push_to_hub=args.push_to_hub,
        private=args.private,
        training=training,
    )
    return run_comparison(config, methods, skip_unsupported=args.all_methods)


def evaluate_command(args) -> dict:
    from transformers import AutoModel
    from transformers.utils import cached_file

    from .data import describe_data, get_benchmark
    from .evaluate.report import write_report
    from .hub import SELECTION_FILE, method_of
    from .runner import evaluate_protocol, results_record

    model = AutoModel.from_pretrained(args.model)
    # the few-shot draw saved with the adapter (folder or Hub repo), if any
    record = cached_file(args.model, SELECTION_FILE, _raise_exceptions_for_missing_entries=False)
    shots = json.loads(Path(record).read_text())["shots"] if record else None
    spec = get_benchmark(args.dataset)
    metrics = evaluate_protocol(
        model,
        spec,
        args.protocol,
        source=_source(args),
        targets=args.targets,
        dataset_revision=args.dataset_revision,
        batch_size=args.eval_batch_size,
    )
    base = model.config.base_model_name_or_path
    results = results_record(
        method_of(model.config),
        base,
        spec,
        args.protocol,
        shots,
        [{"seed": None, "metrics": metrics}],
        describe_data(spec, _source(args), args.dataset_revision),
    )
    if _is_main_process():
        if args.output_dir:
            write_report([results], args.output_dir)
        print(json.dumps(results["mean"], indent=1))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from .evaluate.report import results_table

        results = train_command(args)
        if _is_main_process():
            print("\n" + results_table(results))
            print(
                f"\nresults.json, results.md, charts and adapters (with model cards) are in {args.output_dir}"
            )
    elif args.command == "evaluate":
        evaluate_command(args)
    elif args.command == "data":
        from .data import export_benchmark

        if args.dataset_revision and _source(args) is not None:
            raise SystemExit(
                "--dataset-revision picks a commit of the registry's Hub source; it does not apply to "
                "--split-file / --image-folder / --exported. Drop one of them."
            )
        folder = export_benchmark(
            args.dataset,
            args.output_dir,
            source=_source(args),
            revision=args.dataset_revision,
            push_to_hub=args.push_to_hub,
            private=args.private,
        )
        print(f"wrote {folder}" + (f" and pushed it to {args.push_to_hub}" if args.push_to_hub else ""))
    else:
        from .data import summarize

        summarize(args.dataset, shots=args.shots, seed=args.seed, sampler=args.few_shot_sampler)
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
