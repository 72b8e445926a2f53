"""Every numeric option of every method declares the values it takes where it is defined (`option(...)`),
and a value outside them is refused by the config itself, naming the option, the range and an example."""

import types
import typing

import pytest

from hf_prompt_clip import MPFGVCConfig
from hf_prompt_clip.cli import main
from hf_prompt_clip.core.options import OptionRule, option_rules, option_types
from hf_prompt_clip.core.registry import METHODS, get_method


def _numeric(hint) -> bool:
    """Whether a field holds a number or a list of numbers (possibly optional)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for kind in typing.get_args(hint) if union else (hint,):
        item = typing.get_args(kind)[0] if typing.get_origin(kind) is list and typing.get_args(kind) else kind
        if item in (int, float):
            return True
    return False


def _outside(rule: OptionRule, hint) -> list:
    """Values just outside `rule` (each as its field holds it: an item of a list field in a list)."""
    integer = int in (typing.get_args(hint) or (hint,)) or "int" in str(hint)
    step = 1 if integer else 0.5
    values = []
    if rule.choices is not None:
        values.append("no-such-choice")
    if rule.minimum is not None:
        values.append(rule.minimum - step)
    if rule.above is not None:
        values.append(rule.above if not integer else int(rule.above))
    if rule.maximum is not None:
        values.append(rule.maximum + step)
    if rule.below is not None:
        values.append(rule.below)
    listed = "list" in str(hint)
    return [[value] if listed else value for value in values]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_numeric_option_declares_its_range_and_the_config_refuses_values_outside_it(method):
    config_class = get_method(method)[0]
    types_, rules = option_types(config_class), option_rules(config_class)
    undeclared = [name for name, hint in types_.items() if _numeric(hint) and name not in rules]
    assert not undeclared, f"{method}: numeric options without a declared range: {undeclared}"
    for name, rule in rules.items():
        for value in _outside(rule, types_[name]):
            with pytest.raises(ValueError, match=rf"{config_class.__name__}\.{name}(\[0\])? must (be|lie) "):
                config_class(**{name: value})
            default = config_class()  # an assignment after construction is checked too
            with pytest.raises(ValueError, match=rf"{name}(\[0\])? must (be|lie) "):
                setattr(default, name, value)


def test_a_negative_context_std_is_refused_by_the_config_and_the_cli_names_the_option(tmp_path, capsys):
    from hf_prompt_clip import CoOpConfig, CoOpModel

    with pytest.raises(ValueError, match=r"ctx_init_std must be at least 0, got -1\.0.*ctx_init_std=0\.02"):
        CoOpConfig(ctx_init_std=-1)  # was accepted, and torch's normal_ failed when the model was built
    with pytest.raises(ValueError, match="ctx_init_std must be at least 0"):
        CoOpModel.from_clip("no/such-clip", ["a", "b"], ctx_init_std=-1)  # refused before loading anything
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(
            ["train", "--method", "coop", "--option", "ctx_init_std=-1", "--output-dir", str(tmp_path / "r")]
        )
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert (
        "ctx_init_std of coop must be at least 0, got -1.0" in line and "--option ctx_init_std=0.02" in line
    )
    assert "normal expects" not in line
    assert not (tmp_path / "r").exists()


def test_ssvp_top_k_and_ssvp_fraction_given_together_are_refused_naming_which_to_keep():
    with pytest.raises(ValueError, match=r"ssvp_top_k=12 and ssvp_fraction=0\.1 both set .* keep one"):
        MPFGVCConfig(ssvp_top_k=12, ssvp_fraction=0.1)  # was: both saved, the fraction silently won
    alone = MPFGVCConfig(ssvp_fraction=0.1)  # the fraction given alone replaces the default count
    assert (alone.ssvp_top_k, alone.ssvp_fraction, alone.patches_kept(196)) == (None, 0.1, 20)
    assert MPFGVCConfig(ssvp_top_k=5).patches_kept(196) == 5
    assert MPFGVCConfig().patches_kept(196) == 12
    # an adapter saved before the pair was refused kept both, and its fraction decided: it still loads so
    saved = {**MPFGVCConfig().to_dict(), "ssvp_top_k": 12, "ssvp_fraction": 0.1}
    loaded = MPFGVCConfig.from_dict(saved)
    assert (loaded.ssvp_top_k, loaded.patches_kept(196)) == (None, 20)
    assert MPFGVCConfig.from_dict(alone.to_dict()).patches_kept(196) == 20  # a round trip keeps the fraction
