"""Results and data records are typed (`evaluate.records`) and read and write the JSON of earlier releases:
tests/fixtures/records/ holds files written by the code before the records existed (its make_fixtures.py);
`evaluate_adapter` is what `hf-prompt-clip evaluate` prints."""

import json
from pathlib import Path

import pytest

from hf_prompt_clip.cli import main
from hf_prompt_clip.evaluate.records import DataRecord, ExperimentResult, RunResult
from hf_prompt_clip.evaluate.report import write_report
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "records"


@pytest.mark.parametrize("name", ["results_all.json", "results_train.json"])
def test_results_written_before_read_back_into_records_and_write_back_identically(name, tmp_path):
    text = (FIXTURES / name).read_text()
    results = [ExperimentResult.from_dict(entry) for entry in json.loads(text)]
    assert json.dumps([result.to_dict() for result in results], indent=2) + "\n" == text
    write_report(results, tmp_path)  # the report writes records as the JSON they were read from
    assert (tmp_path / "results.json").read_text() == text


def test_a_result_read_has_typed_fields_and_reads_as_its_dict():
    entries = json.loads((FIXTURES / "results_all.json").read_text())
    results = [ExperimentResult.from_dict(entry) for entry in entries]
    b2n, drawn, other_protocol, other_data = results[1], results[2], results[3], results[4]
    assert b2n.image_dtype == "bfloat16" and b2n.seeds == [1, 2] and isinstance(b2n.runs[0], RunResult)
    assert b2n.runs[0].metrics == entries[1]["runs"][0]["metrics"]
    assert b2n.runs[0].exact == entries[1]["runs"][0]["metrics_full_precision"]
    assert drawn.augment_views == 1 and drawn.shots_drawn["min"] == 1  # 2 asked, 1 epoch: 1 view used
    assert other_protocol.trained_protocol == "few_shot" and other_data.trained_on == "imagefolder:patterns"
    assert results[6].protocol == "cross_dataset" and results[6].hub_datasets["imagenet_v2"]["id"]
    assert results[8].shots is None and results[8].runs[0].metrics == {"accuracy": 44.5}  # rounded for people
    for result, entry in zip(results, entries):  # earlier callers read results by key
        assert result["mean"] == result.mean and dict(result) == entry and result == entry


def test_keys_a_file_lacks_stay_absent_and_keys_this_release_does_not_know_are_kept():
    entry = json.loads((FIXTURES / "results_train.json").read_text())[0]
    older = {key: value for key, value in entry.items() if not key.endswith("_full_precision")}
    older["runs"] = [{"seed": run["seed"], "metrics": run["metrics"]} for run in older["runs"]]
    newer = {**entry, "energy_kwh": 0.25}
    for written in (older, newer):
        assert ExperimentResult.from_dict(written).to_dict() == written
        assert list(ExperimentResult.from_dict(written).to_dict()) == list(written)  # the same key order
    assert ExperimentResult.from_dict(older).runs[0].exact == older["runs"][0]["metrics"]


@pytest.mark.parametrize("name", ["folder", "zeroshot", "drawn", "synthetic"])
def test_a_data_record_written_before_reads_back_and_writes_back_identically(name):
    text = (FIXTURES / f"training_data_{name}.json").read_text()
    record = DataRecord.from_dict(json.loads(text))
    assert record.to_json() == text
    assert record.dataset == json.loads(text)["dataset"] and record.classes in ("all", "base")


@pytest.fixture
def pattern_folder(tmp_path):
    for split, per_class, seed in (("train", 6, 0), ("test", 4, 1)):
        images, labels = pattern_dataset(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


def test_evaluate_adapter_returns_what_the_evaluate_command_prints(
    tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    from hf_prompt_clip.experiment import evaluate_adapter
    from hf_prompt_clip.runner import format_metrics

    data = ["--base-model", tiny_clip_folder, "--data-dir", str(pattern_folder)]
    quick = ["--protocol", "few_shot", "--shots", "2", "--epochs", "1", "--batch-size", "4", "--no-baseline"]
    main(["train", *data, *quick, "--method", "coop", "--output-dir", str(tmp_path / "run")])
    adapter = tmp_path / "run" / "coop" / "seed1" / "adapter"
    capsys.readouterr()
    main(["evaluate", "--model", str(adapter), "--output-dir", str(tmp_path / "eval")])
    printed = capsys.readouterr().out.splitlines()
    result = evaluate_adapter(adapter)  # its recorded data and protocol, as the command line reads them
    assert isinstance(result, ExperimentResult)
    assert printed[0] == f"coop on imagefolder:patterns (few_shot): {format_metrics(result.mean)}"
    assert json.loads("\n".join(printed[1:])) == result.mean
    assert (result.shots, result.seeds, result.dataset) == (2, [1], "imagefolder:patterns")
    [written] = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert written == result.to_dict()
    record = DataRecord.from_dict(json.loads((adapter / "training_data.json").read_text()))
    assert (record.shots, record.protocol, record.classes, record.seed) == (2, "few_shot", "all", 1)
    with pytest.raises(ValueError, match=r"classes_from_data=True"):  # another benchmark: refused, by field
        evaluate_adapter(adapter, dataset="synthetic_shapes", protocol="few_shot")
