"""Your own images as a benchmark: a folder of class folders, with the protocols of a registered one.

Room: `data/`.

    from hf_prompt_clip.data import folder_benchmark, load_benchmark
    spec, source = folder_benchmark("my_shapes", template="a photo of a {}, a type of shape.")
    train = load_benchmark(spec, "train", source=source)

The folder is `root/<class>/<image>` (flat: split per class into train / val / test, seeded) or
`root/{train,val,test}/<class>/<image>`. Class names are the folder names with `_` read as a space,
or the names of a class-names file. The benchmark's key is `imagefolder:<folder name>`, so results,
reports and cards name the folder and never a registered benchmark it is not (docs/data.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .registry import IMAGENET_TEMPLATE, BenchmarkSpec
from .sources import SPLIT_FOLDERS, ImageFolderSource, has_split_folders

#: Prefix of the keys of folder benchmarks (registered keys have no colon).
LOCAL_PREFIX = "imagefolder:"
#: The CLI's `--dataset` value for your own folder (with `--data-dir`).
LOCAL_DATASET = "imagefolder"
DEFAULT_SPLIT_FRACTIONS: dict[str, float] = {"val": 0.1, "test": 0.2}


def is_local_key(key: str) -> bool:
    """Whether a benchmark key names a local folder (`imagefolder:<name>`), not a registered benchmark."""
    return key.startswith(LOCAL_PREFIX)


def local_name(key: str) -> str:
    """The folder name in a folder benchmark's key (`"imagefolder:my_shapes"` -> `"my_shapes"`)."""
    return key[len(LOCAL_PREFIX) :] if is_local_key(key) else key


@dataclass(frozen=True)
class FolderNames:
    """Class-name rule of a folder benchmark: folder name -> class name (a plain, hashable callable)."""

    names: tuple[tuple[str, str], ...]

    def __call__(self, raw: str) -> str:
        return dict(self.names).get(raw, readable_name(raw))


def readable_name(folder: str) -> str:
    """A folder name as a class name: `_` as spaces, runs of space made one (`"red_circle"` -> `"red circle"`)."""
    return " ".join(folder.replace("_", " ").split())


def class_folders(root: str | os.PathLike) -> list[str]:
    """The class folders of an image tree in ASCII order (over all split folders of a split tree).

    Raises:
        FileNotFoundError: when `root` is not a folder or holds no class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(root)!r} does not exist. Give a folder with one sub-folder of images per "
            "class (root/<class>/*.jpg), or with train/ and test/ folders of class folders."
        )
    tops = (
        [root / name for name in SPLIT_FOLDERS if (root / name).is_dir()]
        if has_split_folders(root)
        else [root]
    )
    names = sorted({child.name for top in tops for child in top.iterdir() if child.is_dir()})
    if not names:
        raise FileNotFoundError(
            f"Image folder {str(root)!r} has no class folders: put each class's images in a sub-folder "
            "named after the class (root/cat/1.jpg, root/dog/2.jpg)."
        )
    return names


def read_class_names(path: str | os.PathLike, folders: Sequence[str]) -> dict[str, str]:
    """Folder -> class name from a class-names file.

    The file is JSON (an object `{"folder": "name"}`, or a list of names in the folders' ASCII order) or
    text with one name per line in that order (`#` comments skipped; blank lines are not names: they are
    skipped, and named, with the folder whose name they stand for, when the names fall short).

    Raises:
        ValueError: when a list does not give one name per class folder (naming the file's empty lines),
            a JSON name is empty, or an object names folders that do not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Class-names file {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    blank: list[int] = []  # numbers of the empty lines among the names (a text file)
    if path.suffix == ".json":
        try:
            content = json.loads(text)
        except ValueError as error:
            raise ValueError(
                f'{str(path)!r} is not valid JSON ({error}); give a JSON object {{"folder": "name"}} or a list '
                "of names, or a text file (not .json) with one name per line."
            ) from error
    else:
        lines = text.splitlines()
        named = [n for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
        content = [lines[n - 1].strip() for n in named]
        blank = [n for n, line in enumerate(lines, 1) if not line.strip() and n < (named or [0])[-1]]
    if isinstance(content, Mapping):
        unknown = sorted(set(content) - set(folders))
        if unknown:
            raise ValueError(
                f"{str(path)!r} names folders that are not class folders: {unknown[:5]}; the class "
                f"folders are {list(folders)[:10]}."
            )
        names = {folder: str(content.get(folder, readable_name(folder))) for folder in folders}
        empty = [f"{folder!r}" for folder in folders if folder in content and not names[folder].strip()]
        if empty:
            raise ValueError(
                f"{str(path)!r} gives an empty name to the class folder {', '.join(empty)}; write its name, or "
                "leave the folder out of the object to use the folder's own name."
            )
        return names
    empty = [i for i, name in enumerate(content) if not str(name).strip()]
    if empty and len(content) == len(folders):
        raise ValueError(
            f"{str(path)!r} entry {', '.join(str(i + 1) for i in empty)} of its list is empty, where the name of the "
            f"class folder {', '.join(repr(folders[i]) for i in empty)} goes; write the name there."
        )
    if len(content) < len(folders) and blank:
        raise ValueError(blank_lines_problem(path, blank, lines, folders))
    if len(content) != len(folders):
        raise ValueError(
            f"{str(path)!r} lists {len(content)} names but there are {len(folders)} class folders "
            f"({list(folders)[:10]}); give one name per folder in this order, or a JSON object "
            '{"folder": "name"}.'
        )
    return dict(zip(folders, map(str, content)))


def blank_lines_problem(
    path: str | os.PathLike, blank: Sequence[int], lines: Sequence[str], folders: Sequence[str]
) -> str:
    """Why a class-names file gives too few names for its class folders when it holds empty lines among
    them: the line numbers and, when each empty line holds the place of a folder's name, those folders.

    Args:
        path: the file.
        blank: the numbers (from 1) of its empty lines before its last name.
        lines: its lines.
        folders: the class folders in ASCII order.

    Example:
        >>> print(blank_lines_problem("names.txt", [2], ["cat", "", "fox"], ["cat", "dog", "fox"]))
        'names.txt' line 2 is empty (whitespace only) where the 2nd class folder's name goes ('dog'); ...
    """
    names = [n for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
    which = f"line {blank[0]} is" if len(blank) == 1 else f"lines {', '.join(map(str, blank))} are"
    count = f"the file lists {len(names)} names for {len(folders)} class folders"
    if len(names) + len(blank) == len(folders):  # each empty line holds the place of one folder's name
        slots = sorted([*names, *blank])
        places = [slots.index(n) for n in blank]
        ordinals = " and ".join(_ordinal(place + 1) for place in places)
        owners = ", ".join(repr(folders[place]) for place in places)
        where = (
            f"the {ordinals} class folder's name goes"
            if len(places) == 1
            else f"the names of the {ordinals} class folders go"
        )
        return (
            f"{str(path)!r} {which} empty (whitespace only) where {where} ({owners}); blank lines are not names, so {count}. Write the name there, or give a JSON object "
            '{"folder": "name"} to name only some folders.'
        )
    return (
        f"{str(path)!r} {which} empty (whitespace only), and blank lines are not names: {count} "
        f"({list(folders)[:10]}). Write the missing names there (or delete the empty lines), one name per "
        'folder in this order, or give a JSON object {"folder": "name"}.'
    )


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def folder_benchmark(
    root: str | os.PathLike,
    *,
    template: str | None = None,
    class_names: str | os.PathLike | Mapping[str, str] | None = None,
    super_category: str | None = None,
    split_fractions: Mapping[str, float] | None = None,
    split_seed: int = 0,
    cache_dir: str | None = None,
    name: str | None = None,
) -> tuple[BenchmarkSpec, ImageFolderSource]:
    """A benchmark spec and its source for a local image folder, usable wherever a registered key is.

    Args:
        root: `root/<class>/<image>` (flat) or `root/{train,val,test}/<class>/<image>`.
        template: the zero-shot template with one `{}` (default `"a photo of a {}."`).
        class_names: a class-names file (`read_class_names`) or a mapping folder -> name; default:
            the folder names with `_` as spaces.
        super_category: the category word of the classes (`"bird"`), for methods that need one.
        split_fractions: the per-class fractions of val and test of a flat folder
            (default `{"val": 0.1, "test": 0.2}`); ignored when the folder has split folders.
        split_seed: seed of that split.
        cache_dir: the `datasets` cache folder.
        name: the dataset's name in its key (default: the folder's name; a moved folder keeps its
            recorded one).

    Returns:
        `(spec, source)`: the spec's key is `imagefolder:<folder name>`, its classes the class folders
        in ASCII order (base / new: the first / last half, as for any benchmark).

    Example:
        >>> spec, source = folder_benchmark("data/shapes", super_category="shape")
        >>> spec.key, spec.num_classes
        ('imagefolder:shapes', 5)
    """
    folders = class_folders(root)
    if isinstance(class_names, Mapping):
        names = {folder: str(class_names.get(folder, readable_name(folder))) for folder in folders}
    elif class_names is not None:
        names = read_class_names(class_names, folders)
    else:
        names = {folder: readable_name(folder) for folder in folders}
    repeated = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if repeated:
        raise ValueError(
            f"Several class folders of {str(root)!r} have the same class name {repeated[:5]} (folders "
            f"{[f for f, n in names.items() if n in repeated][:6]}): class names must be unique. Rename a "
            "folder or give distinct names in a class-names file (--class-names)."
        )
    name = name or Path(os.path.abspath(root)).name
    source = ImageFolderSource(
        str(root),
        cache_dir=cache_dir,
        split_fractions=dict(DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions),
        split_seed=split_seed,
    )
    spec = BenchmarkSpec(
        f"{LOCAL_PREFIX}{name}",
        template or IMAGENET_TEMPLATE,
        num_classes=len(folders),
        source=source,
        clean_name=FolderNames(tuple(names.items())),
        class_names=tuple(names[folder] for folder in folders),
        super_category=super_category,
        description=f"your image folder {os.path.abspath(root)!r}, {len(folders)} classes",
        reference_text_cleanup=False,  # the names are the user's own
    )
    return spec, source


def folder_record(spec: BenchmarkSpec, source: ImageFolderSource) -> dict:
    """What rebuilds a folder benchmark (`folder_benchmark_from_record`): saved beside an adapter, so
    evaluation reads the same folder with the same names and the same split."""
    names = dict(spec.clean_name.names) if isinstance(spec.clean_name, FolderNames) else None
    return {
        "root": os.path.abspath(source.root),
        "name": local_name(spec.key),
        "template": spec.template,
        "class_names": names,
        "super_category": spec.super_category,
        "split_fractions": dict(source.split_fractions or {}),
        "split_seed": source.split_seed,
    }


def folder_benchmark_from_record(record: Mapping) -> tuple[BenchmarkSpec, ImageFolderSource]:
    """`folder_benchmark` with the settings of a `folder_record`."""
    return folder_benchmark(
        record["root"],
        template=record.get("template"),
        class_names=record.get("class_names"),
        super_category=record.get("super_category"),
        split_fractions=record.get("split_fractions"),
        split_seed=record.get("split_seed", 0),
        name=record.get("name"),
    )
