"""The papers' recipes (issue 28): every entry builds, the docs tables agree with the resolver, the user's
settings win and are recorded, the trainer runs `max_steps` and `drop_last` as the references do, and
`reproduce` writes its table and resumes without training a finished cell again."""

import ast
import dataclasses
import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from hf_prompt_clip.core.recipes import PerShot, Recipe, RecipeEntry
from hf_prompt_clip.core.registry import METHODS, method_config, method_info
from hf_prompt_clip.data import get_benchmark, list_benchmarks
from hf_prompt_clip.evaluate.protocol_registry import protocol_keys
from hf_prompt_clip.experiment.recipes import apply_recipe, resolve_recipe
from hf_prompt_clip.experiment.settings import ExperimentConfig
from hf_prompt_clip.train import TrainingConfig
from hf_prompt_clip.utils.settings import SettingError

ROOT = Path(__file__).parent.parent
WITH_RECIPE = [method for method in METHODS if method_info(method).recipe is not None]
OWN_DATA = "my_own_photos"  # a dataset no entry names


# ------------------------------------------------------------------------------ every entry builds


@pytest.mark.parametrize("method", WITH_RECIPE)
def test_every_recipe_cell_builds_a_training_config_and_the_method_config(method):
    recipe = method_info(method).recipe
    named = {dataset for entry in recipe.entries for dataset in entry.datasets}
    assert named <= set(list_benchmarks()), (
        f"{method}'s recipe names unknown datasets {named - set(list_benchmarks())}"
    )
    assert set(recipe.protocols) <= set(protocol_keys()) and recipe.protocols, method
    for entry in recipe.entries:
        assert entry.source.strip(), f"{method}: an entry without its source file"
        assert set(entry.protocols) <= set(protocol_keys()), entry
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    for protocol in protocol_keys():
        counts = recipe.paper_shots(protocol) or (16,)
        for dataset in [*list_benchmarks(), OWN_DATA]:
            for shots in counts:
                resolved = recipe.resolve(protocol, dataset, shots)
                assert set(resolved.training) <= fields, (method, set(resolved.training) - fields)
                TrainingConfig(**resolved.training)  # refuses a bad value
                method_config(method, resolved.options)  # refuses an unknown option or a bad value


def test_layering_goes_from_default_to_protocol_to_shots_to_dataset():
    recipe = Recipe("r", (
        RecipeEntry("dataset.yaml", datasets=("dtd",), training={"epochs": 4}),
        RecipeEntry("shots.yaml", shots=(1,), training={"epochs": 3, "batch_size": 2}),
        RecipeEntry("protocol.yaml", protocols=("few_shot",), training={"epochs": 2}),
        RecipeEntry("default.yaml", training={"epochs": 1, "learning_rate": 0.1}),
    ))  # fmt: skip
    assert recipe.resolve("base2new", "eurosat", 16).training == {"epochs": 1, "learning_rate": 0.1}
    assert recipe.resolve("few_shot", "eurosat", 16).training["epochs"] == 2
    assert recipe.resolve("few_shot", "eurosat", 1).training == {
        "epochs": 3,
        "learning_rate": 0.1,
        "batch_size": 2,
    }
    resolved = recipe.resolve("few_shot", "dtd", 1)
    assert resolved.training["epochs"] == 4 and resolved.origin["epochs"] == "dataset.yaml"
    assert resolved.sources == ("default.yaml", "protocol.yaml", "shots.yaml", "dataset.yaml")


def test_a_per_shot_setting_scales_and_refuses_the_full_training_set():
    recipe = Recipe("r", (RecipeEntry("main.py", training={"max_steps": PerShot(500)}),))
    assert [recipe.resolve("few_shot", "dtd", k).training["max_steps"] for k in (1, 16)] == [500, 8000]
    with pytest.raises(ValueError, match=r"500 x shots.*full training set"):
        recipe.resolve("few_shot", "dtd", None)


# ------------------------------------------------------------------------------ the numbers


def epochs(method, protocol, dataset, shots):
    return resolve_recipe(method, protocol, dataset, shots).training["epochs"]


def test_coop_epochs_follow_the_shots_and_imagenet_trains_50():
    assert [epochs("coop", "few_shot", "dtd", k) for k in (1, 2, 4, 8, 16)] == [50, 100, 100, 200, 200]
    assert {epochs("coop", "few_shot", "imagenet", k) for k in (1, 2, 4, 8, 16)} == {50}
    assert resolve_recipe("coop", "few_shot", "dtd", 16).training["batch_size"] == 32


def test_cocoop_trains_with_batch_1():
    resolved = resolve_recipe("cocoop", "base2new", "eurosat", 16)
    assert resolved.training["batch_size"] == 1 and resolved.training["epochs"] == 10


def test_clip_lora_trains_500_steps_per_shot_with_adamw_to_1e_6():
    training = resolve_recipe("clip_lora", "few_shot", "dtd", 4).training
    assert training["max_steps"] == 2000 and training["optimizer"] == "adamw"
    assert (training["learning_rate"], training["min_lr"], training["weight_decay"]) == (2e-4, 1e-6, 1e-2)


def _docs_tables() -> dict[str, list[dict[str, str]]]:
    """docs/reproducing.md's recipe tables: `### <method>` then a table of cells."""
    text = (ROOT / "docs" / "reproducing.md").read_text(encoding="utf-8")
    tables = {}
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        name = section.split()[0].strip("`")
        rows = [line for line in section.splitlines() if line.startswith("|")]
        if name not in METHODS or len(rows) < 3:
            continue
        header = [cell.strip() for cell in rows[0].strip("|").split("|")]
        tables[name] = [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[2:]]
    return tables


def _same(documented, resolved) -> bool:
    if isinstance(documented, (list, tuple)) or isinstance(resolved, (list, tuple)):
        return list(documented) == list(resolved or ())
    if isinstance(documented, float) or isinstance(resolved, float):
        return resolved is not None and math.isclose(documented, resolved, rel_tol=1e-12)
    return documented == resolved and type(documented) is type(resolved)


@pytest.mark.parametrize("method", WITH_RECIPE)
def test_the_docs_table_of_each_recipe_equals_what_the_resolver_gives(method):
    tables = _docs_tables()
    assert method in tables, f"docs/reproducing.md has no `### {method}` recipe table"
    for row in tables[method]:
        dataset = OWN_DATA if row["dataset"] == "*" else row["dataset"]
        shots = None if row["shots"] == "all" else int(row["shots"])
        resolved = resolve_recipe(method, row["protocol"], dataset, shots)
        for column, cell in row.items():
            if column in ("protocol", "dataset", "shots"):
                continue
            name = column.removeprefix("option:")
            found = resolved.options if column.startswith("option:") else resolved.training
            where = f"{method} {row['protocol']} {row['dataset']} {row['shots']} shots: {column}"
            if cell == "-":
                assert name not in found, f"{where}: the docs say unset, the recipe sets {found.get(name)!r}"
            else:
                assert name in found, f"{where}: the docs say {cell}, the recipe does not set it"
                assert _same(ast.literal_eval(cell), found[name]), (
                    f"{where}: docs {cell}, recipe {found[name]!r}"
                )


# ------------------------------------------------------------------------------ the user's settings win


def test_a_setting_the_user_gives_wins_and_is_recorded_as_a_deviation():
    training = TrainingConfig(epochs=3, learning_rate=0.002)
    config = ExperimentConfig(
        method="coop", dataset="dtd", protocol="few_shot", shots=16, recipe="paper", training=training,
        overrides=("epochs", "learning_rate"), method_options={"n_ctx": 4}, few_shot_sampler="numpy",
    )  # fmt: skip
    cell, record = apply_recipe(config)
    assert cell.training.epochs == 3 and cell.training.batch_size == 32
    assert record.deviations["epochs"] == {"recipe": 200, "used": 3}
    assert "learning_rate" not in record.deviations  # given, but equal to the recipe's
    assert record.deviations["option.n_ctx"] == {"recipe": 16, "used": 4}
    assert record.applied["batch_size"] == 32 and "epochs" not in record.applied
    assert "except epochs 3 (recipe: 200)" in record.describe()
    # a draw other than the papers' is a deviation too (with the paper's recipe the default draw is theirs)
    assert record.deviations["few_shot_sampler"] == {"recipe": "dassl", "used": "numpy"}
    assert (
        ExperimentConfig(recipe="paper").few_shot_sampler == "dassl"
        and ExperimentConfig().few_shot_sampler == "numpy"
    )
    # the Python API without overrides: what differs from the defaults counts as given
    config = dataclasses.replace(config, overrides=None, method_options={}, few_shot_sampler="dassl")
    cell, record = apply_recipe(config)
    assert cell.training.epochs == 3 and set(record.deviations) == {"epochs"}
    # recipe none: nothing applied
    cell, record = apply_recipe(dataclasses.replace(config, recipe="none"))
    assert cell.training == config.training and record.to_dict() == {"recipe": "none"}


def test_steps_given_over_a_recipe_of_epochs_drop_the_epochs_and_are_recorded():
    config = ExperimentConfig(
        method="coop", dataset="dtd", protocol="few_shot", shots=2, recipe="paper", few_shot_sampler="dassl",
        training=TrainingConfig(max_steps=50), overrides=("max_steps",),
    )  # fmt: skip
    cell, record = apply_recipe(config)
    assert cell.training.max_steps == 50 and "epochs" not in record.applied
    assert record.deviations == {"epochs": {"recipe": 100, "used": None}}
    assert "epochs unset (recipe: 100)" in record.describe()


def test_a_per_shot_setting_the_user_replaces_does_not_refuse_the_full_training_set():
    config = ExperimentConfig(
        method="clip_lora", dataset="dtd", protocol="few_shot", shots=None, recipe="paper",
        training=TrainingConfig(max_steps=100), overrides=("max_steps",),
    )  # fmt: skip
    cell, record = apply_recipe(config)
    assert cell.training.max_steps == 100 and "max_steps" not in record.deviations
    with pytest.raises(SettingError, match=r"max_steps.*500 x shots"):
        apply_recipe(dataclasses.replace(config, training=TrainingConfig(), overrides=()))


def test_the_global_batch_of_several_processes_is_a_deviation_from_the_papers_one_gpu_batch():
    from hf_prompt_clip.experiment.recipes import with_global_batch

    config = ExperimentConfig(
        method="coop", dataset="dtd", protocol="few_shot", shots=16, recipe="paper", few_shot_sampler="dassl"
    )
    cell, record = apply_recipe(config)
    assert with_global_batch(record, cell.training, 1) == record
    wider = with_global_batch(record, dataclasses.replace(cell.training, gradient_accumulation_steps=2), 4)
    assert wider.deviations["global_batch_size"] == {"recipe": 32, "used": 256}
    assert "global_batch_size 256 (recipe: 32)" in wider.describe()


def test_a_recipe_that_sets_nothing_for_a_cell_says_so():
    from hf_prompt_clip.core.recipes import describe_recipe

    recipe = Recipe("r", (RecipeEntry("x.yaml", datasets=("dtd",), training={"epochs": 4}),))
    record = recipe.resolve("few_shot", "eurosat", 16).record()
    assert describe_recipe(record.to_dict()).endswith("sets nothing here: the plain defaults")


def test_epochs_given_over_a_recipe_of_steps_drop_the_steps():
    config = ExperimentConfig(
        method="clip_lora", dataset="dtd", protocol="few_shot", shots=2, recipe="paper",
        training=TrainingConfig(epochs=1), overrides=("epochs",),
    )  # fmt: skip
    cell, record = apply_recipe(config)
    assert cell.training.max_steps is None and cell.training.epochs == 1
    assert record.deviations["max_steps"] == {"recipe": 1000, "used": None}
    assert cell.training.optimizer == "adamw"  # the rest of the recipe stays


def test_the_command_line_default_recipe_and_given_flags(capsys):
    from hf_prompt_clip.cli import build_parser, default_recipe, given_settings

    assert default_recipe(get_benchmark("dtd")) == "paper"
    assert default_recipe(get_benchmark("synthetic_shapes_outline")) == "none"
    args = build_parser().parse_args(["train", "--dataset", "dtd", "--epochs", "3", "--batch-size", "32"])
    assert set(given_settings(args, TrainingConfig)) == {"epochs", "batch_size"}  # 32 given: it wins too
    with pytest.raises(SettingError, match="overrides"):
        ExperimentConfig(overrides=("epoch",))


# ------------------------------------------------------------------------------ the trainer


def _coop_run(folder, tmp_path, **training):
    from hf_prompt_clip import CoOpModel
    from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
    from hf_prompt_clip.testing import pattern_benchmark
    from hf_prompt_clip.train import PromptTrainer

    torch.manual_seed(0)
    model = CoOpModel.from_clip(folder, ["red", "blue", "checkerboard", "stripes"], n_ctx=4)
    data = with_image_transform(
        pattern_benchmark(8, seed=0), eval_transform(model.image_processor)
    )  # 32 images
    config = TrainingConfig(output_dir=str(tmp_path), optimizer="adamw", seed=3, **training)
    trainer = PromptTrainer(model, data, config, collate_fn=collate_fn)
    lrs = []
    step = trainer._step

    def recording(model, optimizer, parameters, inputs, stage_name, lr):
        lrs.append(lr)
        return step(model, optimizer, parameters, inputs, stage_name, lr)

    trainer._step = recording
    trainer.train()
    return trainer, lrs


def test_max_steps_stops_inside_an_epoch_with_torchs_cosine_to_min_lr(tiny_clip_folder, tmp_path):
    trainer, lrs = _coop_run(
        tiny_clip_folder, tmp_path, batch_size=8, epochs=50, max_steps=6, learning_rate=0.01,
        lr_schedule="cosine", warmup_epochs=0, min_lr=1e-4,
    )  # fmt: skip
    assert trainer.state.global_step == 6 and len(lrs) == 6  # 4 steps per epoch: 1.5 epochs, not 50
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6, eta_min=1e-4)
    expected = []
    for _ in range(6):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_drop_last_drops_an_incomplete_batch_but_never_the_whole_set(tiny_clip_folder, tmp_path):
    kept, _ = _coop_run(tiny_clip_folder, tmp_path / "kept", batch_size=5, epochs=1, lr_schedule="constant")
    dropped, _ = _coop_run(
        tiny_clip_folder, tmp_path / "dropped", batch_size=5, epochs=1, lr_schedule="constant", drop_last=True
    )
    whole, _ = _coop_run(
        tiny_clip_folder, tmp_path / "whole", batch_size=64, epochs=1, lr_schedule="constant", drop_last=True
    )
    assert (kept.state.global_step, dropped.state.global_step, whole.state.global_step) == (7, 6, 1)


# ------------------------------------------------------------------------------ reproduce


def test_reproduce_writes_the_table_marks_synthetic_and_resumes_without_rerunning(
    tmp_path, monkeypatch, capsys
):
    from hf_prompt_clip.cli import main
    from hf_prompt_clip.experiment import reproduce as module

    out = tmp_path / "grid"
    command = [
        "reproduce", "clip_adapter", "--protocol", "few_shot", "--datasets", "synthetic_shapes_outline",
        "--shots", "2", "--seed", "1", "2", "--epochs", "1", "--output-dir", str(out), "--quiet",
    ]  # fmt: skip
    main(command)
    rows = json.loads((out / module.TABLE_JSON).read_text())
    assert [(row["shots"], row["metric"], row["seeds"]) for row in rows] == [(2, "accuracy", 2)]
    assert all(not row["comparable"] and "synthetic" in row["why"] for row in rows)
    table = (out / module.TABLE_FILE).read_text()
    assert "not comparable: the synthetic world" in table and "± " in table
    cell = json.loads((out / "synthetic_shapes_outline" / "shots2" / "seed2" / module.CELL_FILE).read_text())
    recipe = cell["result"]["recipe"]
    assert (
        recipe["deviations"]["epochs"] == {"recipe": 200, "used": 1} and recipe["applied"]["batch_size"] == 32
    )
    args = json.loads(
        (out / "synthetic_shapes_outline" / "shots2" / "seed2" / "adapter" / "training_args.json").read_text()
    )
    assert args["recipe"] == recipe and args["epochs"] == 1
    card = (out / "synthetic_shapes_outline" / "shots2" / "seed2" / "adapter" / "README.md").read_text()
    assert "Recipe: the paper's recipe" in card and "epochs 1 (recipe: 200)" in card
    results = json.loads((out / "results.json").read_text())
    assert [len(entry["runs"]) for entry in results] == [2]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(module, "run_experiment", no_training)
    main(command)  # every cell read back
    assert json.loads((out / module.TABLE_JSON).read_text()) == rows
    with pytest.raises(SystemExit):  # another setting: the folder's cells are not this run's
        main([*command, "--lr", "0.5"])
    assert "other settings" in capsys.readouterr().err


def test_a_recipe_that_cannot_apply_is_refused_before_anything_trains(tmp_path, monkeypatch):
    from hf_prompt_clip.experiment import runner
    from hf_prompt_clip.synthetic import TINY_CLIP_ID

    monkeypatch.setattr(runner, "run_experiment", lambda *a, **k: pytest.fail("trained before the refusal"))
    config = ExperimentConfig(
        method="clip_lora", base_model=TINY_CLIP_ID, dataset="synthetic_shapes_outline", protocol="few_shot",
        shots=None, recipe="paper", output_dir=str(tmp_path),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"500 x shots.*full training set"):
        runner.run_comparison(config, ["zeroshot", "clip_lora"])


def test_the_comparison_gives_the_difference_and_marks_a_paper_number_outside_the_spread(tmp_path):
    from hf_prompt_clip.evaluate.protocol_registry import get_protocol
    from hf_prompt_clip.evaluate.records import ExperimentResult, RunResult
    from hf_prompt_clip.experiment.reproduce import (
        compare_with_paper,
        paper_grid,
        plot_reproduction,
        reproduction_table,
    )

    seeds = ((1, 79.0, 40.0), (2, 79.1, 41.0), (3, 79.2, 42.0))
    runs = [RunResult.measured(seed, {"base": base, "new": new}) for seed, base, new in seeds]
    result = ExperimentResult.of_runs("coop", "openai/clip-vit-base-patch16", "dtd", "base2new", 16, runs)
    rows = {row["metric"]: row for row in compare_with_paper([result], "coop")}
    assert rows["base"]["paper"] == 79.44 and rows["base"]["difference"] == pytest.approx(-0.34)
    assert rows["base"]["outside_spread"] is True  # 0.34 away; the seeds' std is 0.1
    assert paper_grid("coop", "few_shot")[0] == list(get_protocol("few_shot").paper_datasets)
    assert rows["new"]["outside_spread"] is False  # 0.18 away; std 1
    one = ExperimentResult.of_runs("coop", "openai/clip-vit-base-patch16", "dtd", "base2new", 16, runs[:1])
    assert {row["outside_spread"] for row in compare_with_paper([one], "coop")} == {
        None
    }  # one seed: no spread
    same = [RunResult.measured(seed, {"base": 79.0, "new": 41.0}) for seed in (1, 2, 3)]
    agreeing = ExperimentResult.of_runs("coop", "openai/clip-vit-base-patch16", "dtd", "base2new", 16, same)
    assert {row["outside_spread"] for row in compare_with_paper([agreeing], "coop")} == {None}  # std 0
    # the whole suite: an average row as the papers average (H of the average base and new)
    suite = [
        ExperimentResult.of_runs("coop", "openai/clip-vit-base-patch16", dataset, "base2new", 16, runs)
        for dataset in get_protocol("base2new").paper_datasets
    ]
    average = {row["metric"]: row for row in compare_with_paper(suite, "coop") if row["dataset"] == "average"}
    assert average["base"]["ours"] == 79.1 and average["base"]["paper"] == 82.69
    assert average["hm"]["ours"] == pytest.approx(2 * 79.1 * 41.0 / (79.1 + 41.0), abs=0.01)
    assert "CoCoOp" in rows["base"]["source"]
    other = compare_with_paper([result], "coop", base_model="openai/clip-vit-large-patch14")
    assert all(not row["comparable"] and "base model" in row["why"] for row in other)
    assert "| dtd | 16 | base | 79.10 ± 0.10 | 3 | 79.44 |" in reproduction_table(list(rows.values()))
    assert plot_reproduction(list(rows.values()), tmp_path / "p.png", "t").is_file()


def test_a_published_adapters_command_never_contradicts_its_recipe():
    from hf_prompt_clip.cli import build_parser, given_settings
    from hf_prompt_clip.core.registry import METHOD_INFO
    from hf_prompt_clip.hub.published import published_config, published_recipe, train_command

    for method, info in METHOD_INFO.items():
        for adapter in info.published:
            recipe = published_recipe(method, adapter)
            if recipe is None:
                continue
            args = build_parser().parse_args(shlex.split(train_command(method, adapter))[1:])
            for name in given_settings(args, TrainingConfig):
                if name in recipe.training:
                    value = getattr(args, "lr" if name == "learning_rate" else name)
                    assert value == recipe.training[name], (adapter.name, name, value, recipe.training[name])
            config = published_config(method, adapter)  # what its card shows: the recipe's options
            for name, value in recipe.options.items():
                assert adapter.options.get(name, value) == value, (adapter.name, name)
                assert getattr(config, name) == value, (adapter.name, name, getattr(config, name), value)


def test_the_results_table_says_which_recipe_each_trained_method_used():
    from hf_prompt_clip.evaluate.report import recipe_notes

    paper = {"recipe": "paper", "name": "CoOp", "cell": "few_shot, dtd, 16 shots", "applied": {"epochs": 200}}
    assert recipe_notes(
        [{"method": "zeroshot", "shots": 0}, {"method": "coop", "shots": 16, "recipe": paper}]
    ) == ["- coop, 16 shots: the paper's recipe (CoOp; few_shot, dtd, 16 shots), with no deviation"]
    none = [{"method": "coop", "shots": 16, "recipe": {"recipe": "none"}}, {"method": "zeroshot", "shots": 0}]
    assert recipe_notes(none) == [
        "- every method that trained: the plain defaults (recipe none), not the papers' recipes"
    ]
    assert recipe_notes([{"method": "coop", "shots": 16}]) == []  # results of earlier releases record none
