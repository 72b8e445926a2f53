"""Few-shot sampling, its replayable record, and base/new class subsets."""

import json

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from PIL import Image

from hf_prompt_clip.data import (
    FewShotSelection,
    SelectionMismatchError,
    apply_selection,
    base_new_counts,
    few_shot_indices,
    sample_few_shot,
    select_classes,
    validation_shots,
)


def labelled(counts: list[int], with_ids: bool = True) -> Dataset:
    """A dataset of `counts[k]` examples of class k (classes interleaved), without images."""
    labels = [k for k, count in enumerate(counts) for _ in range(count)]
    labels = [labels[i] for i in np.random.default_rng(0).permutation(len(labels))]
    names = [f"class_{k}" for k in range(len(counts))]
    columns: dict = {"label": labels}
    features = Features(label=ClassLabel(names=names))
    if with_ids:
        columns["example_id"] = [f"img_{i:03d}.jpg" for i in range(len(labels))]
        features["example_id"] = Value("string")
    return Dataset.from_dict(columns, features=features)


def test_same_seed_same_picks_and_another_seed_other_picks():
    labels = np.repeat(np.arange(5), 30)
    assert few_shot_indices(labels, 4, seed=1) == few_shot_indices(labels, 4, seed=1)
    assert few_shot_indices(labels, 4, seed=1) != few_shot_indices(labels, 4, seed=2)


def test_k_per_class_and_classes_with_fewer_keep_all():
    data = labelled([20, 3, 16, 9])
    few, record = sample_few_shot(data, shots=8, seed=0)
    counts = np.bincount(few["label"][:], minlength=4)
    assert counts.tolist() == [8, 3, 8, 8]
    assert len(record.ids) == len(few) == 27


def test_classes_come_in_order_of_first_appearance():
    labels = [2, 0, 2, 1, 0, 1]
    assert few_shot_indices(labels, 1, seed=0)[0] in (0, 2)
    picked = [labels[i] for i in few_shot_indices(labels, 5, seed=0)]
    assert picked == [2, 2, 0, 0, 1, 1]


def test_bad_shot_counts_are_refused():
    with pytest.raises(ValueError, match="positive integer"):
        few_shot_indices([0, 1], 0, seed=0)


def test_validation_uses_at_most_four_shots():
    assert [validation_shots(k) for k in (1, 2, 4, 8, 16)] == [1, 2, 4, 4, 4]


def test_record_round_trips_through_json_and_replays_the_draw(tmp_path):
    data = labelled([10, 10, 10])
    few, record = sample_few_shot(data, shots=2, seed=3, benchmark="eurosat")
    assert record.id_column == "example_id" and all(name.endswith(".jpg") for name in record.ids)
    record.save(tmp_path / "fewshot.json")
    loaded = FewShotSelection.load(tmp_path / "fewshot.json")
    assert loaded == record
    assert (loaded.benchmark, loaded.split, loaded.seed, loaded.shots) == ("eurosat", "train", 3, 2)
    shuffled = data.shuffle(seed=0)  # another row order, same examples
    replay = apply_selection(shuffled, loaded)
    assert replay["example_id"][:] == few["example_id"][:] and replay["label"][:] == few["label"][:]


def test_record_without_id_column_uses_row_indices():
    data = labelled([5, 5], with_ids=False)
    few, record = sample_few_shot(data, shots=2, seed=0)
    assert record.id_column is None and all(isinstance(i, int) for i in record.ids)
    assert apply_selection(data, record)["label"][:] == few["label"][:]
    with pytest.raises(SelectionMismatchError, match="rows"):
        apply_selection(data.select(range(3)), record)


def test_record_on_other_data_names_the_missing_examples():
    _, record = sample_few_shot(labelled([6, 6]), shots=2, seed=0)
    other = labelled([6, 6]).map(lambda example: {"example_id": "x" + example["example_id"]})
    with pytest.raises(SelectionMismatchError, match=r"4 of the 4 selected examples.*img_"):
        apply_selection(other, record)


@pytest.mark.parametrize("num_classes", [10, 37, 47, 101])
def test_base_new_counts_use_ceil_and_labels_are_contiguous(num_classes):
    data = labelled([2] * num_classes)
    base, new = select_classes(data, "base"), select_classes(data, "new")
    base_count, new_count = base_new_counts(num_classes)
    assert base_count == -(-num_classes // 2) and base_count + new_count == num_classes
    assert base.features["label"].names == [f"class_{k}" for k in range(base_count)]
    assert new.features["label"].names == [f"class_{k}" for k in range(base_count, num_classes)]
    assert sorted(set(base["label"][:])) == list(range(base_count))
    assert sorted(set(new["label"][:])) == list(range(new_count))
    assert len(base) == 2 * base_count and len(new) == 2 * new_count
    assert select_classes(data, "all") is data


def test_base_and_new_of_a_single_class_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"at least 2 classes.*has 1.*subset='all'"):
        select_classes(labelled([3]), "new")


def test_all_base_and_new_runs_of_one_seed_share_images():
    few, _ = sample_few_shot(labelled([12] * 5), shots=4, seed=7)
    base, new = select_classes(few, "base"), select_classes(few, "new")
    assert sorted(base["example_id"][:] + new["example_id"][:]) == sorted(few["example_id"][:])


def test_unknown_subset_name_is_refused():
    with pytest.raises(ValueError, match="'all', 'base', 'new'"):
        select_classes(labelled([1, 1]), "novel")


# ---------------------------------------------------------------------------------------- Dassl sampler


class Datum:
    """Dassl's `Datum`, reduced to what the sampler reads."""

    def __init__(self, impath, label, classname):
        self.impath, self.label, self.classname = impath, label, classname


def dassl_generate_fewshot_dataset(data_source, num_shots):
    """Dassl's `DatasetBase.generate_fewshot_dataset` for one data source (repeat=False), as written:
    the global `random`, `split_dataset_by_label` (a defaultdict in first-appearance order)."""
    import random
    from collections import defaultdict

    tracker = defaultdict(list)
    for item in data_source:
        tracker[item.label].append(item)
    dataset = []
    for _label, items in tracker.items():
        sampled = random.sample(items, num_shots) if len(items) >= num_shots else items
        dataset.extend(sampled)
    return dataset


def the_authors_draw(split, seed, shots):
    """CoOp's datasets: `set_random_seed(seed)`, then train with `shots`, then val with min(shots, 4)."""
    import random

    state = random.getstate()
    random.seed(seed)
    try:
        train = [Datum(*row) for row in split["train"]]
        val = [Datum(*row) for row in split["val"]]
        train = dassl_generate_fewshot_dataset(train, shots)
        val = dassl_generate_fewshot_dataset(val, min(shots, 4))
    finally:
        random.setstate(state)
    return [d.impath for d in train], [d.impath for d in val]


def test_the_dassl_sampler_picks_what_the_authors_code_picks(tmp_path):
    """On a split file of a few hundred items (classes of unequal size, interleaved, one smaller than
    the shots), the same seed draws the same images, in the same order, for train and then val."""
    from hf_prompt_clip.data import CoOpSplitSource, dassl_few_shot, load_benchmark, sample_few_shot

    rng = np.random.default_rng(0)
    names = [f"class_{k}" for k in range(7)]
    sizes = {"train": [40, 25, 3, 90, 17, 33, 80], "val": [5, 9, 2, 12, 4, 7, 6]}
    split = {"test": []}
    for part, counts in sizes.items():
        rows = [(f"{part}/{names[k]}/{i}.png", k, names[k]) for k in range(7) for i in range(counts[k])]
        split[part] = [list(rows[i]) for i in rng.permutation(len(rows))]
    split["test"] = split["val"][:3]
    for path, _, _ in split["train"] + split["val"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (2, 2)).save(tmp_path / path)
    (tmp_path / "split.json").write_text(json.dumps(split))
    source = CoOpSplitSource(tmp_path / "split.json", tmp_path)
    train, val = (load_benchmark("fgvc_aircraft", part, source=source) for part in ("train", "val"))
    assert len(train) + len(val) > 300
    for seed, shots in ((1, 16), (2, 4), (3, 1), (1, 8)):
        expected_train, expected_val = the_authors_draw(split, seed, shots)
        (_, ours_train), (_, ours_val) = dassl_few_shot(train, val, shots, seed, benchmark="fgvc_aircraft")
        assert ours_train.ids == expected_train and ours_val.ids == expected_val
        assert sample_few_shot(train, shots, seed, sampler="dassl")[1].ids == expected_train
    assert sample_few_shot(train, 16, 1)[1].ids != the_authors_draw(split, 1, 16)[0]  # the default differs
