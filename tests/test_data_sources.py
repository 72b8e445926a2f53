"""Sources: a Hub-layout parquet repository, imagefolder trees and CoOp split files, all built from generated images."""

import dataclasses
import json
import os

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from hf_prompt_clip.data import (
    BenchmarkSpec,
    ColumnNotFoundError,
    CoOpSplitSource,
    HubSource,
    ImageFolderSource,
    LabelError,
    SplitNotFoundError,
    UnreadableImageError,
    collate_fn,
    eval_transform,
    get_benchmark,
    imagenet_subset_class_names,
    load_benchmark,
    with_image_transform,
)
from hf_prompt_clip.data.classnames import caltech101_class_names, eurosat_class_names
from hf_prompt_clip.testing import tiny_clip_image_processor

EUROSAT_RAW = ["AnnualCrop", "Forest", "SeaLake"]


def solid(value: int) -> Image.Image:
    return Image.fromarray(np.full((16, 16, 3), value % 256, dtype=np.uint8))


def write_hub_repo(root, splits: dict[str, tuple[dict, Features]]) -> str:
    """A folder laid out like a Hub dataset repository: data/<split>-00000-of-00001.parquet."""
    os.makedirs(root / "data", exist_ok=True)
    for split, (columns, features) in splits.items():
        Dataset.from_dict(columns, features=features).to_parquet(
            root / "data" / f"{split}-00000-of-00001.parquet"
        )
    return str(root)


def eurosat_columns(labels: list[int]) -> tuple[dict, Features]:
    columns = {"image": [solid(40 * i) for i in range(len(labels))], "label": labels}
    return columns, Features(image=ImageFeature(), label=ClassLabel(names=EUROSAT_RAW))


def write_tree(root, files: dict[str, list[str]]) -> str:
    """An image folder: {"train/Faces": ["a.png", ...]} -> root/train/Faces/a.png (solid-colour PNGs)."""
    for folder, names in files.items():
        os.makedirs(root / folder, exist_ok=True)
        for i, name in enumerate(names):
            solid(30 * i).save(root / folder / name)
    return str(root)


def hub_like(key: str, repo: str, tmp_path, **changes) -> HubSource:
    """The registry's Hub source of `key`, pointed at a local repository folder."""
    return dataclasses.replace(
        get_benchmark(key).hub, repo_id=repo, cache_dir=str(tmp_path / "cache"), **changes
    )


def test_hub_source_loads_a_repository_with_load_dataset_and_cleans_names(tmp_path):
    repo = write_hub_repo(
        tmp_path / "repo", {"train": eurosat_columns([0, 1, 2, 2]), "test": eurosat_columns([2, 0])}
    )
    source = hub_like("eurosat", repo, tmp_path, val_from_train=None)
    train = load_benchmark("eurosat", "train", source=source)
    assert train.features["label"] == ClassLabel(names=list(eurosat_class_names()))  # CoOp's 10, in order
    assert train["label"][:] == [0, 1, 9, 9]  # AnnualCrop, Forest, SeaLake, SeaLake
    assert isinstance(train[0]["image"], Image.Image)
    test = load_benchmark("eurosat", "test", source=source)
    assert len(test) == 2


def test_hub_source_maps_protocol_splits_and_reports_missing_ones(tmp_path):
    repo = write_hub_repo(
        tmp_path / "repo", {"train": eurosat_columns([0]), "validation": eurosat_columns([1, 2])}
    )
    source = hub_like("eurosat", repo, tmp_path, splits={"test": "validation"}, val_from_train=None)
    assert load_benchmark("eurosat", "test", source=source)["label"][:] == [1, 9]
    with pytest.raises(SplitNotFoundError, match="'val'"):
        load_benchmark("eurosat", "val", source=source)


def test_hub_source_keeps_the_id_column_and_maps_names_onto_the_shipped_list(tmp_path):
    names = ["Abyssinian", "Yorkshire Terrier"]
    columns = {
        "image": [solid(0), solid(9)],
        "label": [1, 0],
        "image_id": ["yorkshire_terrier_1", "Abyssinian_3"],
    }
    features = Features(image=ImageFeature(), label=ClassLabel(names=names), image_id=Value("string"))
    repo = write_hub_repo(tmp_path / "repo", {"test": (columns, features)})
    test = load_benchmark("oxford_pets", "test", source=hub_like("oxford_pets", repo, tmp_path))
    assert len(test.features["label"].names) == 37
    assert test["label"][:] == [36, 0]
    assert test["example_id"][:] == ["yorkshire_terrier_1", "Abyssinian_3"]


def test_streaming_webdataset_layout_with_integer_labels_uses_the_subset_names(tmp_path):
    columns = {"jpg": [solid(0), solid(50)], "cls": [0, 199], "__key__": ["s0", "s1"]}
    features = Features(jpg=ImageFeature(), cls=Value("int64"), __key__=Value("string"))
    repo = write_hub_repo(tmp_path / "repo", {"test": (columns, features)})
    test = load_benchmark("imagenet_a", "test", source=hub_like("imagenet_a", repo, tmp_path))
    rows = list(test)
    names = imagenet_subset_class_names("a")
    assert test.features["label"].names == list(names)
    assert [(r["label"], r["example_id"]) for r in rows] == [(0, "s0"), (199, "s1")]
    assert isinstance(rows[0]["image"], Image.Image)
    batch = collate_fn(list(with_image_transform(test, eval_transform(tiny_clip_image_processor()))))
    assert batch["pixel_values"].shape == (2, 3, 32, 32) and batch["labels"].tolist() == [0, 199]


def test_string_wordnet_label_column_maps_through_class_keys(tmp_path):
    spec = get_benchmark("imagenet_r")
    columns = {"image": [solid(0), solid(1)], "wnid": [spec.class_keys[5], spec.class_keys[0]]}
    repo = write_hub_repo(
        tmp_path / "repo", {"test": (columns, Features(image=ImageFeature(), wnid=Value("string")))}
    )
    test = load_benchmark("imagenet_r", "test", source=hub_like("imagenet_r", repo, tmp_path))
    assert test["label"][:] == [5, 0]
    assert len(test.features["label"].names) == 200


def test_missing_label_column_names_the_columns_found(tmp_path):
    repo = write_hub_repo(tmp_path / "repo", {"test": eurosat_columns([0])})
    source = hub_like("fgvc_aircraft", repo, tmp_path)
    with pytest.raises(ColumnNotFoundError, match=r"no label column 'variant'.*\['image', 'label'\]"):
        load_benchmark("fgvc_aircraft", "test", source=source)


def test_label_ids_outside_the_class_list_are_refused(tmp_path):
    spec = BenchmarkSpec("three", class_names=("a", "b", "c"))
    columns = {"image": [solid(0), solid(1)], "label": [1, 7]}
    repo = write_hub_repo(
        tmp_path / "repo", {"test": (columns, Features(image=ImageFeature(), label=Value("int64")))}
    )
    with pytest.raises(LabelError, match=r"outside the class list: \[7\].*0\.\.2"):
        load_benchmark(spec, "test", source=HubSource(repo, cache_dir=str(tmp_path / "cache")))


def test_unknown_class_names_are_refused_with_the_closest_known_names(tmp_path):
    columns = {"image": [solid(0)], "label": [0]}
    features = Features(image=ImageFeature(), label=ClassLabel(names=["Abyssinan"]))
    repo = write_hub_repo(tmp_path / "repo", {"test": (columns, features)})
    with pytest.raises(LabelError, match=r"not among the 37 classes.*abyssinian"):
        load_benchmark("oxford_pets", "test", source=hub_like("oxford_pets", repo, tmp_path, id_column=None))


def test_imagefolder_tree_follows_caltech_rules_and_records_file_names(tmp_path):
    tree = {
        "train/Faces": ["f0.png", "f1.png"],
        "train/BACKGROUND_Google": ["b0.png"],
        "train/accordion": ["a0.png"],
        "train/airplanes": ["p0.png"],
        "test/Faces": ["f2.png"],
        "test/BACKGROUND_Google": ["b1.png"],
        "test/accordion": ["a1.png"],
        "test/airplanes": ["p1.png"],
    }
    source = ImageFolderSource(write_tree(tmp_path / "caltech", tree), cache_dir=str(tmp_path / "cache"))
    train = load_benchmark("caltech101", "train", source=source)
    assert train.features["label"].names == list(caltech101_class_names())  # CoOp's 100, in its order
    assert sorted(zip(train["example_id"][:], train["label"][:])) == [
        ("train/Faces/f0.png", 0),
        ("train/Faces/f1.png", 0),
        ("train/accordion/a0.png", 3),
        ("train/airplanes/p0.png", 4),
    ]
    with pytest.raises(SplitNotFoundError, match="'validation'"):
        load_benchmark("caltech101", "val", source=source)


def test_unreadable_image_error_names_the_file(tmp_path):
    root = write_tree(tmp_path / "data", {"train/cat": ["ok.png"], "train/dog": []})
    (tmp_path / "data" / "train" / "dog" / "broken.png").write_bytes(b"not an image")
    source = ImageFolderSource(root, cache_dir=str(tmp_path / "cache"))
    train = load_benchmark("fgvc_aircraft", "train", source=source)  # no shipped class list: cat, dog
    transformed = with_image_transform(train, eval_transform(tiny_clip_image_processor()))
    broken = train["example_id"][:].index(os.path.join("train", "dog", "broken.png"))
    assert transformed[1 - broken]["pixel_values"].shape == (3, 32, 32)
    with pytest.raises(UnreadableImageError, match=r"broken\.png"):
        transformed[broken]


def write_split_file(tmp_path, names_by_label: list[str]) -> tuple[str, str]:
    files = {f"images/{name}": [f"{name}_{i}.png" for i in range(3)] for name in names_by_label}
    root = write_tree(tmp_path / "root", files)
    entries = [
        [f"images/{name}/{name}_{i}.png", label, name]
        for label, name in enumerate(names_by_label)
        for i in range(3)
    ]
    content = {"train": entries[0::3] + entries[1::3], "val": entries[2::3][:1], "test": entries[2::3]}
    split_file = tmp_path / "split_zhou_EuroSAT.json"
    split_file.write_text(json.dumps(content))
    return str(split_file), root


def test_coop_split_file_names_map_onto_the_registry_order(tmp_path):
    """The file numbers SeaLake 0, AnnualCrop 1, Forest 2; the registry's EuroSAT ids are 9, 0, 1."""
    split_file, root = write_split_file(tmp_path, ["SeaLake", "AnnualCrop", "Forest"])
    source = CoOpSplitSource(split_file, root)
    train = load_benchmark("eurosat", "train", source=source)
    assert train.features["label"].names == list(eurosat_class_names())
    assert train["label"][:] == [9, 0, 1, 9, 0, 1]
    unshipped = load_benchmark("fgvc_aircraft", "train", source=source)  # no class list: the file's order
    assert unshipped.features["label"].names == ["SeaLake", "AnnualCrop", "Forest"]
    assert unshipped["label"][:] == [0, 1, 2, 0, 1, 2]
    assert train["example_id"][0] == "images/SeaLake/SeaLake_0.png"
    assert train[0]["image"].size == (16, 16)
    assert len(load_benchmark("eurosat", "val", source=source)) == 1
    with pytest.raises(SplitNotFoundError, match="validation"):
        load_benchmark("eurosat", "validation", source=source)


def test_coop_split_file_with_a_missing_image_says_which(tmp_path):
    split_file, root = write_split_file(tmp_path, ["River"])
    os.remove(os.path.join(root, "images", "River", "River_2.png"))
    with pytest.raises(FileNotFoundError, match=r"River_2\.png"):
        load_benchmark("eurosat", "test", source=CoOpSplitSource(split_file, root))


def test_benchmark_without_hub_source_asks_for_a_local_one():
    with pytest.raises(ValueError, match="ImageFolderSource"):
        load_benchmark("nabirds", "train")


def test_export_round_trip_gives_the_same_images_labels_and_names(tmp_path, monkeypatch):
    """A CoOp split file -> `export_benchmark` -> a Hub-layout parquet folder -> `HubSource` again."""
    from datasets import DatasetDict

    from hf_prompt_clip.data import export_benchmark, exported_source

    split_file, root = write_split_file(tmp_path, ["SeaLake", "AnnualCrop", "Forest"])
    source = CoOpSplitSource(split_file, root)
    pushed = []
    monkeypatch.setattr(
        DatasetDict, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, sorted(self)))
    )
    from huggingface_hub import DatasetCard

    hub_card = DatasetCard("---\ndataset_info:\n  features: []\n---\nwritten by push_to_hub\n")
    load = DatasetCard.load  # `datasets` reads local cards with it too

    def load_card(cls, repo, **kw):
        return hub_card if repo == "me/eurosat-coop" else load.__func__(cls, repo, **kw)

    monkeypatch.setattr(DatasetCard, "load", classmethod(load_card))
    monkeypatch.setattr(
        DatasetCard, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, self.content))
    )
    folder = export_benchmark("eurosat", tmp_path / "exported", source=source, push_to_hub="me/eurosat-coop")
    assert pushed[0] == ("me/eurosat-coop", ["test", "train", "validation"])
    # the uploaded card keeps push_to_hub's metadata and carries our text (source, sizes)
    assert pushed[1][0] == "me/eurosat-coop" and "dataset_info" in pushed[1][1]
    assert "CoOp split file" in pushed[1][1] and "| train | 6 |" in pushed[1][1]
    assert sorted(os.listdir(folder / "data")) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    os.rename(root, tmp_path / "originals-gone")  # the export holds the image bytes themselves
    again = exported_source(folder)
    for split in ("train", "val", "test"):
        ours = load_benchmark(
            "eurosat", split, source=dataclasses.replace(again, cache_dir=str(tmp_path / "c"))
        )
        original = load_benchmark(
            "eurosat", split, source=CoOpSplitSource(split_file, tmp_path / "originals-gone")
        )
        assert ours.features["label"].names == list(eurosat_class_names())
        assert ours["label"][:] == original["label"][:] and ours["example_id"][:] == original["example_id"][:]
        for a, b in zip(ours, original):
            assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
    assert "| train | 6 |" in (folder / "README.md").read_text()


def test_class_names_are_cleaned_as_the_reference_tokenizer_cleans_text(tmp_path):
    """ftfy + HTML entities unescaped twice + white space collapsed, as OpenAI's simple_tokenizer."""
    raw = ["rock &amp;amp; roll", "crème\u00a0brûlée  tart", "chef\u2019s  special"]
    features = Features(image=ImageFeature(), label=ClassLabel(names=raw))
    repo = write_hub_repo(
        tmp_path / "repo", {"test": ({"image": [solid(1), solid(2), solid(3)], "label": [0, 1, 2]}, features)}
    )
    spec = BenchmarkSpec("food_like", hub=HubSource(repo, cache_dir=str(tmp_path / "cache")))
    assert load_benchmark(spec, "test").features["label"].names == [
        "rock & roll",
        "crème brûlée tart",
        "chef's special",
    ]
    kept = dataclasses.replace(spec, reference_text_cleanup=False)
    assert load_benchmark(kept, "test").features["label"].names == raw


def test_split_by_class_cuts_every_class_into_disjoint_seeded_parts():
    from hf_prompt_clip.data import split_by_class
    from hf_prompt_clip.data.sources import split_off_validation

    labels = ["a"] * 10 + ["b"] * 20 + ["c"] * 2  # "c" is too small to split: all train
    parts = split_by_class(labels, {"val": 0.1, "test": 0.2}, seed=3)
    assert sorted(row for rows in parts.values() for row in rows) == list(range(len(labels)))  # each row once
    counts = {name: {k: sum(labels[r] == k for r in rows) for k in "abc"} for name, rows in parts.items()}
    assert counts["val"] == {"a": 1, "b": 2, "c": 0} and counts["test"] == {"a": 2, "b": 4, "c": 0}
    assert parts == split_by_class(labels, {"val": 0.1, "test": 0.2}, seed=3)  # seeded
    assert parts != split_by_class(labels, {"val": 0.1, "test": 0.2}, seed=4)
    # one part is the registry's validation split, draw for draw
    one = split_by_class(labels, {"val": 0.2}, seed=0)
    assert (one["train"], one["val"]) == split_off_validation(labels, 0.2, seed=0)
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_by_class(labels, {"val": 0.5, "test": 0.5})


def test_a_folder_benchmark_takes_names_from_a_file_and_refuses_bad_ones(tmp_path):
    from hf_prompt_clip.data import folder_benchmark, load_benchmark

    root = tmp_path / "pets"
    for name in ("big_cat", "small_dog"):
        for index in range(5):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(root / name / f"{index}.png")
    spec, source = folder_benchmark(root, split_fractions={"test": 0.2})
    assert spec.key == "imagefolder:pets" and spec.class_names == ("big cat", "small dog")
    assert load_benchmark(spec, "test", source=source).features["label"].names == ["big cat", "small dog"]
    with pytest.raises(SplitNotFoundError, match="not split into a 'val' part"):  # none was asked for
        load_benchmark(spec, "val", source=source)
    (tmp_path / "names.txt").write_text("# one per folder\nlion\nterrier\n")
    assert folder_benchmark(root, class_names=tmp_path / "names.txt")[0].class_names == ("lion", "terrier")
    (tmp_path / "names.json").write_text(json.dumps({"small_dog": "terrier"}))
    assert folder_benchmark(root, class_names=tmp_path / "names.json")[0].class_names == (
        "big cat",
        "terrier",
    )
    (tmp_path / "short.txt").write_text("lion\n")
    with pytest.raises(ValueError, match="lists 1 names but there are 2 class folders"):
        folder_benchmark(root, class_names=tmp_path / "short.txt")
    with pytest.raises(ValueError, match="same class name"):
        folder_benchmark(root, class_names={"big_cat": "pet", "small_dog": "pet"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        folder_benchmark(tmp_path / "empty")
