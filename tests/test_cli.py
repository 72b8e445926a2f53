"""The command line runs a whole experiment offline on a local image folder."""

import json
import os

import pytest
import torch
from transformers import AutoModel

from hf_prompt_clip.cli import main
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset
from hf_prompt_clip.train import list_checkpoints


@pytest.fixture
def pattern_folder(tmp_path):
    """An imagefolder tree (train/test) of the generated pattern classes."""
    for split, per_class, seed in (("train", 6, 0), ("test", 4, 1)):
        images, labels = pattern_dataset(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


def pattern_run(tiny_clip_folder, pattern_folder, output, *options):
    """`hf-prompt-clip train` arguments on the pattern folder (as a local `fgvc_aircraft`, whose registry
    entry ships no class list) with the tiny CLIP."""
    data = [
        "--base-model",
        tiny_clip_folder,
        "--dataset",
        "fgvc_aircraft",
        "--image-folder",
        str(pattern_folder),
    ]
    return ["train", *data, "--output-dir", str(output), *options]


QUICK = ["--protocol", "few_shot", "--shots", "2", "--epochs", "1", "--batch-size", "4"]


def test_train_command_writes_results_adapter_and_card(tiny_clip_folder, pattern_folder, tmp_path, capsys):
    output = tmp_path / "run"
    options = ["--method", "coop", "--option", "n_ctx=2", "--protocol", "base2new", "--shots", "4"]
    options += ["--seed", "1", "2", "--epochs", "2", "--batch-size", "4"]
    main(pattern_run(tiny_clip_folder, pattern_folder, output, *options))
    results = json.loads((output / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]  # the baseline comes along
    for entry in results:
        assert [run["seed"] for run in entry["runs"]] == [1, 2]
        assert set(entry["mean"]) == {"base", "new", "hm"}
    assert (output / "results.md").is_file() and (output / "base_to_new.png").stat().st_size > 0
    adapter = output / "coop" / "seed1" / "adapter"
    for name in ("config.json", "model.safetensors", "README.md", "few_shot_selection.json"):
        assert (adapter / name).is_file(), name
    selection = json.loads((adapter / "few_shot_selection.json").read_text())
    assert selection["shots"] == 4 and len(selection["ids"]) == 4 * len(PATTERN_CLASSES)
    data = f"image folder {str(pattern_folder.resolve())!r}"  # what was read, in results and card
    assert all(entry["data"] == data for entry in results)
    assert f"- fgvc_aircraft: {data}" in (adapter / "README.md").read_text()
    model = AutoModel.from_pretrained(adapter)
    assert model.config.class_names == ["blue", "checkerboard"]  # base classes: first half, sorted
    assert "coop" in capsys.readouterr().out


def test_unknown_method_option_names_the_valid_ones(tiny_clip_folder, pattern_folder, tmp_path):
    with pytest.raises(ValueError, match=r"has no option \['n_context'\].*'n_ctx'"):
        main(
            pattern_run(
                tiny_clip_folder, pattern_folder, tmp_path, "--method", "coop", "--option", "n_context=4"
            )
        )


def test_main_job_defaults_to_the_synthetic_world_and_the_shipped_clip(tmp_path, capsys):
    """`examples/train.py` with no arguments; shortened here (1 epoch, 2 shots)."""
    from hf_prompt_clip.synthetic import TINY_CLIP_ID

    main(["train", "--epochs", "1", "--shots", "2", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]
    assert all(entry["dataset"] == "synthetic_shapes_outline" and entry["synthetic"] for entry in results)
    zero_shot = results[0]["mean"]
    assert zero_shot["base"] > 10 and zero_shot["new"] > 10  # 40-way: chance is 2.5 %
    config = json.loads((tmp_path / "coop" / "seed1" / "adapter" / "config.json").read_text())
    assert config["base_model_name_or_path"] == TINY_CLIP_ID  # portable, resolved when loading
    AutoModel.from_pretrained(tmp_path / "coop" / "seed1" / "adapter")
    assert len(config["class_names"]) == 40  # base classes
    assert "(synthetic)" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "base_to_new.png").stat().st_size > 0


def test_push_to_hub_publishes_the_method_and_evaluates_the_baseline_beside_it(
    tiny_clip_folder, pattern_folder, tmp_path, monkeypatch
):
    pushed = []
    monkeypatch.setattr(
        "hf_prompt_clip.runner.push_adapter_to_hub", lambda folder, repo, **kw: pushed.append((folder, repo))
    )
    output = tmp_path / "run"
    main(
        pattern_run(
            tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--push-to-hub", "org/x"
        )
    )
    assert pushed == [(str(output / "coop" / "seed1" / "adapter"), "org/x")]
    assert (
        'AutoModel.from_pretrained("org/x")'
        in (output / "coop" / "seed1" / "adapter" / "README.md").read_text()
    )
    baseline = output / "zeroshot" / "seed1" / "adapter"
    assert f'AutoModel.from_pretrained("{baseline}")' in (baseline / "README.md").read_text()
    results = json.loads((output / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]
    with pytest.raises(SystemExit, match=r"publishes one adapter but \d+ methods"):
        main(
            pattern_run(
                tiny_clip_folder, pattern_folder, output, *QUICK, "--all-methods", "--push-to-hub", "org/x"
            )
        )


def test_seeds_resume_latest_each_from_its_own_checkpoints_and_record_their_own_settings(
    tiny_clip_folder, pattern_folder, tmp_path, monkeypatch, capsys
):
    def contexts(output):
        adapters = [output / "coop" / f"seed{seed}" / "adapter" for seed in (1, 2)]
        return [AutoModel.from_pretrained(adapter).context.detach().clone() for adapter in adapters]

    output = tmp_path / "run"
    seeds = ["--method", "coop", "--seed", "1", "2", "--resume-from-checkpoint", "latest"]
    command = pattern_run(tiny_clip_folder, pattern_folder, output, *QUICK, *seeds)
    main(command)  # nothing to resume yet: every seed starts
    for seed in (1, 2):
        adapter = output / "coop" / f"seed{seed}" / "adapter"
        recorded = json.loads((adapter / "training_args.json").read_text())
        assert recorded["seed"] == seed and recorded["output_dir"] == str(output / "coop" / f"seed{seed}")
        assert f"| `seed` | `{seed}` |" in (adapter / "README.md").read_text()
    first = contexts(output)
    assert not torch.equal(first[0], first[1])
    assert not (output / "zeroshot" / "seed1" / "adapter" / "training_args.json").exists()  # nothing trained

    # the seed decides everything (initialisation, draw, order, augmentation): a second run is equal
    main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "again", *QUICK, *seeds[:-2]))
    assert all(torch.equal(a, b) for a, b in zip(contexts(tmp_path / "again"), first))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed trained again instead of resuming")

    monkeypatch.setattr("hf_prompt_clip.train.trainer.PromptTrainer._step", no_training)
    main(command)  # every seed resumes from its last (final) checkpoint: nothing left to train
    assert all(torch.equal(a, b) for a, b in zip(contexts(output), first))


def test_evaluate_command_reports_the_adapters_accuracy_and_shots(tiny_clip_folder, pattern_folder, tmp_path):
    from hf_prompt_clip.data import (
        ImageFolderSource,
        collate_fn,
        eval_transform,
        get_benchmark,
        load_benchmark,
        with_image_transform,
    )
    from hf_prompt_clip.evaluate import evaluate_accuracy

    main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "run", *QUICK, "--method", "coop"))
    adapter = tmp_path / "run" / "coop" / "seed1" / "adapter"
    data = ["--dataset", "fgvc_aircraft", "--image-folder", str(pattern_folder), "--protocol", "few_shot"]
    main(["evaluate", "--model", str(adapter), *data, "--output-dir", str(tmp_path / "eval")])
    [entry] = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert entry["method"] == "coop" and entry["shots"] == 2  # read from the adapter's few-shot record
    model = AutoModel.from_pretrained(adapter)
    spec = get_benchmark("fgvc_aircraft")
    test = load_benchmark(spec, "test", source=ImageFolderSource(str(pattern_folder)))
    test = with_image_transform(test, eval_transform(model.image_processor))
    assert entry["mean"]["accuracy"] == pytest.approx(evaluate_accuracy(model, test, collate_fn, spec))


def test_zero_shot_alone_runs_on_the_default_synthetic_world(tmp_path):
    main(["train", "--method", "zeroshot", "--shots", "1", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot"] and results[0]["mean"]["base"] > 10


def test_full_training_set_and_a_fixed_class_method_from_the_cli(tiny_clip_folder, pattern_folder, tmp_path):
    """`--shots all` trains on every training image; MP-FGVC runs the few-shot protocol, is refused on
    base-to-new before anything trains, and is left out (with a warning) of `--all-methods` there."""
    output = tmp_path / "full"
    options = ["--method", "mpfgvc", "--option", "super_category=pattern", "--protocol", "few_shot"]
    options += ["--shots", "all", "--epochs", "1", "--batch-size", "8"]
    main(pattern_run(tiny_clip_folder, pattern_folder, output, *options))
    results = json.loads((output / "results.json").read_text())
    assert [(entry["method"], entry["shots"]) for entry in results] == [("zeroshot", None), ("mpfgvc", None)]
    adapter = output / "mpfgvc" / "seed1" / "adapter"
    assert not (adapter / "few_shot_selection.json").exists()  # nothing was sampled
    last = list_checkpoints(output / "mpfgvc" / "seed1")[-1]
    assert last.name == "checkpoint-6"  # 24 training images / batch 8 = 3 steps in each of 2 stages
    state = json.loads((last / "trainer_state.json").read_text())
    assert [entry["stage"] for entry in state["log"]] == ["visual", "fusion"]
    assert "| all |" in (output / "results.md").read_text()
    with pytest.raises(ValueError, match="cannot classify the new classes"):
        main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "b2n", "--method", "mpfgvc"))
    assert not (tmp_path / "b2n").exists()
    main(
        pattern_run(
            tiny_clip_folder,
            pattern_folder,
            tmp_path / "all",
            "--all-methods",
            *QUICK[:1],
            "base2new",
            *QUICK[2:],
        )
    )
    methods = [entry["method"] for entry in json.loads((tmp_path / "all" / "results.json").read_text())]
    assert "mpfgvc" not in methods and "plotpp" in methods


def test_shots_take_a_positive_number_or_all(tiny_clip_folder, pattern_folder, tmp_path):
    with pytest.raises(SystemExit):
        main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path, "--shots", "0"))


def test_the_dassl_sampler_from_the_cli_records_its_draw(tiny_clip_folder, pattern_folder, tmp_path):
    main(
        pattern_run(
            tiny_clip_folder,
            pattern_folder,
            tmp_path,
            "--method",
            "coop",
            "--few-shot-sampler",
            "dassl",
            *QUICK,
        )
    )
    selection = json.loads((tmp_path / "coop" / "seed1" / "adapter" / "few_shot_selection.json").read_text())
    assert selection["sampler"].startswith("Dassl") and selection["shots"] == 2


def test_data_export_writes_a_dataset_that_trains_like_any_source(
    tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    exported = tmp_path / "exported"
    main(
        [
            "data",
            "export",
            "fgvc_aircraft",
            "--image-folder",
            str(pattern_folder),
            "--output-dir",
            str(exported),
        ]
    )
    assert "wrote" in capsys.readouterr().out
    assert sorted(os.listdir(exported / "data")) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    data = ["--base-model", tiny_clip_folder, "--dataset", "fgvc_aircraft", "--exported", str(exported)]
    main(["train", *data, "--output-dir", str(tmp_path / "run"), "--method", "coop", *QUICK])
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]


def test_the_cli_offers_every_few_shot_sampler():
    from hf_prompt_clip.cli import FEW_SHOT_SAMPLERS
    from hf_prompt_clip.data import SAMPLERS

    assert FEW_SHOT_SAMPLERS == SAMPLERS
