"""The benchmark registry: one `BenchmarkSpec` per dataset, looked up by key (like timm's model registry).

Room: `data/`.

A spec is data: where the images live on the Hub and which columns hold what, how raw class
names become prompt names, the zero-shot and ensemble templates, and the super-category word
of fine-grained sets. Adding a dataset is one `register_benchmark(BenchmarkSpec(...))` call.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

from .classnames import (
    caltech101_class_names,
    clean_caltech101,
    clean_eurosat,
    clean_oxford_pets,
    clean_stanford_cars,
    clean_sun397,
    clean_ucf101,
    dtd_class_names,
    eurosat_class_names,
    food101_class_names,
    identity,
    imagenet_class_names,
    imagenet_prompt_names,
    imagenet_subset_class_names,
    imagenet_subset_prompt_names,
    imagenet_subset_wnids,
    imagenet_wnids,
    oxford_flowers_class_names,
    oxford_pets_class_names,
    strip_list_prefix,
    sun397_class_names,
    ucf101_class_names,
)
from .errors import UnknownBenchmarkError
from .sources import HubSource, Source
from .templates import IMAGENET_SELECT_TEMPLATES

IMAGENET_TEMPLATE = "a photo of a {}."


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything the package knows about one benchmark.

    Attributes:
        key: registry key, lower case with underscores (`"oxford_pets"`).
        template: the zero-shot template of the papers, with one `{}` for the class name.
        num_classes: the number of classes in the papers' protocol (shown by summaries; the loaded
            class list comes from `class_names` or from the source).
        hub: where the data lives on the Hub (`None`: local sources only, e.g. NABirds).
        source: the default source when the data does not come from the Hub (e.g. the synthetic
            world, rendered on the fly).
        clean_name: raw class name -> prompt name, or `None` to drop the class (see `classnames.py`).
        sort_raw_names: order classes by their raw names in ASCII order (Caltech101 folders) instead
            of the source's label order.
        class_names: the fixed, cleaned class list in label order when the package ships one
            (ImageNet and variants, Flowers, Pets); source labels are mapped onto it.
        class_keys: raw keys aligned with `class_names` that sources may use instead of names
            (ImageNet WordNet ids: folder names, ImageNet-R's `wnid` column).
        prompt_names: prompt texts aligned with `class_names` where they differ from the labels
            (ImageNet: OpenAI's names, two of which repeat; labels must be unique).
        super_category: the category word of fine-grained sets (`"bird"`, `"dog"`), else `None`.
        imagenet_family: ImageNet or one of its variants.
        base_new: whether the base-to-new protocol is defined for the benchmark.
        description: a one-line human description.
        synthetic: the data is the package's synthetic world (results are labelled as such).
        crop_scale: area range of the training random resized crop (the papers' (0.08, 1) suits
            224-pixel photos; small rendered objects need gentler crops).
        paper_splits: the number of train / val / test images of the papers' protocol (CoOp's split
            files; `None` where the protocol has no such split), shown beside the loaded counts.
        reference_text_cleanup: clean raw class names from sources as OpenAI's CLIP tokenizer
            cleans text (`ftfy.fix_text`, HTML entities unescaped twice, white space collapsed), so
            curly quotes and entities reach the prompts as in the reference.
        index_names_match: a source read by label id (`label_mode="index"`) names its classes as
            `class_names` does (in any spelling, `name_key`): its `ClassLabel` names are then checked
            against the list, so a reordered or renamed repository fails instead of mislabelling
            (Flowers; not ImageNet, whose repositories use WordNet lemmas).
    """

    key: str
    template: str = IMAGENET_TEMPLATE
    num_classes: int | None = None
    hub: HubSource | None = None
    source: Source | None = None
    clean_name: Callable[[str], str | None] = identity
    sort_raw_names: bool = False
    class_names: tuple[str, ...] | None = None
    class_keys: tuple[str, ...] | None = None
    prompt_names: tuple[str, ...] | None = None
    super_category: str | None = None
    imagenet_family: bool = False
    base_new: bool = True
    description: str = ""
    synthetic: bool = False
    crop_scale: tuple[float, float] = (0.08, 1.0)
    paper_splits: tuple[int | None, int | None, int | None] | None = None
    reference_text_cleanup: bool = True
    index_names_match: bool = False

    def __post_init__(self) -> None:
        if self.template.count("{}") != 1:
            raise ValueError(f"Benchmark {self.key!r}: template {self.template!r} needs exactly one '{{}}'.")
        if self.class_keys is not None and (
            self.class_names is None or len(self.class_keys) != len(self.class_names)
        ):
            raise ValueError(f"Benchmark {self.key!r}: class_keys must align with class_names.")
        if self.prompt_names is not None and (
            self.class_names is None or len(self.prompt_names) != len(self.class_names)
        ):
            raise ValueError(f"Benchmark {self.key!r}: prompt_names must align with class_names.")

    def prompt_names_for(self, labels: list[str] | tuple[str, ...]) -> list[str]:
        """The prompt text of each label (labels of this benchmark or of a base/new subset)."""
        if self.prompt_names is None:
            return list(labels)
        text_of = dict(zip(self.class_names, self.prompt_names))
        return [text_of.get(label, label) for label in labels]

    @property
    def templates(self) -> tuple[str, ...]:
        """The single zero-shot template, as a tuple (what `ZeroShotCLIPConfig(templates=...)` takes)."""
        return (self.template,)

    @property
    def ensemble_templates(self) -> tuple[str, ...]:
        """The zero-shot ensemble of the reference (CoOp's `zsclip.py`): the 7 ImageNet-select templates
        for ImageNet itself; those 7 plus the benchmark's own template for every other benchmark,
        the ImageNet variants included (8 templates there, as the reference adds "a photo of a {}.")."""
        if self.key == "imagenet":
            return IMAGENET_SELECT_TEMPLATES
        return (*IMAGENET_SELECT_TEMPLATES, self.template)


BENCHMARKS: dict[str, BenchmarkSpec] = {}


def normalize_key(key: str) -> str:
    """Registry form of a key: lower case, `-` and spaces as `_` (`"ImageNet-V2"` -> `"imagenet_v2"`)."""
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def register_benchmark(spec: BenchmarkSpec, overwrite: bool = False) -> BenchmarkSpec:
    """Add `spec` to the registry under `spec.key`; refuses to replace an entry unless `overwrite`."""
    key = normalize_key(spec.key)
    if key != spec.key:
        raise ValueError(f"Benchmark keys are lower case with underscores: use {key!r}, not {spec.key!r}.")
    if key in BENCHMARKS and not overwrite:
        raise ValueError(f"Benchmark {key!r} is already registered; pass overwrite=True to replace it.")
    BENCHMARKS[key] = spec
    return spec


def get_benchmark(key: str | BenchmarkSpec) -> BenchmarkSpec:
    """The spec registered under `key` (a spec passes through); unknown keys suggest the closest ones."""
    if isinstance(key, BenchmarkSpec):
        return key
    normalized = normalize_key(key)
    if normalized in BENCHMARKS:
        return BENCHMARKS[normalized]
    close = difflib.get_close_matches(normalized, list(BENCHMARKS), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(k) for k in close)}?" if close else ""
    raise UnknownBenchmarkError(
        f"Unknown benchmark {key!r}.{hint} Registered: {', '.join(sorted(BENCHMARKS))}. "
        "Add your own with hf_prompt_clip.data.register_benchmark(BenchmarkSpec(...))."
    )


def list_benchmarks() -> list[str]:
    """The registered keys, in registration order."""
    return list(BENCHMARKS)


def base_new_counts(num_classes: int) -> tuple[int, int]:
    """(base, new) class counts of the base-to-new protocol: base = ceil(K / 2), new = the rest."""
    base = math.ceil(num_classes / 2)
    return base, num_classes - base


# The commit each registered Hub repository is read at. Each was found on stored copies of the Hub's
# pages (file listings and commits of that commit) or in other projects' pinned task definitions
# (mteb), as the commit whose files are the parquet / webdataset layout the loader expects; no machine
# of this project reaches the Hub, so none has been loaded from the Hub itself (docs/data.md lists the
# evidence). Repositories without an entry are read at their default branch: only a short hash was
# seen (the wds ImageNet-V2 and ImageNet-A repositories) or the commit after the parquet conversion is
# not known (ethz/food101). The loader check guards every source either way.
PINNED_REVISIONS: dict[str, str] = {
    "ILSVRC/imagenet-1k": "49e2ee26f3810fb5a7536bbf732a7b07389a47b5",
    "mteb/Caltech101": "011e51e5fb01f0c820824734edb7a539ab8e6650",
    "timm/oxford-iiit-pet": "10b688881011725fa2fa3d856a47536c9a7e6968",
    "tanganke/stanford_cars": "9abf6cf7d6dfa7b95152a0d6e791ea9435b47a40",
    "dpdl-benchmark/oxford_flowers102": "544b55c9af69a05742ead7571cd7ae23cfcd758b",
    "mteb/FGVCAircraft": "3ae0e4e94e37c610c26df758ec3255fa90d80e67",
    "tanganke/sun397": "9c4afd6174afa3974f209a0ef099dbbe244dfd27",
    "tanganke/dtd": "d2afa97d9f335b1a6b3b09c637aef667f98f966e",
    "tanganke/eurosat": "43750fc422c7fbd4289e2df3f7473617a5937acc",
    "mteb/ucf101": "e0618988874f6ffbf90af69fa6dccecb9be3deb3",
    "clip-benchmark/wds_imagenet_sketch": "751cf0a06276ed52b015c5dfef068f161bd0dfb7",
    "axiong/imagenet-r": "762a23f169e080bef0be7c9d96bf73a126cbb660",
    "Donghyun99/CUB-200-2011": "0e344a8256fa95fe1e5c05325d407a94a961dbab",
    "Donghyun99/Stanford-Dogs": "4246493e3d3e3a15a43c291ec5e394a003a2e10a",
}


def _hub(repo_id: str, **fields) -> HubSource:
    """The registry's `HubSource` for `repo_id`, at its pinned revision when it has one."""
    return HubSource(repo_id, revision=PINNED_REVISIONS.get(repo_id), **fields)


_WDS = {"image_column": ("webp", "jpg", "png"), "label_column": "cls", "id_column": "__key__"}
_WDS_TEST = {"label_mode": "index", "streaming": True, **_WDS}

for _spec in (
    BenchmarkSpec(
        "imagenet",
        paper_splits=(1281167, None, 50000),
        num_classes=1000,
        hub=_hub(
            "ILSVRC/imagenet-1k", splits={"test": "validation", "val": "validation"}, label_mode="index"
        ),
        class_names=imagenet_class_names(),
        class_keys=imagenet_wnids(),
        prompt_names=imagenet_prompt_names(),
        imagenet_family=True,
        description="ImageNet-1k (gated on the Hub); val = test = the official validation set.",
    ),
    BenchmarkSpec(
        "caltech101",
        paper_splits=(4128, 1649, 2465),
        num_classes=100,
        hub=_hub("mteb/Caltech101", val_from_train=0.2),
        clean_name=clean_caltech101,
        class_names=caltech101_class_names(),
        description="Caltech101 without BACKGROUND_Google and Faces_easy.",
    ),
    BenchmarkSpec(
        "oxford_pets",
        "a photo of a {}, a type of pet.",
        paper_splits=(2944, 736, 3669),
        num_classes=37,
        hub=_hub("timm/oxford-iiit-pet", id_column="image_id", val_from_train=0.2),
        clean_name=clean_oxford_pets,
        class_names=oxford_pets_class_names(),
        super_category="pet",
        description="Oxford-IIIT Pets, 37 cat and dog breeds.",
    ),
    BenchmarkSpec(
        "stanford_cars",
        paper_splits=(6509, 1635, 8041),
        num_classes=196,
        hub=_hub("tanganke/stanford_cars", val_from_train=0.2),
        clean_name=clean_stanford_cars,
        super_category="car",
        description="Stanford Cars, 196 make/model/year classes.",
    ),
    BenchmarkSpec(
        "oxford_flowers",
        "a photo of a {}, a type of flower.",
        paper_splits=(4093, 1633, 2463),
        num_classes=102,
        hub=_hub("dpdl-benchmark/oxford_flowers102", splits={"val": "validation"}, label_mode="index"),
        index_names_match=True,
        class_names=oxford_flowers_class_names(),
        super_category="flower",
        description="Oxford Flowers-102.",
    ),
    BenchmarkSpec(
        "food101",
        "a photo of {}, a type of food.",
        paper_splits=(50500, 20200, 30300),
        num_classes=101,
        hub=_hub("ethz/food101", splits={"test": "validation"}, val_from_train=0.2),
        class_names=food101_class_names(),
        super_category="food",
        description="Food-101; the Hub's validation split is the official test set.",
    ),
    BenchmarkSpec(
        "fgvc_aircraft",
        "a photo of a {}, a type of aircraft.",
        paper_splits=(3334, 3333, 3333),
        num_classes=100,
        hub=_hub("mteb/FGVCAircraft", label_column="variant", val_from_train=0.2),
        super_category="aircraft",
        description="FGVC-Aircraft, 100 variants.",
    ),
    BenchmarkSpec(
        "sun397",
        paper_splits=(15880, 3970, 19850),
        num_classes=397,
        hub=_hub("tanganke/sun397", val_from_train=0.2),
        clean_name=clean_sun397,
        class_names=sun397_class_names(),
        description="SUN397 scenes.",
    ),
    BenchmarkSpec(
        "dtd",
        "{} texture.",
        paper_splits=(2820, 1128, 1692),
        num_classes=47,
        hub=_hub("tanganke/dtd", val_from_train=0.2),
        class_names=dtd_class_names(),
        description="Describable Textures Dataset.",
    ),
    BenchmarkSpec(
        "eurosat",
        "a centered satellite photo of {}.",
        paper_splits=(13500, 5400, 8100),
        num_classes=10,
        hub=_hub("tanganke/eurosat", val_from_train=0.2),
        clean_name=clean_eurosat,
        class_names=eurosat_class_names(),
        description="EuroSAT RGB land-use tiles.",
    ),
    BenchmarkSpec(
        "ucf101",
        "a photo of a person doing {}.",
        paper_splits=(7639, 1898, 3783),
        num_classes=101,
        hub=_hub(
            "mteb/ucf101", frame_groups=("video_id", "clip_id"), frame_column="frame", val_from_train=0.2
        ),
        clean_name=clean_ucf101,
        class_names=ucf101_class_names(),
        description="UCF101 actions (middle frames).",
    ),
    BenchmarkSpec(
        "imagenet_v2",
        paper_splits=(None, None, 10000),
        num_classes=1000,
        hub=_hub("clip-benchmark/wds_imagenetv2", **_WDS_TEST),
        class_names=imagenet_class_names(),
        class_keys=imagenet_wnids(),
        prompt_names=imagenet_prompt_names(),
        imagenet_family=True,
        base_new=False,
        description="ImageNet-V2 matched-frequency (test only).",
    ),
    BenchmarkSpec(
        "imagenet_sketch",
        paper_splits=(None, None, 50889),
        num_classes=1000,
        hub=_hub("clip-benchmark/wds_imagenet_sketch", **_WDS_TEST),
        class_names=imagenet_class_names(),
        class_keys=imagenet_wnids(),
        prompt_names=imagenet_prompt_names(),
        imagenet_family=True,
        base_new=False,
        description="ImageNet-Sketch (test only).",
    ),
    BenchmarkSpec(
        "imagenet_a",
        paper_splits=(None, None, 7500),
        num_classes=200,
        hub=_hub("clip-benchmark/wds_imagenet-a", **_WDS_TEST),
        class_names=imagenet_subset_class_names("a"),
        class_keys=imagenet_subset_wnids("a"),
        prompt_names=imagenet_subset_prompt_names("a"),
        imagenet_family=True,
        base_new=False,
        description="ImageNet-A, 200 classes (test only).",
    ),
    BenchmarkSpec(
        "imagenet_r",
        paper_splits=(None, None, 30000),
        num_classes=200,
        hub=_hub("axiong/imagenet-r", label_column="wnid"),
        class_names=imagenet_subset_class_names("r"),
        class_keys=imagenet_subset_wnids("r"),
        prompt_names=imagenet_subset_prompt_names("r"),
        imagenet_family=True,
        base_new=False,
        description="ImageNet-R, 200 classes (test only).",
    ),
    BenchmarkSpec(
        "cub200",
        "a photo of a {}, a type of bird.",
        paper_splits=(5994, None, 5794),
        num_classes=200,
        hub=_hub("Donghyun99/CUB-200-2011", val_from_train=0.2),
        clean_name=strip_list_prefix,
        super_category="bird",
        description="Caltech-UCSD Birds-200-2011.",
    ),
    BenchmarkSpec(
        "stanford_dogs",
        "a photo of a {}, a type of dog.",
        paper_splits=(12000, None, 8580),
        num_classes=120,
        hub=_hub("Donghyun99/Stanford-Dogs", val_from_train=0.2),
        clean_name=strip_list_prefix,
        super_category="dog",
        description="Stanford Dogs, 120 breeds.",
    ),
    BenchmarkSpec(
        "nabirds",
        "a photo of a {}, a type of bird.",
        paper_splits=(23929, None, 24633),
        num_classes=555,
        hub=None,
        super_category="bird",
        base_new=False,
        description="NABirds; no usable Hub copy: load a local imagefolder.",
    ),
):
    register_benchmark(_spec)
