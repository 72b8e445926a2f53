"""Model state stays consistent: devices of adapter and text-path tensors, the class list after
failures and temporary lists, the text-feature cache, and loading/pushing options.

No GPU is needed: a CLIP on the `meta` device stands in for "another device" (its tensors hold
no data, so only paths that never read tensor values back can run there).
"""

import json
import types

import huggingface_hub
import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import AutoModel

from hf_prompt_clip import CoCoOpModel, CoOpModel, ZeroShotCLIPModel
from hf_prompt_clip.modeling.text import tokenize_texts
from hf_prompt_clip.modeling.text_engine import encode_truncated, encode_with_shared_prefix

NAMES = ["cat", "dog", "a fox"]


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class SingleDeviceCalls(TorchFunctionMode):
    """Fail on any torch call whose tensor arguments (0-dim ones aside) lie on different devices.

    On CUDA such calls raise (e.g. a CPU tensor indexed by CUDA indices); on `meta` many pass
    silently, so the tests look at the calls themselves.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.Tensor.copy_:  # copying across devices is what copy_ is for
            devices = {t.device for t in _tensors((args, kwargs)) if t.dim()}
            assert len(devices) <= 1, f"{getattr(func, '__name__', func)} mixes devices {devices}"
        return func(*args, **kwargs)


def meta_clip_parts(clip_parts):
    clip, tokenizer, processor = clip_parts
    return clip.to("meta"), tokenizer, processor


def pixels(batch=2):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------- devices


def test_zero_shot_fast_path_keeps_every_call_on_the_clip_device(clip_parts):
    clip, tokenizer, processor = meta_clip_parts(clip_parts)
    model = ZeroShotCLIPModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor)
    assert model.config.fast
    with SingleDeviceCalls():
        assert model.class_text_features().device.type == "meta"  # from CPU end-of-text positions
        logits = model(pixels()).logits  # from CPU pixel values
    assert logits.device.type == "meta" and logits.shape == (2, len(NAMES))


def test_text_engine_takes_end_of_text_positions_from_any_device(clip_parts):
    clip, tokenizer, _ = meta_clip_parts(clip_parts)
    width = clip.config.text_config.hidden_size
    _, eos = tokenize_texts(tokenizer, NAMES)
    with SingleDeviceCalls():
        features = encode_truncated(clip, torch.empty(len(NAMES), 77, width, device="meta"), eos)
        assert features.device.type == "meta"
        prefix = torch.empty(2, 3, width, device="meta")
        suffixes = torch.empty(len(NAMES), 74, width, device="meta")
        features = encode_with_shared_prefix(clip, prefix, suffixes, eos - 3)
    assert features.device.type == "meta" and features.shape[:2] == (2, len(NAMES))


@pytest.mark.parametrize("ctx_init", [None, "a photo of a"])
def test_adapter_tensors_are_created_on_the_clip_device(clip_parts, ctx_init):
    clip, tokenizer, processor = meta_clip_parts(clip_parts)
    coop = CoOpModel.from_clip(
        clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=4, ctx_init=ctx_init
    )
    assert coop.context.device.type == "meta"
    cocoop = CoCoOpModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=4)
    assert {p.device.type for p in cocoop.adapter_state_dict().values()} == {"meta"}


def test_images_are_moved_to_the_vision_tower(clip_parts):
    clip, tokenizer, processor = meta_clip_parts(clip_parts)
    model = ZeroShotCLIPModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor)
    assert model.encode_images(pixels()).device.type == "meta"


# ------------------------------------------------------------------------------- class list


@pytest.mark.parametrize("model_class", [ZeroShotCLIPModel, CoOpModel, CoCoOpModel])
def test_model_without_classes_says_to_set_them(clip_parts, model_class):
    clip, tokenizer, processor = clip_parts
    model = model_class.from_clip(clip, None, tokenizer=tokenizer, image_processor=processor)
    with pytest.raises(ValueError, match=r"has no classes yet: call set_class_names"):
        model(pixels())


def _class_state(config):
    return config.class_names, config.prompt_names, config.id2label, config.label2id


def test_failed_set_class_names_leaves_a_model_without_classes_as_it_was(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, None, tokenizer=tokenizer, image_processor=processor, n_ctx=16)
    before = _class_state(model.config)
    with pytest.raises(ValueError, match="needs 89 token positions"):
        model.set_class_names(["cat", "a" * 30 + " " + "b" * 40])
    assert _class_state(model.config) == before
    assert model.config.class_names is None


def test_bad_prompt_names_leave_the_class_list_as_it_was(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    before = _class_state(model.config)
    with pytest.raises(ValueError, match="prompt_names has 1 entries"):
        model.set_class_names(["fox", "owl"], prompt_names=["a fox"])
    assert _class_state(model.config) == before


def test_temporary_classes_leave_no_labels_on_a_model_without_classes(clip_parts, tmp_path):
    clip, tokenizer, processor = clip_parts
    model = ZeroShotCLIPModel.from_clip(clip, None, tokenizer=tokenizer, image_processor=processor)
    before = _class_state(model.config)
    with model.using_class_names(["fox", "owl", "eel"]):
        assert model.config.id2label == {0: "fox", 1: "owl", 2: "eel"}
        model(pixels())
    assert _class_state(model.config) == before
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "fox" not in json.dumps(saved)


def test_temporary_classes_restore_the_previous_list(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    before = _class_state(model.config)
    with torch.no_grad():
        logits = model(pixels()).logits
        with model.using_class_names(["fox", "owl"], prompt_names=["red fox", "snowy owl"]):
            assert model(pixels()).logits.shape == (2, 2)
        assert _class_state(model.config) == before
        torch.testing.assert_close(model(pixels()).logits, logits)


# ------------------------------------------------------------------------------- text-feature cache


def test_zero_shot_features_follow_the_device(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = ZeroShotCLIPModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor)
    assert model.class_text_features().device.type == "cpu"
    model.to("meta")
    assert model.class_text_features().device.type == "meta"


def test_zero_shot_features_follow_the_templates(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = ZeroShotCLIPModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor)
    model.class_text_features()
    model.config.templates = ["art of the {}."]
    fresh = ZeroShotCLIPModel.from_clip(
        clip, NAMES, tokenizer=tokenizer, image_processor=processor, templates=["art of the {}."]
    )
    torch.testing.assert_close(model.class_text_features(), fresh.class_text_features())
    model.config.templates.append("a photo of a {}.")  # edited in place
    fresh.config.templates = ["art of the {}.", "a photo of a {}."]
    torch.testing.assert_close(model.class_text_features(), fresh.class_text_features())


def test_coop_features_follow_the_text_tower_dtype(clip_parts):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    with torch.no_grad():
        assert model.class_text_features().dtype == torch.float32
        model.clip.to(torch.float64)
        assert model.class_text_features().dtype == torch.float64


# ------------------------------------------------------------------------------- loading and pushing


@pytest.fixture
def saved_coop(tiny_clip_folder, tmp_path):
    model = CoOpModel.from_clip(tiny_clip_folder, NAMES, n_ctx=2)
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def test_dtype_wins_over_torch_dtype_and_neither_reaches_the_config(saved_coop):
    saved_dtype = CoOpModel.from_pretrained(saved_coop).config.dtype
    model = CoOpModel.from_pretrained(saved_coop, dtype=torch.float16, torch_dtype=torch.float64)
    assert model.clip.dtype == torch.float16
    assert model.config.dtype == saved_dtype
    model = CoOpModel.from_pretrained(saved_coop, torch_dtype=torch.float16)
    assert model.clip.dtype == torch.float16 and model.config.dtype == saved_dtype


def test_dict_device_map_is_refused(saved_coop):
    with pytest.raises(ValueError, match=r"wraps a single CLIP.*device_map='cuda'.*\.to\(device\)"):
        AutoModel.from_pretrained(saved_coop, device_map={"": "cpu"})
    model = AutoModel.from_pretrained(saved_coop, device_map="cpu")
    assert model.context.device.type == "cpu"


def test_push_to_hub_forwards_the_revision(clip_parts, monkeypatch):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, NAMES, tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    uploads = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", lambda self, repo_id, **kwargs: None)

    def upload_folder(self, **kwargs):
        uploads.append(kwargs)
        return types.SimpleNamespace(commit_url="https://huggingface.co/org/x/commit/1")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    model.push_to_hub("org/coop-cats", revision="v2")
    model.push_to_hub("org/coop-cats")
    assert [upload["revision"] for upload in uploads] == ["v2", None]
