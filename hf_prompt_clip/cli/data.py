"""The command line's data-source flags: a registry key, your own image folder (`--data-dir`), a CoOp split
file or an exported set, read into the `(spec, source)` a run and an evaluation take.

Room: the command line. Errors here name flags (`CLIError`): this is where flags are read.
"""

from __future__ import annotations

import argparse
import os

#: The data a run reads when none is named: the package's synthetic world.
DEFAULT_DATASET = "synthetic_shapes_outline"
#: `hf_prompt_clip.data.LOCAL_DATASET`: the key of your own image folder.
LOCAL_DATASET = "imagefolder"


class CLIError(ValueError):
    """A mistake in the command line: printed as one line, exit code 2."""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


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
    from ..data import CoOpSplitSource, ImageFolderSource, exported_source

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
        from ..data.sources import has_split_folders

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
    from ..data.local import DEFAULT_SPLIT_FRACTIONS
    from ..data.sources import has_split_folders

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
    from ..data import UnknownBenchmarkError, folder_benchmark, get_benchmark

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


def names_data(args) -> bool:
    """Whether the command line names the data (else an adapter's record does)."""
    return bool(args.dataset or args.data_dir or args.split_file or args.exported)
