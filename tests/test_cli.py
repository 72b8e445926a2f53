"""The command line runs a whole experiment offline on a local image folder."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel

from hf_prompt_clip.cli import main
from hf_prompt_clip.data import folder_benchmark
from hf_prompt_clip.runner import ExperimentConfig, run_comparison
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset
from hf_prompt_clip.train import TrainingConfig, list_checkpoints


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
    """`hf-prompt-clip train` arguments on the pattern folder (your own data: `--data-dir`) with the tiny CLIP."""
    data = ["--base-model", tiny_clip_folder, "--data-dir", str(pattern_folder)]
    return ["train", *data, "--output-dir", str(output), *options]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """`main(argv)` as a shell runs it: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The one error line the CLI prints (there must be exactly one, and no traceback)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


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
    card = (adapter / "README.md").read_text()
    assert "- imagefolder:patterns: image folder 'patterns'" in card  # no local path in the data read
    model = AutoModel.from_pretrained(adapter)
    assert model.config.class_names == ["blue", "checkerboard"]  # base classes: first half, sorted
    assert "coop" in capsys.readouterr().out


def test_bad_options_exit_2_with_one_line_naming_the_methods_own_options(
    tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    run = pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "run", "--method", "coop")
    code, _, err = run_cli([*run, "--option", "n_context=4"], capsys)
    line = error_line(err)
    assert code == 2 and "n_context" in line and "coop: " in line and "n_ctx" in line
    assert "templates" not in line  # the implicit zero-shot baseline's options are not listed
    code, _, err = run_cli([*run, "--option", "n_ctx=abc"], capsys)  # was: TypeError '<' ... 'str'
    line = error_line(err)
    assert code == 2 and "n_ctx of coop takes int, got 'abc'" in line
    with pytest.raises(ValueError, match="takes int"):  # --debug: the exception itself
        main([*run, "--option", "n_ctx=abc", "--debug"])
    assert not (tmp_path / "run").exists()  # refused before anything ran


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
    monkeypatch.setattr("hf_prompt_clip.runner.check_push_access", lambda repo: "org")
    monkeypatch.setattr(
        "hf_prompt_clip.runner.push_adapter_to_hub", lambda folder, repo, **kw: pushed.append((folder, repo))
    )
    output = tmp_path / "run"
    main(
        pattern_run(
            tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--push-to-hub", "org/x"
        )
    )
    assert pushed == [(output / "coop" / "seed1" / "adapter", "org/x")]
    assert (
        'AutoModel.from_pretrained("org/x")'
        in (output / "coop" / "seed1" / "adapter" / "README.md").read_text()
    )
    baseline = output / "zeroshot" / "seed1" / "adapter"
    assert f'AutoModel.from_pretrained("{baseline}")' in (baseline / "README.md").read_text()
    results = json.loads((output / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]
    with pytest.raises(ValueError, match=r"publishes one adapter but \d+ methods"):
        main(
            pattern_run(
                tiny_clip_folder,
                pattern_folder,
                output,
                *QUICK,
                "--all-methods",
                "--push-to-hub",
                "org/x",
                "--debug",
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
    # no data named: the adapter's record gives its folder and protocol
    main(["evaluate", "--model", str(adapter), "--output-dir", str(tmp_path / "eval")])
    [entry] = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert entry["method"] == "coop" and entry["shots"] == 2  # read from the adapter's data record
    assert entry["dataset"] == "imagefolder:patterns" and entry["protocol"] == "few_shot"
    model = AutoModel.from_pretrained(adapter)
    test = load_benchmark("fgvc_aircraft", "test", source=ImageFolderSource(str(pattern_folder)))
    test = with_image_transform(test, eval_transform(model.image_processor))
    spec = get_benchmark("fgvc_aircraft")
    exact = evaluate_accuracy(model, test, collate_fn, spec)
    assert entry["mean_full_precision"]["accuracy"] == pytest.approx(exact)
    assert entry["mean"]["accuracy"] == round(exact, 2)


def test_zero_shot_alone_runs_on_the_default_synthetic_world(tmp_path):
    main(["train", "--method", "zeroshot", "--shots", "1", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [entry["method"] for entry in results] == ["zeroshot"] and results[0]["mean"]["base"] > 10


def test_full_training_set_and_a_fixed_class_method_from_the_cli(tiny_clip_folder, pattern_folder, tmp_path):
    """`--shots all` trains on every training image; MP-FGVC runs the few-shot protocol, is refused on
    base-to-new before anything trains, and is left out (with a warning) of `--all-methods` there."""
    output = tmp_path / "full"
    options = ["--method", "mpfgvc", "--super-category", "pattern", "--protocol", "few_shot"]
    options += ["--shots", "all", "--epochs", "1", "--batch-size", "8"]
    main(pattern_run(tiny_clip_folder, pattern_folder, output, *options))
    results = json.loads((output / "results.json").read_text())
    assert [(entry["method"], entry["shots"]) for entry in results] == [("zeroshot", 0), ("mpfgvc", None)]
    adapter = output / "mpfgvc" / "seed1" / "adapter"
    assert not (adapter / "few_shot_selection.json").exists()  # nothing was sampled
    last = list_checkpoints(output / "mpfgvc" / "seed1")[-1]
    assert last.name == "checkpoint-6"  # 24 training images / batch 8 = 3 steps in each of 2 stages
    state = json.loads((last / "trainer_state.json").read_text())
    assert [entry["stage"] for entry in state["log"]] == ["visual", "fusion"]
    assert "| all |" in (output / "results.md").read_text()
    with pytest.raises(ValueError, match="cannot classify the new classes"):
        main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "b2n", "--method", "mpfgvc", "--debug"))
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


@pytest.fixture
def flat_folder(tmp_path):
    """A flat folder of your own (no split folders): 4 classes of 10 images, names with underscores."""
    images, labels = pattern_dataset(10, seed=3)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "my_patterns" / f"{PATTERN_CLASSES[label]}_pattern"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index}.png")
    return tmp_path / "my_patterns"


def test_a_flat_folder_of_your_own_trains_and_evaluates_from_the_cli(
    tiny_clip_folder, flat_folder, tmp_path, capsys
):
    output = tmp_path / "run"
    own = ["--data-dir", str(flat_folder), "--template", "a {} texture.", "--test-fraction", "0.3"]
    command = ["train", "--base-model", tiny_clip_folder, *own, "--output-dir", str(output)]
    code, out, err = run_cli(
        [*command, "--method", "coop", "--protocol", "few_shot", "--shots", "2", "--epochs", "1"], capsys
    )
    assert code == 0, err
    results = json.loads((output / "results.json").read_text())
    assert all(entry["dataset"] == "imagefolder:my_patterns" for entry in results)  # the folder, no benchmark
    assert "flat; split per class: val 10%, test 30%" in results[0]["data"]  # the split, recorded
    adapter = output / "coop" / "seed1" / "adapter"
    config = json.loads((adapter / "config.json").read_text())
    assert config["class_names"] == ["blue pattern", "checkerboard pattern", "red pattern", "stripes pattern"]
    card = (adapter / "README.md").read_text()
    assert (
        "blue_pattern" not in card
        and "type: imagefolder" in card
        and "my_patterns (local image folder)" in card
    )
    record = json.loads((adapter / "training_data.json").read_text())
    assert record["folder"]["split_fractions"] == {"val": 0.1, "test": 0.3} and record["shots"] == 2
    # each class of 10 images: 3 test, 1 val, 6 train; the parts never share an image
    from hf_prompt_clip.data import folder_benchmark_from_record, load_benchmark

    spec, source = folder_benchmark_from_record(record["folder"])
    ids = {
        split: set(load_benchmark(spec, split, source=source)["example_id"])
        for split in ("train", "val", "test")
    }
    assert [len(ids[split]) for split in ("train", "val", "test")] == [24, 4, 12]
    assert not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    # evaluation without naming the data reads the same folder with the same split
    code, out, err = run_cli(["evaluate", "--model", str(adapter)], capsys)
    assert code == 0, err
    coop = next(entry for entry in results if entry["method"] == "coop")
    assert f"accuracy {coop['mean']['accuracy']:.2f} %" in out
    # moved: the new place with the recorded names and split (not the defaults: test 30 %, not 20 %)
    import shutil

    shutil.move(flat_folder, tmp_path / "moved")
    code, _, err = run_cli(["evaluate", "--model", str(adapter)], capsys)
    assert code == 2 and "give its new place with --data-dir" in error_line(err)
    code, out, err = run_cli(
        ["evaluate", "--model", str(adapter), "--data-dir", str(tmp_path / "moved")], capsys
    )
    assert code == 0 and f"accuracy {coop['mean']['accuracy']:.2f} %" in out, err
    code, _, err = run_cli([*command, "--test-fraction", "0"], capsys)
    assert code == 2 and "without test images" in error_line(err)
    # a base model is required off the synthetic world
    own[1] = str(tmp_path / "moved")
    code, _, err = run_cli(["train", *own, "--output-dir", str(tmp_path / "no-base")], capsys)
    assert code == 2 and "--base-model is required" in error_line(err)


def test_evaluate_refuses_an_adapter_trained_on_other_classes_unless_told(
    tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "run", *QUICK, "--method", "coop"))
    adapter = str(tmp_path / "run" / "coop" / "seed1" / "adapter")
    other = ["--dataset", "synthetic_shapes", "--protocol", "few_shot"]
    code, out, err = run_cli(["evaluate", "--model", adapter, *other], capsys)
    line = error_line(err)
    assert code == 2 and "trained on 'imagefolder:patterns', not on 'synthetic_shapes'" in line
    assert "--classes-from-data" in line and "accuracy" not in out  # no numbers were printed
    code, out, err = run_cli(
        ["evaluate", "--model", adapter, *other, "--classes-from-data", "--output-dir", str(tmp_path / "e")],
        capsys,
    )
    assert code == 0, err
    [entry] = json.loads((tmp_path / "e" / "results.json").read_text())
    assert entry["trained_on"] == "imagefolder:patterns" and entry["shots"] == 2  # shots of that training
    assert "| 2 (on imagefolder:patterns) |" in (tmp_path / "e" / "results.md").read_text()


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "--model", "missing-dir"], capsys)  # was: a Hub connection error
    assert code == 2 and "--model 'missing-dir': no adapter folder of that name is here" in error_line(err)
    code, _, err = run_cli(["evaluate", "--model", str(tmp_path / "nowhere" / "adapter")], capsys)
    assert code == 2 and "no such adapter folder" in error_line(err)
    code, _, err = run_cli(["train", "--dataset", "my_shapes", "--output-dir", str(tmp_path / "x")], capsys)
    assert code == 2 and "--data-dir DIR" in error_line(err)  # not register_benchmark(...)
    code, _, err = run_cli(["train", "--dataset", "imagefolder"], capsys)
    assert code == 2 and "--data-dir" in error_line(err)
    code, _, err = run_cli(["train", "--template", "a {}.", "--output-dir", str(tmp_path / "x")], capsys)
    assert code == 2 and "describe your own image folder" in error_line(err)
    assert not (tmp_path / "x").exists()


def test_push_is_checked_before_training_and_a_failed_push_keeps_every_result(
    tiny_clip_folder, pattern_folder, tmp_path, capsys, monkeypatch
):
    output = tmp_path / "run"
    command = pattern_run(
        tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--push-to-hub", "me/x"
    )
    code, _, err = run_cli(command, capsys)  # offline: no login can be confirmed
    assert code == 2 and "Cannot push to 'me/x'" in error_line(err) and not output.exists()

    def refuse(*args, **kwargs):
        raise ConnectionError("the Hub went away")

    monkeypatch.setattr("hf_prompt_clip.runner.check_push_access", lambda repo: "me")
    monkeypatch.setattr("hf_prompt_clip.runner.push_adapter_to_hub", refuse)
    code, out, err = run_cli(command, capsys)
    line = error_line(err)
    assert code == 2 and "the Hub went away" in line
    assert f"Retry with: hf-prompt-clip push {output / 'coop' / 'seed1' / 'adapter'} me/x" in line
    for name in ("results.json", "results.md"):
        assert (output / name).is_file(), name
    assert "| coop |" in out  # the results table was still printed
    adapter = output / "coop" / "seed1" / "adapter"
    assert (adapter / "model.safetensors").is_file()
    # the retry pushes the same folder; another adapter's card is made to name the repository
    pushed = []
    monkeypatch.setattr("hf_prompt_clip.hub.check_push_access", lambda repo: "me")
    monkeypatch.setattr(
        "hf_prompt_clip.runner.push_adapter_to_hub", lambda folder, repo, **kw: pushed.append(repo)
    )
    baseline = output / "zeroshot" / "seed1" / "adapter"
    code, out, err = run_cli(["push", str(baseline), "me/zero-shot-patterns"], capsys)
    assert code == 0 and pushed == ["me/zero-shot-patterns"], err
    card = (baseline / "README.md").read_text()
    assert 'AutoModel.from_pretrained("me/zero-shot-patterns")' in card and str(baseline) not in card


def test_the_zero_shot_baseline_claims_no_shots(tiny_clip_folder, pattern_folder, tmp_path):
    output = tmp_path / "run"
    main(pattern_run(tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop"))
    adapter = output / "zeroshot" / "seed1" / "adapter"
    assert not (adapter / "few_shot_selection.json").exists()  # nothing was drawn for it
    card = (adapter / "README.md").read_text()
    assert (
        "Few-shot selection" not in card
        and "accuracy (few-shot, zero-shot)" in card
        and "2 shots" not in card
    )
    results = json.loads((output / "results.json").read_text())
    assert [entry["shots"] for entry in results] == [0, 2]
    assert json.loads((adapter / "training_data.json").read_text())["shots"] == 0
    for entry in results:  # rounded for people, exact beside
        assert all(round(value, 2) == value for value in entry["mean"].values())
        assert set(entry["mean_full_precision"]) == set(entry["mean"])


def test_several_shots_run_the_few_shot_curve_and_draw_it(
    tiny_clip_folder, pattern_folder, tmp_path, capsys, caplog
):
    output = tmp_path / "curve"
    command = pattern_run(
        tiny_clip_folder, pattern_folder, output, *QUICK[:2], "--shots", "1", "2", *QUICK[4:]
    )
    with caplog.at_level("INFO", logger="hf_prompt_clip"):
        code, out, err = run_cli([*command, "--method", "coop"], capsys)
    assert code == 0, err
    results = json.loads((output / "results.json").read_text())
    assert [(entry["method"], entry["shots"]) for entry in results] == [
        ("zeroshot", 0),
        ("coop", 1),
        ("coop", 2),
    ]
    assert (output / "accuracy_vs_shots.png").stat().st_size > 0
    assert (output / "coop" / "shots1" / "seed1" / "adapter").is_dir()
    assert "wrote results.json, results.md, accuracy_vs_shots.png in" in out  # what was written, only
    from datasets.utils.logging import is_progress_bar_enabled

    assert not is_progress_bar_enabled()  # third-party bars are off; the story is in the log lines
    logs = caplog.text
    assert "coop, seed 1: imagefolder:patterns" in logs and "1 shot per class = 4 training images" in logs
    assert (
        "training stage 'prompt'" in logs
        and "evaluated on imagefolder:patterns (few_shot, 16 test images, " in logs
        and " images/s): accuracy" in logs  # the evaluation speed, for a user who waits for it
    )


def test_help_texts_name_their_program_and_describe_every_flag(capsys):
    from hf_prompt_clip.cli import build_parser

    with pytest.raises(SystemExit):
        main(["data-summary", "--help"])
    text = capsys.readouterr().out
    for flag in ("--data-dir", "--split-file", "--splits", "--subset", "--shots", "--few-shot-sampler"):
        assert flag in text, flag
    assert "a benchmark key of the registry" in text  # the positional is described
    parser = build_parser("examples/train.py", command="train")
    assert parser.format_usage().startswith("usage: examples/train.py [-h]")


def test_a_class_with_fewer_images_than_the_shots_is_recorded_as_drawn(
    tiny_clip_folder, pattern_folder, tmp_path, caplog
):
    """1 training image of "red" with --shots 4: a warning, and results, table, card and data record say
    what was drawn (min 1), not 4 shots for every class."""
    for extra in sorted((pattern_folder / "train" / "red").iterdir())[1:]:
        extra.unlink()
    output = tmp_path / "run"
    options = ["--method", "coop", "--protocol", "few_shot", "--shots", "4", "--epochs", "1", "--no-baseline"]
    with caplog.at_level("WARNING"):
        main(pattern_run(tiny_clip_folder, pattern_folder, output, *options))
    assert "1 of 4 classes have fewer than 4 train examples" in caplog.text and "'red' (1)" in caplog.text
    (result,) = json.loads((output / "results.json").read_text())
    assert result["shots"] == 4 and result["shots_drawn"] == {"min": 1, "median": 4.0, "max": 4}
    assert "| 4 (drawn: min 1, median 4) |" in (output / "results.md").read_text()
    adapter = output / "coop" / "seed1" / "adapter"
    card = (adapter / "README.md").read_text()
    assert "4 shots asked, min 1, median 4 drawn" in card and "| 4 asked; drawn: min 1, median 4 |" in card
    assert json.loads((adapter / "training_data.json").read_text())["shots_drawn"]["min"] == 1
    assert json.loads((adapter / "few_shot_selection.json").read_text())["per_class"] == [
        4,
        4,
        1,
        4,
    ]  # blue, checkerboard, red, stripes


@pytest.mark.parametrize(
    "fault",
    ["unwritable output", "corrupt test image", "unknown target", "eval batch size 0"],
)
def test_what_would_fail_after_training_fails_before_it(
    fault, tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    """A read-only output folder, a bad target, a zero evaluation batch or an unreadable test image
    used to fail after training (or after the baseline evaluation): now before anything trains."""
    output = tmp_path / "run"
    options = ["--method", "coop", *QUICK]
    if fault == "unwritable output":
        (tmp_path / "a-file").write_text("")
        output = tmp_path / "a-file" / "run"  # a folder inside a file: refused even for root
        expected = "Cannot write to the output folder"
    elif fault == "corrupt test image":
        broken = sorted((pattern_folder / "test" / "red").iterdir())[0]
        broken.write_bytes(b"not an image at all")
        expected = f"{broken.name}"
    elif fault == "unknown target":
        options = ["--method", "coop", "--protocol", "cross_dataset", "--targets", "imagenet_vv2"]
        options += ["--shots", "2", "--epochs", "1"]
        expected = "imagenet_vv2"
    else:
        options += ["--eval-batch-size", "0"]
        expected = "eval"
    code, _, err = run_cli(pattern_run(tiny_clip_folder, pattern_folder, output, *options), capsys)
    assert code == 2 and expected in error_line(err), error_line(err)
    assert not list(tmp_path.rglob("seed1")), "something trained before the check"


def test_the_adapter_is_saved_before_evaluation_and_another_runs_folder_is_refused(
    tiny_clip_folder, pattern_folder, tmp_path, capsys, monkeypatch
):
    import hf_prompt_clip.runner

    def crash(*args, **kwargs):
        raise RuntimeError("the evaluation crashed")

    output = tmp_path / "run"
    run = pattern_run(tiny_clip_folder, pattern_folder, output, "--method", "coop", *QUICK, "--no-baseline")
    with monkeypatch.context() as patch:
        patch.setattr(hf_prompt_clip.runner, "evaluate_protocol", crash)
        code, _, err = run_cli(run, capsys)
    assert code == 2 and "the evaluation crashed" in error_line(err)
    assert (output / "coop" / "seed1" / "adapter" / "model.safetensors").is_file()  # the training is kept
    code, _, err = run_cli([*run, "--lr", "0.5"], capsys)  # other settings in the same folder
    assert code == 2 and "--overwrite-output-dir" in error_line(err), error_line(err)
    assert run_cli([*run, "--lr", "0.5", "--overwrite-output-dir"], capsys)[0] == 0


def test_report_to_trackio_logs_the_loss_and_the_settings(tiny_clip_folder, pattern_folder, tmp_path):
    """trackio, local (its SQLite store, no Space): in a fresh process, as trackio reads TRACKIO_DIR on import."""
    pytest.importorskip("trackio")
    output, store = tmp_path / "run", tmp_path / "trackio"
    argv = pattern_run(
        tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--report-to", "trackio"
    )
    env = {
        **os.environ,
        "TRACKIO_DIR": str(store),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    code = f"from hf_prompt_clip.cli import main; main({argv!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    read = (
        "import json; from trackio.sqlite_storage import SQLiteStorage as S; (run,) = S.get_runs('hf_prompt_clip'); "
        "print(json.dumps([S.get_logs('hf_prompt_clip', run), S.get_run_config('hf_prompt_clip', run)]))"
    )
    found = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-3000:]
    logs, config = json.loads(found.stdout.splitlines()[-1])
    assert any("train/loss" in entry for entry in logs) and any("train/lr" in entry for entry in logs)
    assert config["epochs"] == 1 and config["batch_size"] == 4 and config["report_to"] == '["trackio"]'


def test_report_to_tensorboard_logs_the_loss_and_the_settings(tiny_clip_folder, pattern_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = tmp_path / "run"
    main(
        pattern_run(
            tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--report-to", "tensorboard"
        )
    )
    events = sorted(output.glob("coop/seed1/**/events.out.tfevents*"))
    assert events, list(output.rglob("*"))
    scalars = set()
    for path in events:
        accumulator = EventAccumulator(str(path.parent))
        accumulator.Reload()
        scalars |= set(accumulator.Tags()["scalars"])
    assert "train/loss" in scalars  # and init_trackers took the settings (lists flattened to text)


def test_methods_fitted_on_frozen_features_run_from_the_cli_and_need_a_val_split(
    tiny_clip_folder, pattern_folder, tmp_path
):
    """The linear probe and Tip-Adapter(-F) run the few-shot protocol, searching on the val split (its draw
    saved beside the adapter); data without a val split is refused before anything trains, and left out
    (with a warning) of `--all-methods`."""
    methods = ["--method", "linear_probe", "tip_adapter", "tip_adapter_f", "--option", "augment_views=2"]
    with pytest.raises(ValueError, match="chooses its settings on validation examples"):
        main(pattern_run(tiny_clip_folder, pattern_folder, tmp_path / "no-val", *QUICK, *methods, "--debug"))
    assert not (tmp_path / "no-val").exists()
    spec, source = folder_benchmark(pattern_folder)
    config = ExperimentConfig(
        method="coop", base_model=tiny_clip_folder, dataset=spec, source=source, protocol="few_shot", shots=2,
        output_dir=str(tmp_path / "all"), training=TrainingConfig(epochs=1, batch_size=4),
    )  # fmt: skip
    results = run_comparison(
        config, ["zeroshot", "coop", "linear_probe", "tip_adapter"], skip_unsupported=True
    )
    assert [entry["method"] for entry in results] == ["zeroshot", "coop"]  # as --all-methods leaves them out

    images, labels = pattern_dataset(2, seed=2)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = pattern_folder / "val" / PATTERN_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index}.png")
    output = tmp_path / "run"
    main(pattern_run(tiny_clip_folder, pattern_folder, output, *QUICK, *methods))
    results = json.loads((output / "results.json").read_text())
    assert [entry["method"] for entry in results] == [
        "zeroshot",
        "linear_probe",
        "tip_adapter",
        "tip_adapter_f",
    ]
    assert all(entry["shots"] == 2 for entry in results[1:])
    for method in ("linear_probe", "tip_adapter", "tip_adapter_f"):
        adapter = output / method / "seed1" / "adapter"
        selection = json.loads((adapter / "validation_selection.json").read_text())
        assert selection["split"] == "val" and selection["shots"] == 2  # min(2 shots, 4)
        assert AutoModel.from_pretrained(adapter).config.training_stage == "fit"
        # the records claim only the settings the run used: fits read no optimiser settings
        recorded = json.loads((adapter / "training_args.json").read_text())
        card = (adapter / "README.md").read_text()
        # Tip-Adapter-F fine-tunes its keys inside its fit, with its own epochs and learning rate (its options)
        assert "learning_rate" not in recorded and "`learning_rate`" not in card and "`epochs`" not in card
        assert recorded["seed"] == 1 and "`seed`" in card
    assert "| tip_adapter_f |" in (output / "results.md").read_text()
