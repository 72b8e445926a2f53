"""Every registered Hub source, from a local repository laid out like the real one, gives the papers' task.

Each fixture has the real repository's columns, label type, split names and name style (docs/data.md,
the dataset cards): mteb/Caltech101's 102 lower-case labels, tanganke's task-arithmetic EuroSAT names
and "apartment building outdoor" SUN397 names, mteb/ucf101's every frame, the wds ImageNet variants'
`cls`/`webp` columns, ... Every image is a solid colour that encodes its row, so splits can be compared.
"""

import dataclasses

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from hf_prompt_clip.data import (
    ClassListMismatchError,
    LabelError,
    SplitNotFoundError,
    get_benchmark,
    load_benchmark,
)
from hf_prompt_clip.data.classnames import (
    caltech101_class_names,
    dtd_class_names,
    eurosat_class_names,
    food101_class_names,
    imagenet_class_names,
    imagenet_subset_wnids,
    oxford_flowers_class_names,
    oxford_pets_class_names,
    sun397_class_names,
    ucf101_class_names,
)

_counter = iter(range(10**6))


def colour_image() -> Image.Image:
    """A 2 x 2 image whose colour encodes a number unique in the test session."""
    n = next(_counter)
    return Image.new("RGB", (2, 2), (n % 256, n // 256 % 256, n // 65536))


def colour_of(image) -> tuple:
    return tuple(np.asarray(image)[0, 0].tolist())


def write_repo(root, splits: dict[str, tuple[dict, Features]]) -> str:
    root.mkdir(parents=True)
    (root / "data").mkdir()
    for split, (columns, features) in splits.items():
        Dataset.from_dict(columns, features=features).to_parquet(
            root / "data" / f"{split}-00000-of-00001.parquet"
        )
    return str(root)


def labelled(
    names: list[str], per_class: int, extra: dict | None = None, label_column: str = "label", as_strings=False
):
    """`per_class` images of every class, labels as a ClassLabel (or plain strings)."""
    labels = [k for k in range(len(names)) for _ in range(per_class)]
    columns = {"image": [colour_image() for _ in labels]}
    if as_strings:
        columns[label_column] = [names[k] for k in labels]
        feature = Value("string")
    else:
        columns[label_column] = labels
        feature = ClassLabel(names=names)
    features = {"image": ImageFeature(), label_column: feature}
    for name, (values, value_feature) in (extra or {}).items():
        columns[name] = values(labels)
        features[name] = value_feature
    return columns, Features(features)


# --------------------------------------------------------------------------------- raw name styles

COOP_TO_CALTECH_FOLDER = {
    "face": "faces",
    "leopard": "leopards",
    "motorbike": "motorbikes",
    "airplane": "airplanes",
}
MTEB_CALTECH = sorted(
    [COOP_TO_CALTECH_FOLDER.get(n, n) for n in caltech101_class_names()] + ["background_google", "faces_easy"]
)
TASK_ARITHMETIC_EUROSAT = [
    "annual crop land",
    "forest",
    "brushland or shrubland",
    "highway or road",
    "industrial buildings or commercial buildings",
    "pasture land",
    "permanent crop land",
    "residential buildings or homes or apartments",
    "river",
    "lake or sea",
]


def tanganke_sun397() -> list[str]:
    """'/a/apartment_building/outdoor' -> 'apartment building outdoor'."""
    from hf_prompt_clip.data.classnames import _read_lines

    return sorted(
        " ".join(path.strip("/").split("/")[1:]).replace("_", " ") for path in _read_lines("sun397.txt")
    )


def made_up(count: int, pattern: str) -> list[str]:
    return [pattern.format(k) for k in range(count)]


# key -> (repository splits: {name: (columns, features)} builder, expected class names or None (count only))
def fixture(key: str):
    if key == "caltech101":
        return {s: labelled(MTEB_CALTECH, 2) for s in ("train", "test")}, list(caltech101_class_names())
    if key == "oxford_pets":
        ids = (lambda labels: [f"img_{i}" for i in range(len(labels))], Value("string"))
        names = list(oxford_pets_class_names())
        return {s: labelled(names, 2, {"image_id": ids}) for s in ("train", "test")}, names
    if key == "stanford_cars":
        return {s: labelled(made_up(196, "Make Model{} Sedan 2012"), 2) for s in ("train", "test")}, None
    if key == "oxford_flowers":
        # dpdl-benchmark's ClassLabel: the same lower-case names in the same order (its card)
        names = [name.lower() for name in oxford_flowers_class_names()]
        return {s: labelled(names, 2) for s in ("train", "validation", "test")}, list(
            oxford_flowers_class_names()
        )
    if key == "food101":
        names = list(food101_class_names())
        return {s: labelled(names, 2) for s in ("train", "validation")}, names
    if key == "fgvc_aircraft":
        return {
            s: labelled(made_up(100, "7{}7-320"), 2, label_column="variant") for s in ("train", "test")
        }, None
    if key == "sun397":
        return {s: labelled(tanganke_sun397(), 2) for s in ("train", "test")}, list(sun397_class_names())
    if key == "dtd":
        names = list(dtd_class_names())
        return {s: labelled(names, 2) for s in ("train", "test")}, names
    if key == "eurosat":
        return {s: labelled(TASK_ARITHMETIC_EUROSAT, 2) for s in ("train", "test")}, list(
            eurosat_class_names()
        )
    if key == "ucf101":
        from hf_prompt_clip.data.classnames import _read_lines

        actions = _read_lines("ucf101.txt")
        splits = {}
        for split in ("train", "test"):
            rows = [(k, clip, frame) for k in range(101) for clip in range(2) for frame in (4, 0, 2, 1, 3)]
            columns = {
                "image": [colour_image() for _ in rows],
                "video_id": [f"v_{actions[k]}_g{clip:02d}" for k, clip, _ in rows],
                "clip_id": [clip for _, clip, _ in rows],
                "frame": [frame for *_, frame in rows],
                "label": [k for k, _, _ in rows],
            }
            features = Features(
                image=ImageFeature(),
                video_id=Value("string"),
                clip_id=Value("int64"),
                frame=Value("int64"),
                label=ClassLabel(names=list(actions)),
            )
            splits[split] = (columns, features)
        return splits, list(ucf101_class_names())
    if key in ("imagenet_v2", "imagenet_sketch", "imagenet_a"):
        count = 200 if key == "imagenet_a" else 1000
        labels = list(range(count))
        columns = {
            "__key__": [f"s{i}" for i in labels],
            "__url__": ["shard.tar"] * count,
            "cls": labels,
            "webp": [colour_image() for _ in labels],
        }
        features = Features(
            __key__=Value("string"), __url__=Value("string"), cls=Value("int64"), webp=ImageFeature()
        )
        return {"test": (columns, features)}, None
    if key == "imagenet_r":
        wnids = imagenet_subset_wnids("r")
        wnid_column = (lambda labels: [wnids[k] for k in labels], Value("string"))
        columns, features = labelled(
            made_up(200, "class {}"), 1, {"wnid": wnid_column}, label_column="class_name", as_strings=True
        )
        return {"test": (columns, features)}, None
    if key == "imagenet":
        names = made_up(1000, "synset {}")
        return {s: labelled(names, 1) for s in ("train", "validation")}, list(imagenet_class_names())
    if key == "cub200":
        return {s: labelled(made_up(200, "Bird {} Albatross"), 2) for s in ("train", "test")}, None
    if key == "stanford_dogs":
        return {s: labelled(made_up(120, "Dog breed {}"), 2) for s in ("train", "test")}, None
    raise KeyError(key)


HUB_KEYS = [
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
    "sun397", "dtd", "eurosat", "ucf101", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r",
    "cub200", "stanford_dogs",
]  # fmt: skip


def registered_on(key, folder, tmp_path):
    """The registry's entry for `key`, its Hub source pointed at a local repository folder."""
    spec = get_benchmark(key)
    return dataclasses.replace(
        spec, hub=dataclasses.replace(spec.hub, repo_id=folder, cache_dir=str(tmp_path / "cache"))
    )


def test_every_registered_hub_source_has_a_fixture():
    from hf_prompt_clip.data import BENCHMARKS

    assert sorted(HUB_KEYS) == sorted(key for key, spec in BENCHMARKS.items() if spec.hub is not None)


@pytest.mark.parametrize("key", HUB_KEYS)
def test_a_repository_laid_out_like_the_real_one_gives_the_papers_classes(key, tmp_path):
    splits, expected = fixture(key)
    spec = registered_on(key, write_repo(tmp_path / "repo", splits), tmp_path)
    loaded = {}
    for split in ("train", "val", "test"):
        try:
            loaded[split] = load_benchmark(spec, split)
        except SplitNotFoundError as error:  # a split the protocol does not have (test-only sets)
            assert (
                "does not exist" in str(error)
                and spec.paper_splits[("train", "val", "test").index(split)] is None
            )
    for split, data in loaded.items():
        names = data.features["label"].names
        assert len(names) == spec.num_classes, split
        if expected is not None:
            assert names == expected, split  # the papers' names in the papers' label order
        if not spec.hub.streaming:
            assert set(data["label"][:]) == set(range(spec.num_classes)), split
    if "val" in loaded and spec.hub.val_from_train:
        train_colours = {colour_of(x["image"]) for x in loaded["train"]}
        val_colours = [colour_of(x["image"]) for x in loaded["val"]]
        assert val_colours and not train_colours & set(val_colours)  # disjoint
        assert [colour_of(x["image"]) for x in load_benchmark(spec, "val")] == val_colours  # stable


def test_ucf101_keeps_the_middle_frame_of_each_clip(tmp_path):
    splits, _ = fixture("ucf101")
    spec = registered_on("ucf101", write_repo(tmp_path / "repo", splits), tmp_path)
    test = load_benchmark(spec, "test")
    assert len(test) == 101 * 2  # one image per clip, not 5
    frames = splits["test"][0]
    middle = {colour_of(image) for image, frame in zip(frames["image"], frames["frame"]) if frame == 2}
    assert {colour_of(x["image"]) for x in test} == middle  # frames 0..4: the middle one is 2


@pytest.mark.parametrize("change", ["rename", "add", "drop"])
def test_a_rewritten_repository_fails_the_loader_check(change, tmp_path):
    names = list(dtd_class_names())
    if change == "rename":
        names[5] = "checkered"
    elif change == "add":
        names.append("velvety")
    else:
        names = names[:-1]
    spec = registered_on("dtd", write_repo(tmp_path / "repo", {"test": labelled(names, 1)}), tmp_path)
    error = ClassListMismatchError if change == "drop" else LabelError
    with pytest.raises(
        error, match=r"repo.*split 'test' at revision 'd2afa97d9f335b1a6b3b09c637aef667f98f966e'"
    ) as raised:
        load_benchmark(spec, "test")
    message = str(raised.value)
    assert {"rename": "checkered", "add": "velvety", "drop": "1 of the 47"}[change] in message
    if change == "drop":
        assert "zigzagged" in message  # the class that has no images


def test_a_class_added_to_a_repository_without_a_shipped_list_fails_the_count_check(tmp_path):
    names = made_up(197, "Make Model{} Sedan 2012")
    spec = registered_on(
        "stanford_cars", write_repo(tmp_path / "repo", {"test": labelled(names, 1)}), tmp_path
    )
    with pytest.raises(ClassListMismatchError, match=r"gives 197 classes, but 'stanford_cars' has 196"):
        load_benchmark(spec, "test")


@pytest.mark.parametrize("key", ["imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"])
def test_imagenet_family_label_order_is_the_sorted_wordnet_ids(key):
    """The wds repositories' `cls` is the target of torchvision's `ImageFolder` over the WordNet-id
    folders (LAION-AI/CLIP_benchmark's builder wrote them), i.e. the index into the sorted ids; our
    label order must be that order for `cls` to name the right class."""
    spec = get_benchmark(key)
    keys = list(spec.class_keys)
    assert len(keys) == spec.num_classes and keys == sorted(keys)
    assert set(keys) <= set(get_benchmark("imagenet").class_keys)


def test_registered_hub_sources_are_pinned_to_full_commits():
    """Every registered repository is read at a full commit, except the documented few whose commit
    could not be found (a new source must be pinned or added here on purpose)."""
    from hf_prompt_clip.data import BENCHMARKS
    from hf_prompt_clip.data.registry import PINNED_REVISIONS

    unpinned = {"ethz/food101", "clip-benchmark/wds_imagenetv2", "clip-benchmark/wds_imagenet-a"}
    for key, spec in BENCHMARKS.items():
        if spec.hub is None:
            continue
        if spec.hub.repo_id in unpinned:
            assert spec.hub.revision is None, key
        else:
            assert spec.hub.revision == PINNED_REVISIONS[spec.hub.repo_id], key
            assert len(spec.hub.revision) == 40 and int(spec.hub.revision, 16) >= 0, key


def test_a_registered_source_describes_its_commit_and_derived_splits():
    from hf_prompt_clip.data import describe_data

    assert describe_data("ucf101") == (
        "Hub dataset 'mteb/ucf101' at revision 'e0618988874f6ffbf90af69fa6dccecb9be3deb3', the middle "
        "frame of each (video_id, clip_id) clip, val = 20% of train per class (seed 0)"
    )
    assert describe_data("imagenet_a", revision="abc") == (
        "Hub dataset 'clip-benchmark/wds_imagenet-a' at revision 'abc'"
    )


def test_a_run_names_the_hub_dataset_config_split_and_revision_it_reads(tmp_path):
    """What cards cite: the repository's own split name (ImageNet's test is its `validation`), the
    pinned commit or the revision asked for; nothing for data not on the Hub."""
    from hf_prompt_clip.data import HubSource, ImageFolderSource, hub_dataset
    from hf_prompt_clip.runner import hub_datasets_of

    pinned = "d2afa97d9f335b1a6b3b09c637aef667f98f966e"
    assert hub_dataset("dtd") == {"id": "tanganke/dtd", "config": None, "split": "test", "revision": pinned}
    assert hub_dataset("dtd", split="val")["split"] == "train"  # val is drawn from train
    assert hub_dataset("imagenet")["split"] == "validation"
    assert hub_dataset("imagenet_a", revision="abc")["revision"] == "abc"
    assert hub_dataset("dtd", source=HubSource(str(tmp_path))) is None  # a folder laid out like a repo
    assert hub_dataset("dtd", source=ImageFolderSource(str(tmp_path))) is None
    assert hub_dataset("synthetic_shapes") is None
    transfer = hub_datasets_of(
        get_benchmark("imagenet"), "domain_generalization", ["imagenet_a", "imagenet_r"]
    )
    assert {key: value["id"] for key, value in transfer.items()} == {
        "imagenet": "ILSVRC/imagenet-1k",
        "imagenet_a": "clip-benchmark/wds_imagenet-a",
        "imagenet_r": "axiong/imagenet-r",
    }
    assert hub_datasets_of(get_benchmark("dtd"), "few_shot", source=HubSource(str(tmp_path))) == {}


@pytest.mark.parametrize("key", ["dtd", "imagenet_a"])
def test_a_registered_hub_source_exports_and_reads_back(key, tmp_path):
    """Hub sources without an id column get `<split>/<row>` ids; streamed sets are read whole."""
    from hf_prompt_clip.data import export_benchmark, exported_source

    splits, _ = fixture(key)
    spec = registered_on(key, write_repo(tmp_path / "repo", splits), tmp_path)
    folder = export_benchmark(spec, tmp_path / "exported", splits=("test",))
    again = load_benchmark(
        spec, "test", source=dataclasses.replace(exported_source(folder), cache_dir=str(tmp_path / "c"))
    )
    original = list(load_benchmark(spec, "test"))
    assert again.features["label"].names == list(spec.class_names)
    assert again["label"][:] == [row["label"] for row in original]
    assert [colour_of(x["image"]) for x in again] == [colour_of(row["image"]) for row in original]
    if key == "dtd":
        assert again["example_id"][:3] == ["test/0000000", "test/0000001", "test/0000002"]
    assert "at revision" in (folder / "README.md").read_text()  # the card names repository and commit


@pytest.mark.parametrize("change", ["swap", "drop"])
def test_a_reordered_or_shrunk_repository_read_by_label_id_fails(change, tmp_path):
    """Flowers is read by label id; its repository's ClassLabel names must still be the benchmark's."""
    names = list(oxford_flowers_class_names())
    if change == "swap":
        names[3], names[4] = names[4], names[3]
    else:
        names = names[:-1]
    spec = registered_on(
        "oxford_flowers", write_repo(tmp_path / "repo", {"test": labelled(names, 1)}), tmp_path
    )
    expected = "names 2 label id" if change == "swap" else "has 101 classes but 'oxford_flowers' has 102"
    with pytest.raises(LabelError, match=expected):
        load_benchmark(spec, "test")
