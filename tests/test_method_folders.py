"""A method folder is never another method's base class, and what every method saves stays as it was.

Shared prompt machinery lives in `modeling/prompts.py` (context prompts, hand-written template prompts) and
the methods hold it; within one folder a method may subclass another (PLOT++ of PLOT, Tip-Adapter-F of
Tip-Adapter). The adapter keys and shapes below were recorded from the code before that change: an
adapter saved by an earlier release must keep loading.
"""

import json
import warnings

import pytest
import torch

from hf_prompt_clip import CoCoOpConfig, CoCoOpModel
from hf_prompt_clip.core.registry import METHODS, get_method
from hf_prompt_clip.testing import tiny_clip

METHODS_PACKAGE = "hf_prompt_clip.methods."
NAMES = ["red star", "blue circle", "green ring"]


def method_folder(klass: type) -> str | None:
    """`coop` for a class defined in `hf_prompt_clip/methods/coop/...`, `None` outside the method folders."""
    module = klass.__module__
    return module[len(METHODS_PACKAGE) :].split(".")[0] if module.startswith(METHODS_PACKAGE) else None


def foreign_bases(klass: type) -> list[str]:
    """The classes in `klass`'s MRO defined in another method's folder than `klass` itself."""
    own = method_folder(klass)
    return [
        f"{base.__module__}.{base.__qualname__}"
        for base in klass.__mro__[1:]
        if method_folder(base) not in (None, own)
    ]


@pytest.mark.parametrize("method", list(METHODS))
def test_no_config_or_model_class_subclasses_another_methods_folder(method):
    config_class, model_class = get_method(method)[:2]
    for klass in (config_class, model_class):
        assert method_folder(klass) is not None, (
            f"{klass} is registered for {method} but lives outside methods/"
        )
        assert not foreign_bases(klass), (
            f"{klass.__qualname__} ({method}) inherits from another method's folder: {foreign_bases(klass)}; "
            "hold the shared machinery of core/ instead"
        )


def test_the_check_sees_a_base_from_another_folder():
    from hf_prompt_clip.methods.coop.model import CoOpModel

    Child = type("Child", (CoOpModel,), {"__module__": "hf_prompt_clip.methods.somewhere.model"})
    assert foreign_bases(Child) == ["hf_prompt_clip.methods.coop.model.CoOpModel"]
    Sibling = type("Sibling", (CoOpModel,), {"__module__": "hf_prompt_clip.methods.coop.other"})
    assert foreign_bases(Sibling) == []  # within one folder subclassing is allowed


# Keys and shapes of `saved_adapter_state_dict()` of every method on the tiny CLIP (text width 32, embedding
# 16; its tokenizer spells "a photo of a" in 9 tokens) with the classes NAMES, recorded before the shared
# prompt machinery moved to core. MP-FGVC also saves CLIP's whole image tower (checked separately).
SAVED_ADAPTERS = {
    ("zeroshot", ()): {},
    ("coop", ()): {"context": (16, 32)},
    ("coop", (("class_specific_context", True),)): {"context": (3, 16, 32)},
    ("coop", (("ctx_init", "a photo of a"),)): {"context": (9, 32)},
    ("cocoop", ()): {
        "context": (9, 32),
        "meta_net.linear1.weight": (1, 16),
        "meta_net.linear1.bias": (1,),
        "meta_net.linear2.weight": (32, 1),
        "meta_net.linear2.bias": (32,),
    },
    ("kgcoop", ()): {"context": (9, 32)},
    ("kgcoop", (("class_specific_context", True),)): {"context": (3, 9, 32)},
    ("clip_adapter", ()): {"adapter.fc1.weight": (4, 16), "adapter.fc2.weight": (16, 4)},
    ("plot", ()): {"context": (4, 16, 32)},
    ("plotpp", ()): {"context": (4, 15, 32), "visual_prompts": (4, 2, 32)},
    ("mpfgvc", (("super_category", "thing"),)): {
        "context": (3, 16, 32),
        "visual_head.weight": (3, 16),
        "visual_head.bias": (3,),
        "classifier.weight": (3, 16),
        "classifier.bias": (3,),
        **{
            f"fusion.{name}.{kind}": (16, 16) if kind == "weight" else (16,)
            for name in ("query", "visual_key", "visual_value", "text_key", "text_value")
            for kind in ("weight", "bias")
        },
        "fusion.translation.0.weight": (64, 16),
        "fusion.translation.0.bias": (64,),
        "fusion.translation.2.weight": (16, 64),
        "fusion.translation.2.bias": (16,),
    },
    ("linear_probe", ()): {"head.weight": (3, 16), "head.bias": (3,)},
    ("tip_adapter", ()): {"cache_keys": (0, 16), "cache_labels": (0,)},
    ("tip_adapter_f", ()): {"cache_keys": (0, 16), "cache_labels": (0,)},
    # IVLP's depth 12 is every layer of the tiny CLIP's 2: one deep layer per tower
    ("ivlp", ()): {
        "prompts.context": (2, 32),
        "prompts.deep_context": (1, 2, 32),
        "prompts.visual_prompts": (2, 32),
        "prompts.deep_visual_prompts": (1, 2, 32),
    },
    ("ivlp", (("n_ctx_vision", 0), ("vision_depth", 0))): {
        "prompts.context": (2, 32),
        "prompts.deep_context": (1, 2, 32),
    },
    # deep prompts: the tiny CLIP has 2 layers per tower, so the authors' depths (12, 9) run as 2
    ("vpt", ()): {"prompts.visual_prompts": (8, 32), "prompts.deep_visual_prompts": (1, 8, 32)},
    ("maple", ()): {
        "prompts.context": (2, 32),
        "prompts.deep_context": (1, 2, 32),
        **{
            f"prompts.couplings.{j}.{kind}": (32, 32) if kind == "weight" else (32,)
            for j in range(2)
            for kind in ("weight", "bias")
        },
    },
    ("promptsrc", ()): {  # depth 9 clamped to the tiny CLIP's 2 layers
        "prompts.context": (4, 32),
        "prompts.deep_context": (1, 4, 32),
        "prompts.visual_prompts": (4, 32),
        "prompts.deep_visual_prompts": (1, 4, 32),
    },
    # LoRA (r = 2) on q, k, v of both layers of both towers, inside CLIP's attention modules (peft's names)
    ("clip_lora", ()): {
        f"clip.{tower}_model.encoder.layers.{i}.self_attn.{p}_proj.lora_{ab}.default.weight": (
            (2, 32) if ab == "A" else (32, 2)
        )
        for tower in ("text", "vision")
        for i in range(2)
        for p in "qkv"
        for ab in "AB"
    },
    ("clip_lora", (("encoder", "text"), ("params", ("o",)), ("r", 4))): {
        f"clip.text_model.encoder.layers.{i}.self_attn.out_proj.lora_{ab}.default.weight": (
            (4, 32) if ab == "A" else (32, 4)
        )
        for i in range(2)
        for ab in "AB"
    },
}


def test_every_registered_method_has_a_recorded_adapter():
    assert {method for method, _ in SAVED_ADAPTERS} == set(METHODS)


@pytest.mark.parametrize(("method", "options"), list(SAVED_ADAPTERS), ids=lambda v: str(v) if v else "")
def test_saved_adapter_keys_and_shapes_are_unchanged(method, options):
    model_class = get_method(method)[1]
    clip, tokenizer, processor = tiny_clip(seed=0)
    model = model_class.from_clip(
        clip, NAMES, tokenizer=tokenizer, image_processor=processor, **dict(options)
    )
    saved = {key: tuple(value.shape) for key, value in model.saved_adapter_state_dict().items()}
    # CLIP's own submodules saved whole (adapter_clip_modules); tensors a method injected into CLIP's layers
    # (is_adapter_clip_key: LoRA) are listed with the adapter's keys
    tower = {
        key: value
        for key, value in saved.items()
        if key.startswith("clip.") and not model.is_adapter_clip_key(key)
    }
    assert {key: value for key, value in saved.items() if key not in tower} == SAVED_ADAPTERS[method, options]
    if method == "mpfgvc":  # the fine-tuned image tower: CLIP's own vision model and projection, as they are
        expected = {
            f"clip.{key}": tuple(value.shape)
            for key, value in clip.state_dict().items()
            if key.startswith(("vision_model.", "visual_projection."))
        }
        assert tower == expected
    else:
        assert not tower


def test_a_cocoop_adapter_saved_with_class_specific_context_false_loads_quietly(tiny_clip_folder, tmp_path):
    """CoCoOp's config held CoOp's class_specific_context (always False); it no longer has the option, and
    an adapter saved with it loads without a warning, classifies as saved and saves without it."""
    torch.manual_seed(0)
    model = CoCoOpModel.from_clip(tiny_clip_folder, NAMES, n_ctx=4, ctx_init=None)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    saved["class_specific_context"] = False  # what every earlier release wrote
    config_file.write_text(json.dumps(saved))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = CoCoOpModel.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(pixels).logits, model.eval()(pixels).logits)
    assert not hasattr(loaded.config, "class_specific_context")
    loaded.save_pretrained(tmp_path / "again")
    assert "class_specific_context" not in json.loads((tmp_path / "again" / "config.json").read_text())
    saved["class_specific_context"] = True  # never written by a release: a hand-edited config
    config_file.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"CoCoOpConfig has no option class_specific_context.*CoOp"):
        CoCoOpModel.from_pretrained(tmp_path)


def test_cocoop_refuses_class_specific_context_naming_the_methods_that_have_it(tiny_clip_folder):
    for build in (
        lambda: CoCoOpConfig(class_names=NAMES, class_specific_context=True),
        lambda: CoCoOpConfig(class_specific_context=False),
        lambda: CoCoOpModel.from_clip(tiny_clip_folder, NAMES, class_specific_context=True),
    ):
        with pytest.raises(ValueError, match=r"CoCoOpConfig has no option class_specific_context.*use CoOp"):
            build()
