"""Benchmark data for prompt learning: registry, sources, few-shot sampling, base/new subsets, transforms.

Room: `data/`.

    from hf_prompt_clip.data import load_benchmark, sample_few_shot, select_classes
    train = load_benchmark("eurosat", "train")                      # Hub source of the registry
    train16, record = sample_few_shot(train, shots=16, seed=1, benchmark="eurosat")
    base_train = select_classes(train16, "base")                    # after sampling, as the protocol says

See docs/data.md.
"""

from .classnames import (
    clean_caltech101,
    clean_eurosat,
    clean_oxford_pets,
    clean_stanford_cars,
    clean_sun397,
    clean_ucf101,
    imagenet_class_names,
    imagenet_prompt_names,
    imagenet_subset_class_names,
    imagenet_subset_prompt_names,
    oxford_flowers_class_names,
    oxford_pets_class_names,
    strip_list_prefix,
)
from .errors import (
    ClassListMismatchError,
    ColumnNotFoundError,
    LabelError,
    SelectionMismatchError,
    SplitNotFoundError,
    UnknownBenchmarkError,
    UnreadableImageError,
)
from .export import export_benchmark, exported_source
from .fewshot import (
    SAMPLERS,
    FewShotSelection,
    apply_selection,
    class_counts,
    dassl_few_shot,
    dassl_few_shot_indices,
    few_shot_indices,
    sample_few_shot,
    select_classes,
    shots_drawn,
    validation_shots,
)
from .loading import check_images, describe_data, hub_dataset, load_benchmark, resolve_source
from .local import (
    LOCAL_DATASET,
    folder_benchmark,
    folder_benchmark_from_record,
    folder_record,
    is_local_key,
    local_name,
)
from .registry import (
    BENCHMARKS,
    IMAGENET_SELECT_TEMPLATES,
    BenchmarkSpec,
    base_new_counts,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
)
from .sources import (
    CoOpSplitSource,
    HubSource,
    ImageFolderSource,
    RawSplit,
    Source,
    split_by_class,
    to_benchmark_format,
)
from .summary import summarize
from .transforms import (
    ImageSettings,
    collate_fn,
    eval_transform,
    load_rgb,
    to_rgb,
    train_transform,
    with_image_transform,
)

__all__ = [
    "BENCHMARKS",
    "IMAGENET_SELECT_TEMPLATES",
    "LOCAL_DATASET",
    "SAMPLERS",
    "BenchmarkSpec",
    "ClassListMismatchError",
    "CoOpSplitSource",
    "ColumnNotFoundError",
    "FewShotSelection",
    "HubSource",
    "ImageFolderSource",
    "ImageSettings",
    "LabelError",
    "RawSplit",
    "SelectionMismatchError",
    "Source",
    "SplitNotFoundError",
    "UnknownBenchmarkError",
    "UnreadableImageError",
    "apply_selection",
    "base_new_counts",
    "check_images",
    "class_counts",
    "clean_caltech101",
    "clean_eurosat",
    "clean_oxford_pets",
    "clean_stanford_cars",
    "clean_sun397",
    "clean_ucf101",
    "collate_fn",
    "dassl_few_shot",
    "dassl_few_shot_indices",
    "describe_data",
    "eval_transform",
    "export_benchmark",
    "exported_source",
    "few_shot_indices",
    "folder_benchmark",
    "folder_benchmark_from_record",
    "folder_record",
    "get_benchmark",
    "hub_dataset",
    "imagenet_class_names",
    "imagenet_prompt_names",
    "imagenet_subset_class_names",
    "imagenet_subset_prompt_names",
    "is_local_key",
    "list_benchmarks",
    "load_benchmark",
    "load_rgb",
    "local_name",
    "oxford_flowers_class_names",
    "oxford_pets_class_names",
    "register_benchmark",
    "resolve_source",
    "sample_few_shot",
    "select_classes",
    "shots_drawn",
    "split_by_class",
    "strip_list_prefix",
    "summarize",
    "to_benchmark_format",
    "to_rgb",
    "train_transform",
    "validation_shots",
    "with_image_transform",
]
