"""The benchmark registry and the class-name rules of protocols.md."""

import pytest
from datasets import ClassLabel

from hf_prompt_clip.data import (
    BENCHMARKS,
    IMAGENET_SELECT_TEMPLATES,
    BenchmarkSpec,
    HubSource,
    UnknownBenchmarkError,
    base_new_counts,
    clean_caltech101,
    clean_eurosat,
    clean_oxford_pets,
    clean_stanford_cars,
    clean_sun397,
    clean_ucf101,
    get_benchmark,
    imagenet_class_names,
    imagenet_prompt_names,
    imagenet_subset_class_names,
    list_benchmarks,
    oxford_flowers_class_names,
    oxford_pets_class_names,
    register_benchmark,
    strip_list_prefix,
)
from hf_prompt_clip.data.sources import resolve_classes

# key -> (classes, zero-shot template, base / new) from protocols.md
PROTOCOL = {
    "imagenet": (1000, "a photo of a {}.", (500, 500)),
    "caltech101": (100, "a photo of a {}.", (50, 50)),
    "oxford_pets": (37, "a photo of a {}, a type of pet.", (19, 18)),
    "stanford_cars": (196, "a photo of a {}.", (98, 98)),
    "oxford_flowers": (102, "a photo of a {}, a type of flower.", (51, 51)),
    "food101": (101, "a photo of {}, a type of food.", (51, 50)),
    "fgvc_aircraft": (100, "a photo of a {}, a type of aircraft.", (50, 50)),
    "sun397": (397, "a photo of a {}.", (199, 198)),
    "dtd": (47, "{} texture.", (24, 23)),
    "eurosat": (10, "a centered satellite photo of {}.", (5, 5)),
    "ucf101": (101, "a photo of a person doing {}.", (51, 50)),
    "imagenet_v2": (1000, "a photo of a {}.", None),
    "imagenet_sketch": (1000, "a photo of a {}.", None),
    "imagenet_a": (200, "a photo of a {}.", None),
    "imagenet_r": (200, "a photo of a {}.", None),
    "cub200": (200, "a photo of a {}, a type of bird.", (100, 100)),
    "stanford_dogs": (120, "a photo of a {}, a type of dog.", (60, 60)),
    "nabirds": (555, "a photo of a {}, a type of bird.", None),
}


def test_every_protocol_benchmark_is_registered_with_its_classes_and_template():
    assert set(PROTOCOL) <= set(list_benchmarks())
    for key, (classes, template, _) in PROTOCOL.items():
        spec = get_benchmark(key)
        assert (spec.num_classes, spec.template, spec.templates) == (classes, template, (template,)), key


def test_base_new_counts_match_the_protocol_table():
    for key, (classes, _, split) in PROTOCOL.items():
        assert get_benchmark(key).base_new == (split is not None), key
        if split is not None:
            assert base_new_counts(classes) == split, key


def test_ensemble_is_imagenet_select_for_imagenet_plus_own_template_elsewhere():
    """As CoOp's zsclip.py: only the dataset named exactly ImageNet keeps the 7; its variants get 8."""
    assert get_benchmark("imagenet").ensemble_templates == IMAGENET_SELECT_TEMPLATES
    for key in ("imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        assert get_benchmark(key).ensemble_templates == (*IMAGENET_SELECT_TEMPLATES, "a photo of a {}.")
    dtd = get_benchmark("dtd")
    assert len(IMAGENET_SELECT_TEMPLATES) == 7
    assert dtd.ensemble_templates == (*IMAGENET_SELECT_TEMPLATES, "{} texture.")


def test_fine_grained_sets_carry_their_super_category():
    assert get_benchmark("cub200").super_category == "bird"
    assert get_benchmark("nabirds").super_category == "bird"
    assert get_benchmark("stanford_dogs").super_category == "dog"
    assert get_benchmark("dtd").super_category is None


def test_hub_sources_are_the_ones_of_protocols_md():
    assert get_benchmark("fgvc_aircraft").hub.label_column == "variant"
    assert get_benchmark("food101").hub.splits["test"] == "validation"
    assert get_benchmark("oxford_pets").hub.id_column == "image_id"
    assert get_benchmark("imagenet_v2").hub.streaming
    assert get_benchmark("imagenet_v2").hub.label_column == "cls"
    assert get_benchmark("nabirds").hub is None


def test_shipped_class_lists_have_the_protocol_sizes():
    imagenet = imagenet_class_names()
    assert len(imagenet) == 1000 and imagenet[:3] == ("tench", "goldfish", "great white shark")
    for variant in ("a", "r"):
        subset = imagenet_subset_class_names(variant)
        assert len(subset) == 200 and set(subset) <= set(imagenet)
    assert len(oxford_flowers_class_names()) == 102 and oxford_flowers_class_names()[0] == "pink primrose"
    assert len(oxford_pets_class_names()) == 37 and oxford_pets_class_names()[1] == "american_bulldog"


def test_imagenet_labels_are_unique_and_prompts_keep_openais_repeated_names():
    labels, prompts = imagenet_class_names(), imagenet_prompt_names()
    assert len(set(labels)) == 1000
    assert labels[744] == "missile (n04008634)" and labels[657] == "missile"
    assert prompts[744] == prompts[657] == "missile" and prompts[836] == prompts[837] == "sunglasses"
    ClassLabel(names=list(labels))  # refuses repeated names
    spec = get_benchmark("imagenet")
    assert spec.prompt_names_for([labels[744], labels[0]]) == ["missile", "tench"]
    assert get_benchmark("dtd").prompt_names_for(["banded"]) == ["banded"]


def test_unknown_key_suggests_the_closest_keys():
    with pytest.raises(UnknownBenchmarkError, match="Did you mean 'imagenet_v2'"):
        get_benchmark("imagenetv2")
    with pytest.raises(KeyError, match="Registered: caltech101"):
        get_benchmark("no-such-data")


def test_keys_are_normalised():
    assert get_benchmark("ImageNet-V2").key == "imagenet_v2"


def test_registering_a_custom_benchmark_takes_one_entry(monkeypatch):
    monkeypatch.setattr("hf_prompt_clip.data.registry.BENCHMARKS", dict(BENCHMARKS))
    spec = register_benchmark(
        BenchmarkSpec(
            "my_birds", "a photo of a {}, a type of bird.", hub=HubSource("me/birds"), super_category="bird"
        )
    )
    assert get_benchmark("my_birds") is spec
    with pytest.raises(ValueError, match="already registered"):
        register_benchmark(spec)
    with pytest.raises(ValueError, match="lower case"):
        register_benchmark(BenchmarkSpec("My-Birds"))
    with pytest.raises(ValueError, match="exactly one"):
        BenchmarkSpec("bad_template", "a photo")


# ---- class-name rules, on raw forms -------------------------------------------------------------


def test_caltech101_renames_drops_and_orders_classes_as_coop_in_any_letter_case():
    assert [clean_caltech101(n) for n in ("airplanes", "Faces", "Leopards", "Motorbikes", "accordion")] == [
        "airplane",
        "face",
        "leopard",
        "motorbike",
        "accordion",
    ]
    assert clean_caltech101("BACKGROUND_Google") is None and clean_caltech101("Faces_easy") is None
    raw = [
        "accordion",
        "airplanes",
        "Motorbikes",
        "BACKGROUND_Google",
        "Faces_easy",
        "Faces",
        "Leopards",
        "anchor",
    ]
    names, mapping = resolve_classes(raw, get_benchmark("caltech101"), "name", "test")
    assert names[:6] == ("face", "leopard", "motorbike", "accordion", "airplane", "anchor")  # CoOp's order
    assert len(names) == 100 and mapping == [3, 4, 2, -1, -1, 0, 1, 5]
    lower_case = [name.lower() for name in raw]  # mteb/Caltech101's labels: the same classes, the same ids
    assert resolve_classes(lower_case, get_benchmark("caltech101"), "name", "test") == (names, mapping)


def test_stanford_cars_year_moves_to_the_front():
    assert clean_stanford_cars("AM General Hummer SUV 2000") == "2000 AM General Hummer SUV"
    assert clean_stanford_cars("2000 AM General Hummer SUV") == "2000 AM General Hummer SUV"


def test_sun397_path_becomes_reversed_words():
    assert clean_sun397("/a/apartment_building/outdoor") == "outdoor apartment_building"
    assert clean_sun397("/a/abbey") == "abbey"
    assert clean_sun397("outdoor apartment_building") == "outdoor apartment_building"


def test_eurosat_names_follow_coop_map():
    raw = "AnnualCrop Forest HerbaceousVegetation Highway Industrial Pasture PermanentCrop Residential River SeaLake"
    assert [clean_eurosat(n) for n in raw.split()] == [
        "Annual Crop Land",
        "Forest",
        "Herbaceous Vegetation Land",
        "Highway or Road",
        "Industrial Buildings",
        "Pasture Land",
        "Permanent Crop Land",
        "Residential Buildings",
        "River",
        "Sea or Lake",
    ]
    assert clean_eurosat("Sea or Lake") == "Sea or Lake"


def test_ucf101_camel_case_is_split_with_underscores():
    assert clean_ucf101("ApplyEyeMakeup") == "Apply_Eye_Makeup"
    assert clean_ucf101("YoYo") == "Yo_Yo"
    assert clean_ucf101("Apply_Eye_Makeup") == "Apply_Eye_Makeup"


def test_oxford_pets_breed_comes_from_the_file_name_in_lower_case():
    assert clean_oxford_pets("american_pit_bull_terrier_105.jpg") == "american_pit_bull_terrier"
    assert clean_oxford_pets("Abyssinian_12.jpg") == "abyssinian"
    assert clean_oxford_pets("American Bulldog") == "american_bulldog"
    assert clean_oxford_pets("american_bulldog") == "american_bulldog"


def test_fine_grained_folder_prefixes_are_stripped():
    assert strip_list_prefix("001.Black_footed_Albatross") == "Black_footed_Albatross"
    assert strip_list_prefix("n02085620-Chihuahua") == "Chihuahua"
    assert strip_list_prefix("Chihuahua") == "Chihuahua"


@pytest.mark.parametrize("key", ["dtd", "food101", "eurosat"])
def test_folder_read_benchmarks_keep_coops_ascii_folder_order(key):
    """CoOp reads DTD, Food-101 (`read_and_split_data`) and EuroSAT from class folders sorted in plain
    ASCII order (`cheese_plate` before `cheesecake`); label ids follow it."""
    from hf_prompt_clip.data.classnames import EUROSAT_NAMES

    names = list(get_benchmark(key).class_names)
    folders = list(EUROSAT_NAMES) if key == "eurosat" else names
    assert folders == sorted(folders)
    if key == "eurosat":
        assert names == [EUROSAT_NAMES[folder] for folder in sorted(EUROSAT_NAMES)]


def test_zero_shot_takes_the_reference_ensemble_when_asked():
    """`--option ensemble=True`: CoOp's ZeroshotCLIP2 templates; by default the benchmark's own one."""
    from hf_prompt_clip import ZeroShotCLIPConfig

    dtd = get_benchmark("dtd")
    assert ZeroShotCLIPConfig().benchmark_defaults(dtd) == {"templates": ["{} texture."]}
    chosen = ZeroShotCLIPConfig(ensemble=True).benchmark_defaults(dtd)["templates"]
    assert chosen == list(dtd.ensemble_templates) and len(chosen) == 8
