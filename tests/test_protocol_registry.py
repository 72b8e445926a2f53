"""Every protocol is driven from the protocol registry: one registered in a test is offered by the command
line, runs through `run_experiment`, and is titled in the report and the card; generic code compares no
protocol names."""

import ast
import json
from pathlib import Path

import pytest

from hf_prompt_clip.cli import build_parser
from hf_prompt_clip.evaluate.protocol_registry import (
    ALL_CLASSES,
    OWN_TEST_SPLIT,
    Protocol,
    get_protocol,
    protocol_keys,
    register_protocol,
    unregister_protocol,
)

PACKAGE = Path(__file__).parent.parent / "hf_prompt_clip"
KEY = "image_count"


def count_images(model, inputs) -> dict[str, float]:
    """A tiny protocol: the number of test images of the training benchmark (and the batch size it was given)."""
    return {"images": float(len(inputs.test_set())), "batch": float(inputs.batch_size)}


@pytest.fixture
def image_count():
    protocol = register_protocol(
        Protocol(KEY, "image count", ALL_CLASSES, OWN_TEST_SPLIT, classes_must_change=False,
                 needs_targets=False, evaluate=count_images)
    )  # fmt: skip
    yield protocol
    unregister_protocol(KEY)


def test_a_registered_protocol_is_offered_run_reported_and_carded(image_count, tmp_path, capsys):
    from hf_prompt_clip.runner import ExperimentConfig, run_experiment
    from hf_prompt_clip.synthetic import TINY_CLIP_ID

    assert build_parser().parse_args(["train", "--protocol", KEY]).protocol == KEY
    assert build_parser().parse_args(["evaluate", "--model", "x", "--protocol", KEY]).protocol == KEY
    config = ExperimentConfig(
        method="zeroshot", base_model=TINY_CLIP_ID, dataset="synthetic_colours", protocol=KEY, seeds=(1,),
        eval_batch_size=7, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    result = run_experiment(config)
    assert result.protocol == KEY and result.mean == {"images": result.mean["images"], "batch": 7.0}
    assert result.mean["images"] > 0
    [written] = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["protocol"] == KEY and written["mean"] == result.mean
    assert "| image count |" in (tmp_path / "run" / "results.md").read_text()  # the title, in the table
    card = (tmp_path / "run" / "seed1" / "adapter" / "README.md").read_text()
    assert "(image count, zero-shot" in card  # the card's metric names carry the title
    assert (
        json.loads((tmp_path / "run" / "seed1" / "adapter" / "training_data.json").read_text())["classes"]
        == "all"
    )


def test_an_unregistered_protocol_is_refused_everywhere_naming_the_registered_ones(image_count, capsys):
    from hf_prompt_clip.runner import ExperimentConfig

    unregister_protocol(KEY)
    try:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "--protocol", KEY])
        assert f"invalid choice: '{KEY}'" in capsys.readouterr().err
        with pytest.raises(ValueError, match=rf"protocol must be one of .*'few_shot'.*got '{KEY}'"):
            ExperimentConfig(dataset="synthetic_colours", protocol=KEY)
    finally:
        register_protocol(image_count)


def test_what_a_protocol_declares_decides_the_checks(image_count):
    from hf_prompt_clip.data import get_benchmark
    from hf_prompt_clip.runner import ProtocolNotSupportedError, check_method_protocol, check_protocol

    check_method_protocol("linear_probe", {}, KEY)  # its classes stay: a per-class method may run it
    changing = Protocol("changing", "changing", "base", OWN_TEST_SPLIT, True, True, count_images)
    register_protocol(changing)
    try:
        with pytest.raises(ProtocolNotSupportedError, match="learns parameters per training class"):
            check_method_protocol("linear_probe", {}, "changing")
        with pytest.raises(ValueError, match="needs target datasets"):
            check_protocol("changing", get_benchmark("synthetic_colours"))
        assert get_protocol("changing").training_classes(["a", "b", "c"]) == ["a", "b"]
    finally:
        unregister_protocol("changing")
    assert "changing" not in protocol_keys()
    with pytest.raises(ValueError, match="registered already"):
        register_protocol(image_count)


PROTOCOL_NAMES = {"few_shot", "base2new", "cross_dataset", "domain_generalization"}


def test_generic_code_compares_no_protocol_name():
    """The runner, the checks, the reports, the cards and the command line ask the registry; only the
    registry (and the methods' own records of what their papers ran) spell protocol keys."""
    offenders = []
    generic = [*PACKAGE.glob("experiment/*.py"), *PACKAGE.glob("cli/*.py"), PACKAGE / "evaluate" / "report.py",
               PACKAGE / "hub" / "results.py", PACKAGE / "serialization" / "card.py", PACKAGE / "hub" / "published.py"]  # fmt: skip
    for path in generic:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                constants = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                if PROTOCOL_NAMES & set(constants):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
