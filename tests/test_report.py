"""Result tables, the papers' reference numbers, charts and report folders."""

import json
import statistics
from dataclasses import replace

import pytest

from hf_prompt_clip.evaluate.protocols import harmonic_mean, summarize_runs
from hf_prompt_clip.evaluate.reference_numbers import (
    AVERAGE,
    BASE_TO_NEW_DATASETS,
    reference_metrics,
    reference_numbers,
)
from hf_prompt_clip.evaluate.report import (
    SYNTHETIC_NOTE,
    plot_accuracy_vs_shots,
    plot_base_to_new,
    results_table,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_result(method, dataset, protocol, runs_metrics, shots=16, synthetic=False):
    """A result dict of the evaluation schema, summarised the way the evaluator does it."""
    runs = [{"seed": seed, "metrics": metrics} for seed, metrics in enumerate(runs_metrics, start=1)]
    mean, std = summarize_runs(runs)
    return {
        "method": method,
        "base_model": "openai/clip-vit-base-patch16",
        "dataset": dataset,
        "protocol": protocol,
        "shots": shots,
        "synthetic": synthetic,
        "runs": runs,
        "mean": mean,
        "std": std,
    }


def base_to_new(method, dataset, base, new, **kwargs):
    runs = [{"base": b, "new": n, "hm": harmonic_mean(b, n)} for b, n in zip(base, new)]
    return make_result(method, dataset, "base2new", runs, **kwargs)


def few_shot(method, dataset, shots, accuracies):
    return make_result(method, dataset, "few_shot", [{"accuracy": a} for a in accuracies], shots=shots)


def table_rows(table: str) -> list[list[str]]:
    """The body rows of the first markdown table in `table`, as lists of cells."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def row_for(table: str, dataset: str, metric: str) -> dict[str, str]:
    header = ["method", "dataset", "protocol", "shots", "metric", "ours", "seeds", "paper"]
    matches = [row for row in table_rows(table) if row[1] == dataset and row[4] == metric]
    assert len(matches) == 1, matches
    return dict(zip(header, matches[0]))


# ------------------------------------------------------------------------------- reference numbers


def test_reference_base_to_new_has_h_computed_from_base_and_new():
    coop_dtd = reference_metrics("coop", "dtd", "base2new")
    assert coop_dtd == {"base": 79.44, "new": 41.18, "hm": 54.24}
    assert coop_dtd["hm"] == round(2 * 79.44 * 41.18 / (79.44 + 41.18), 2)


def test_reference_averages_match_the_papers_and_their_datasets():
    stated_h = {"zeroshot": 71.70, "coop": 71.66, "cocoop": 75.83}
    for method, h in stated_h.items():
        shots = 0 if method == "zeroshot" else 16  # zero-shot CLIP's rows are keyed as results record it
        average = reference_metrics(method, AVERAGE, "base2new", shots)
        assert average["hm"] == pytest.approx(h, abs=0.01)
        rows = [reference_metrics(method, dataset, "base2new", shots) for dataset in BASE_TO_NEW_DATASETS]
        assert statistics.fmean(row["base"] for row in rows) == pytest.approx(average["base"], abs=0.01)
        assert statistics.fmean(row["new"] for row in rows) == pytest.approx(average["new"], abs=0.01)


def test_kgcoop_reference_is_its_authors_average():
    assert reference_metrics("kgcoop", AVERAGE, "base2new") == {"base": 80.73, "new": 73.6, "hm": 77.0}
    assert reference_metrics("kgcoop", "dtd", "base2new") is None  # per-dataset rows not recorded


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_plotpp_per_dataset_numbers_average_to_the_papers_averages(shots):
    rows = [reference_metrics("plotpp", dataset, "few_shot", shots) for dataset in BASE_TO_NEW_DATASETS]
    average = reference_metrics("plotpp", AVERAGE, "few_shot", shots)["accuracy"]
    assert statistics.fmean(row["accuracy"] for row in rows) == pytest.approx(average, abs=0.01)


def test_reference_lookup_covers_dg_plot_and_mpfgvc_and_answers_none_otherwise():
    assert reference_metrics("cocoop", "imagenet", "domain_generalization")["imagenet_r"] == 76.18
    assert reference_metrics("plotpp", AVERAGE, "few_shot", shots=4) == {"accuracy": 76.92}
    assert reference_metrics("mpfgvc", "nabirds", "few_shot", shots=None) == {"accuracy": 91.0}
    assert reference_metrics("mpfgvc", "nabirds", "few_shot", shots=16) is None  # paper: full training set
    assert reference_metrics("coop", "cub200", "base2new") is None
    assert reference_metrics("coop", "dtd", "cross_dataset") is None


def test_other_backbones_rows_are_kept_apart_from_the_vit_b16_lookup():
    # the Tip-Adapter authors' exp.log (ResNet-50), never returned for the default ViT-B/16
    assert reference_metrics("tip_adapter", "imagenet", "few_shot") is None
    assert reference_metrics("tip_adapter", "imagenet", "few_shot", backbone="RN50") == {"accuracy": 62.01}
    assert reference_metrics("tip_adapter_f", "fgvc_aircraft", "few_shot", 1, backbone="RN50") == {
        "accuracy": 20.22
    }
    assert reference_metrics("clip_adapter", "eurosat", "few_shot", 16, backbone="RN50") == {
        "accuracy": 84.43
    }
    assert {row.backbone for row in reference_numbers()} == {"ViT-B/16"}
    assert {row.backbone for row in reference_numbers(None)} == {"ViT-B/16", "RN50"}


def test_the_reference_rows_are_what_the_methods_declare(monkeypatch):
    from hf_prompt_clip.core import registry
    from hf_prompt_clip.core.reference import few_shot_results

    rows = {(r.method, r.dataset, r.protocol, r.shots) for r in reference_numbers(None)}
    declared = {
        (method, r.dataset, r.protocol, r.shots)
        for method, info in registry.METHOD_INFO.items()
        for r in info.paper_results
    }
    assert rows == declared and {method for method, *_ in rows} <= set(registry.METHODS)
    info = registry.METHOD_INFO["coop"]
    extra = few_shot_results({"dtd": (50.0,)}, (4,), "a test")
    monkeypatch.setitem(registry.METHOD_INFO, "coop", replace(info, paper_results=info.paper_results + extra))
    assert reference_metrics("coop", "dtd", "few_shot", 4) == {"accuracy": 50.0}
    with pytest.raises(ValueError, match="one accuracy per shot count"):
        few_shot_results({"dtd": (1.0, 2.0)}, (4,), "a test")


# ------------------------------------------------------------------------------- tables


def test_table_shows_mean_std_seeds_and_the_papers_numbers_beside_ours():
    result = base_to_new("coop", "dtd", base=[80.0, 81.0], new=[60.0, 62.0])
    table = results_table([result])
    base = row_for(table, "dtd", "base")
    assert base["ours"] == "80.50 ± 0.71"
    assert base["seeds"] == "2"
    assert base["paper"] == "79.44"
    assert row_for(table, "dtd", "new")["paper"] == "41.18"
    h = row_for(table, "dtd", "H")
    assert h["paper"] == "54.24"
    assert h["ours"].startswith(f"{harmonic_mean(80.5, 61.0):.2f} ± ")
    assert "paper (ViT-B/16)" in table.splitlines()[0]


def test_synthetic_results_are_labelled_and_get_no_paper_number():
    result = base_to_new("coop", "dtd", base=[90.0], new=[70.0], synthetic=True)
    table = results_table([result])
    row = row_for(table, "dtd *(synthetic)*", "base")
    assert row["paper"] == "—"
    assert row["ours"] == "90.00"  # one seed: no ± 0.00
    assert SYNTHETIC_NOTE in table


def test_base_to_new_average_row_uses_the_papers_rule_and_their_average_only_over_their_datasets():
    two = [
        base_to_new("coop", "dtd", base=[80.0], new=[60.0]),
        base_to_new("coop", "eurosat", base=[90.0], new=[50.0]),
    ]
    table = results_table(two)
    assert row_for(table, "average of 2 datasets", "base")["ours"] == "85.00"
    assert row_for(table, "average of 2 datasets", "H")["ours"] == f"{harmonic_mean(85.0, 55.0):.2f}"
    assert row_for(table, "average of 2 datasets", "H")["paper"] == "—"

    eleven = [base_to_new("coop", dataset, base=[80.0], new=[60.0]) for dataset in BASE_TO_NEW_DATASETS]
    assert row_for(results_table(eleven), AVERAGE, "base")["paper"] == "82.69"


def test_table_refuses_results_without_the_schema_keys():
    with pytest.raises(ValueError, match="lacks \\['runs'"):
        results_table([{"method": "coop", "dataset": "dtd", "protocol": "base2new", "mean": {}, "std": {}}])
    with pytest.raises(ValueError, match="protocol 'zero_shot'"):
        results_table([{**few_shot("coop", "dtd", 16, [50.0]), "protocol": "zero_shot"}])


# ------------------------------------------------------------------------------- charts and reports


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_plots_are_written_as_png_files(tmp_path):
    results = [
        base_to_new("coop", "dtd", base=[80.0, 81.0], new=[60.0, 62.0]),
        base_to_new("cocoop", "dtd", base=[78.0, 77.0], new=[66.0, 65.0], synthetic=True),
        few_shot("coop", "dtd", 1, [40.0, 42.0]),
        few_shot("coop", "dtd", 16, [60.0, 61.0]),
    ]
    assert_png(plot_base_to_new(results, tmp_path / "b2n.png"))
    assert_png(plot_accuracy_vs_shots(results, tmp_path / "charts" / "shots.png"))


def test_plots_refuse_results_of_other_protocols(tmp_path):
    with pytest.raises(ValueError, match="base2new"):
        plot_base_to_new([few_shot("coop", "dtd", 16, [60.0])], tmp_path / "b2n.png")
    with pytest.raises(ValueError, match="few_shot"):
        plot_accuracy_vs_shots([base_to_new("coop", "dtd", [80.0], [60.0])], tmp_path / "shots.png")


def test_write_report_writes_json_markdown_and_the_charts_that_apply(tmp_path):
    results = [base_to_new("coop", "dtd", base=[80.0, 81.0], new=[60.0, 62.0])]
    paths = write_report(results, tmp_path / "report")
    assert set(paths) == {"json", "markdown", "base_to_new"}  # one protocol, so one chart
    assert json.loads(paths["json"].read_text()) == results
    markdown = paths["markdown"].read_text()
    assert "79.44" in markdown and "(base_to_new.png)" in markdown
    assert_png(paths["base_to_new"])


def test_a_report_draws_the_curves_of_several_shots_and_drops_charts_that_no_longer_apply(tmp_path):
    curve = [base_to_new("coop", "dtd", [60.0 + s], [50.0 + s], shots=s) for s in (1, 2, 4)]
    curve.append(base_to_new("zeroshot", "dtd", [55.0], [60.0], shots=0))
    paths = write_report(curve, tmp_path)
    assert {"base_to_new", "base_to_new_vs_shots"} <= set(paths)
    assert (tmp_path / "base_to_new_vs_shots.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "| zeroshot | dtd | base-to-new | 0 (zero-shot) |" in (tmp_path / "results.md").read_text()
    # a later report in the same folder with one few-shot result: no stale base-to-new chart stays
    paths = write_report([make_result("coop", "dtd", "few_shot", [{"accuracy": 70.0}])], tmp_path)
    assert set(paths) == {"json", "markdown"}
    assert not list(tmp_path.glob("*.png"))


def test_the_shots_of_a_result_are_worded_for_what_was_trained():
    from hf_prompt_clip.evaluate.report import shots_label, shots_setting

    assert [shots_label({"shots": s}) for s in (16, None, 0)] == ["16", "all", "0 (zero-shot)"]
    assert shots_setting({"shots": 4, "trained_on": "dtd"}) == "4 shots on dtd"
    assert shots_setting({"shots": 0}) == "zero-shot"


def test_papers_numbers_stand_only_beside_results_of_the_same_training():
    result = base_to_new("coop", "dtd", [80.0], [60.0])
    assert "| 79.44 |" in results_table([result])  # CoOp's paper row for DTD
    for moved in ({"trained_on": "eurosat"}, {"trained_protocol": "few_shot"}):
        assert "79.44" not in results_table([{**result, **moved}])
