"""Strict inputs: a value that would be silently reinterpreted is refused (or parsed by its type), with an
error that says what was expected, what was found and what to do."""

import argparse
import dataclasses
import json
import math

import pytest
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from transformers import AutoConfig, AutoModel

from hf_prompt_clip import CoOpConfig, CoOpModel, ZeroShotCLIPConfig
from hf_prompt_clip.cli import build_parser, fill_defaults, one_line
from hf_prompt_clip.core.class_names import validate_class_names
from hf_prompt_clip.data import BenchmarkSpec, LabelError
from hf_prompt_clip.data.sources import RawSplit, to_benchmark_format
from hf_prompt_clip.runner import check_method_options, check_option_values
from hf_prompt_clip.shipped import TINY_CLIP_ID


def parse_error(argv: list[str], capsys) -> str:
    """The error argparse prints for `argv` (it must exit with code 2)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(argv)
    assert exit.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------ zero is a value, not "use the default"


def test_zero_epochs_and_learning_rate_are_refused_not_turned_into_the_defaults(capsys):
    err = parse_error(["train", "--epochs", "0"], capsys)
    assert "--epochs" in err and "'0'" in err and "at least 1" in err
    for value in ("0", "-0.01", "nan"):
        err = parse_error(["train", "--lr", value], capsys)
        assert "--lr" in err and "positive" in err and "--lr 0.002" in err
    # a value that reaches fill_defaults is kept as given: only a missing one takes the default
    args = argparse.Namespace(epochs=0, lr=0.0, optimizer="sgd", options=[("n_ctx", 2)])
    fill_defaults(args, ["coop"], synthetic=True)
    assert (args.epochs, args.lr, args.optimizer) == (0, 0.0, "sgd")
    args = argparse.Namespace(epochs=None, lr=None, optimizer=None, options=[])
    fill_defaults(args, ["coop"], synthetic=True)
    assert (args.epochs, args.lr, args.optimizer) == (10, 0.01, "adamw")


def test_zero_or_negative_sizes_are_refused_where_they_mean_nothing(capsys):
    for flag, value, expected in (
        ("--batch-size", "0", "at least 1"),
        ("--eval-batch-size", "0", "at least 1"),
        ("--warmup-epochs", "-1", "cannot be negative"),  # TrainingConfig's own refusal
        ("--epochs", "2.5", "whole number"),
        ("--shots", "0", "positive number of shots"),
    ):
        err = parse_error(["train", flag, value], capsys)
        assert flag in err and repr(value) in err and expected in err, err
    args = build_parser().parse_args(["train", "--warmup-epochs", "0", "--shots", "all"])
    assert args.warmup_epochs == 0 and args.shots == [None]  # no warm-up; the full training set
    with pytest.raises(ValueError, match=r"n_ctx must be at least 1, got 0"):
        CoOpConfig(n_ctx=0, ctx_init="a photo of a")  # was accepted (and ignored) beside ctx_init
    with pytest.raises(
        ValueError, match=r"n_ctx of coop must be at least 1, got -2.*e\.g\. n_ctx="
    ) as refused:
        check_option_values("coop", {"n_ctx": -2, "ctx_init": "a photo of a"})
    assert "--option n_ctx=" in one_line(refused.value)  # the command line spells the field as its flag


# ------------------------------------------------------------------ option values parsed by the field's type


def test_boolean_options_are_read_from_words_and_nothing_else_passes_as_a_bool():
    for given, expected in (
        ("no", False),
        ("Yes", True),
        ("TRUE", True),
        ("false", False),
        (1, True),
        (0, False),
    ):
        assert check_option_values("coop", {"class_specific_context": given}) == {
            "class_specific_context": expected
        }
    for bad in ("maybe", "", 2, 0.5):
        with pytest.raises(ValueError, match=r"class_specific_context of coop takes a bool.*true/false"):
            check_option_values("coop", {"class_specific_context": bad})
    # in Python a string is not a bool: "no" would have counted as true
    with pytest.raises(ValueError, match=r"CoOpConfig.class_specific_context takes a bool.*got 'no' \(str\)"):
        CoOpConfig(class_specific_context="no", class_names=["cat", "dog"])
    with pytest.raises(ValueError, match=r"takes a bool"):
        CoOpModel.from_clip(TINY_CLIP_ID, ["cat", "dog"], class_specific_context="no")


def test_int_options_refuse_fractions_and_float_options_take_ints():
    for bad in (4.5, "4.5", True):
        with pytest.raises(ValueError, match=r"n_ctx of coop takes int"):
            check_option_values("coop", {"n_ctx": bad})
    with pytest.raises(ValueError, match=r"CoOpConfig.n_ctx takes int, got 4.5 \(float\).*whole number"):
        CoOpConfig(n_ctx=4.5)
    config = CoOpConfig(ctx_init_std=1, stage_learning_rates=[1, 0.5])
    assert type(config.ctx_init_std) is float and config.stage_learning_rates == [1.0, 0.5]
    assert all(type(value) is float for value in config.stage_learning_rates)
    with pytest.raises(ValueError, match=r"ctx_init_std takes float, got 'abc'"):
        config.ctx_init_std = "abc"  # later assignments are checked too
    assert check_option_values("coop", {"ctx_init_std": 1}) == {"ctx_init_std": 1.0}
    assert not math.isnan(config.ctx_init_std)
    with pytest.raises(ValueError, match=r"takes float, got nan"):
        CoOpConfig(ctx_init_std=float("nan"))


# ------------------------------------------------------------------ unknown keywords


def test_unknown_keywords_are_refused_naming_the_closest_valid_ones(tmp_path):
    with pytest.raises(TypeError, match=r"from_clip got an unknown keyword 'nctx'.*did you mean 'n_ctx'"):
        CoOpModel.from_clip(TINY_CLIP_ID, ["cat", "dog"], nctx=4)
    with pytest.raises(ValueError, match=r"'revison'.*did you mean 'revision'"):
        CoOpModel.from_clip(TINY_CLIP_ID, ["cat", "dog"], revison="main")
    with pytest.raises(TypeError, match=r"CoOpConfig got an unknown keyword 'ctx_int'.*'ctx_init'"):
        CoOpConfig(ctx_int="a photo of a")
    with pytest.raises(ValueError, match=r"option ctx_int \(did you mean 'ctx_init'"):
        check_method_options(["coop"], {"ctx_int": "a photo"})
    # transformers' own keywords still pass, and saved configs load back in every way transformers reads them
    CoOpConfig(torch_dtype="float32", architectures=["CoOpModel"], _name_or_path="x", output_attentions=False)
    model = CoOpModel.from_clip(TINY_CLIP_ID, ["cat", "dog"], n_ctx=2, class_specific_context=True)
    model.save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert {"auto_map", "model_type", "transformers_version"} <= set(saved)
    for config in (
        CoOpConfig.from_pretrained(tmp_path / "adapter"),
        AutoConfig.from_pretrained(tmp_path / "adapter"),
        CoOpConfig.from_json_file(tmp_path / "adapter" / "config.json"),
        CoOpConfig.from_dict(model.config.to_dict()),
        CoOpConfig(**model.config.to_dict()),
    ):
        assert config.n_ctx == 2 and config.class_specific_context is True
        assert config.class_names == ["cat", "dog"]
    saved["retired_option"] = 1  # a key some other version wrote: loading lets it pass, as transformers does
    (tmp_path / "adapter" / "config.json").write_text(json.dumps(saved))
    assert AutoConfig.from_pretrained(tmp_path / "adapter").retired_option == 1
    loaded = AutoModel.from_pretrained(tmp_path / "adapter")
    options = ["n_ctx", "ctx_init", "class_specific_context", "class_token_position", "ctx_init_std"]
    options += ["class_names", "prompt_names", "base_model_name_or_path", "base_model_revision", "fast"]
    assert {name: getattr(loaded.config, name) for name in options} == {
        name: getattr(model.config, name) for name in options
    }
    with pytest.raises(TypeError, match=r"unexpected argument 'nctx'.*did you mean 'n_ctx'"):
        AutoModel.from_pretrained(tmp_path / "adapter", nctx=4)


# ------------------------------------------------------------------ seeds


def test_repeated_seeds_are_refused(capsys):
    err = parse_error(["train", "--seed", "1", "2", "1"], capsys)
    assert "--seed" in err and "1 given more than once" in err and "--seed 1 2 3" in err
    err = parse_error(["train", "--seed", "-1"], capsys)
    assert "--seed" in err and "'-1'" in err and "0 to" in err
    assert build_parser().parse_args(["train", "--seed", "1", "2", "3"]).seeds == [1, 2, 3]


# ------------------------------------------------------------------ class lists


def test_class_names_that_give_the_same_prompt_are_refused_naming_the_pair():
    for names, pair in (
        (["Cat", "dog", "cat"], r"'Cat' \(position 0\) and 'cat' \(position 2\)"),
        (["red_circle", "red circle"], r"'red_circle' \(position 0\) and 'red circle' \(position 1\)"),
        (["t-shirt", "T  shirt"], r"'t-shirt'.*'T  shirt'"),
        (["ｃａｔ", "cat"], r"'ｃａｔ'.*'cat'"),  # full-width letters: the same word after NFKC
    ):
        with pytest.raises(ValueError, match=rf"{pair}.*same prompt.*rename"):
            validate_class_names(names)
    with pytest.raises(ValueError, match="same prompt"):
        ZeroShotCLIPConfig(class_names=["Cat", "cat"])
    # distinct labels with a shared prompt text given on purpose stay allowed (OpenAI's ImageNet names)
    config = ZeroShotCLIPConfig(class_names=["missile", "missile (n04008634)"], prompt_names=["missile"] * 2)
    assert config.class_prompt_names == ["missile", "missile"]


def test_class_lists_must_be_sequences_in_label_order():
    def names():
        yield from ("cat", "dog")

    for given, expected in (
        ({"dog", "cat"}, r"got a set.*hashing.*sorted"),
        (frozenset({"dog", "cat"}), r"got a frozenset"),
        ({"cat": 0, "dog": 1}, r"label order, got a dict"),
        ({"cat": 0}.keys(), r"got a dict_keys"),
        (names(), r"got a generator.*list\(...\)"),
        ("cat", r"list of strings.*single string 'cat'.*\['cat'\]"),
    ):
        with pytest.raises(ValueError, match=expected):
            validate_class_names(given)
    with pytest.raises(ValueError, match="got a set"):
        ZeroShotCLIPConfig(class_names={"cat", "dog"})
    assert validate_class_names(("cat", "dog")) == ["cat", "dog"]


def test_a_single_class_and_invisible_characters_warn_and_an_invisible_name_is_refused():
    with pytest.warns(UserWarning, match=r"a single class \('cat'\).*at least two"):
        ZeroShotCLIPConfig(class_names=["cat"])
    with pytest.warns(UserWarning, match=r"'cat\\u200b' \(position 0\).*U\+200B ZERO WIDTH SPACE.*remove"):
        ZeroShotCLIPConfig(class_names=["cat\u200b", "dog"])
    with pytest.warns(UserWarning, match=r"position 1.*U\+0007"):
        ZeroShotCLIPConfig(class_names=["cat", "do\x07g"])
    with pytest.raises(
        ValueError, match=r"class_names\[1\] must be a non-empty string.*no visible character"
    ):
        ZeroShotCLIPConfig(class_names=["cat", "\u200b"])


# ------------------------------------------------------------------ labels


def _raw(labels: list, dtype: str) -> RawSplit:
    image = Image.new("RGB", (4, 4))
    features = Features(picture=ImageFeature(), target=Value(dtype))
    dataset = Dataset.from_dict({"picture": [image] * len(labels), "target": labels}, features=features)
    return RawSplit(dataset, "picture", "target", None, "index", "test data")


def test_float_label_columns_are_refused_naming_the_column():
    spec = BenchmarkSpec("three", class_names=("a", "b", "c"))
    for labels in ([0.0, 1.7], [0.0, 2.0]):  # truncated to 1 before; a whole float is no id either
        raw = _raw(labels, "float64")
        with pytest.raises(LabelError, match=r"test data: the label column 'target' holds float64.*integer"):
            to_benchmark_format(raw, spec)
        stream = dataclasses.replace(raw, dataset=raw.dataset.to_iterable_dataset())
        with pytest.raises(LabelError, match=r"label column 'target' holds float"):
            list(to_benchmark_format(stream, spec))
    assert to_benchmark_format(_raw([0, 2], "int64"), spec)["label"] == [0, 2]


def test_the_python_configs_refuse_what_the_command_line_refuses():
    from hf_prompt_clip.runner import ExperimentConfig
    from hf_prompt_clip.train import TrainingConfig

    for bad in ({"learning_rate": 0.0}, {"learning_rate": float("nan")}, {"warmup_epochs": -1},
                {"max_grad_norm": 0.0}, {"num_workers": -2}, {"momentum": 1.0}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainingConfig(**bad)
    TrainingConfig(max_grad_norm=None, warmup_epochs=0)  # off is fine
    with pytest.raises(ValueError, match="seeds must be distinct"):
        ExperimentConfig(dataset="synthetic_shapes", protocol="few_shot", seeds=(1, 1))
    with pytest.raises(ValueError, match="eval_batch_size must be at least 1, got 0"):
        ExperimentConfig(dataset="synthetic_shapes", protocol="few_shot", eval_batch_size=0)
