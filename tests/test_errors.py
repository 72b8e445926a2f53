"""Bad input fails early with an error that names the problem and the fix."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from hf_prompt_clip import AdapterLoadError, CoOpConfig, CoOpModel, ZeroShotCLIPConfig, ZeroShotCLIPModel
from hf_prompt_clip.testing import save_tiny_clip


@pytest.fixture
def saved_coop(tiny_clip_folder, tmp_path):
    model = CoOpModel.from_clip(tiny_clip_folder, ["cat", "dog"], n_ctx=4)
    folder = tmp_path / "adapter"
    model.save_pretrained(folder)
    return model, folder


def test_empty_class_list(tiny_clip_folder):
    with pytest.raises(ValueError, match="class_names is empty"):
        CoOpModel.from_clip(tiny_clip_folder, [])
    model = CoOpModel.from_clip(tiny_clip_folder, ["cat"])
    with pytest.raises(ValueError, match="class_names is empty"):
        model.set_class_names([])


def test_duplicate_class_names(tiny_clip_folder):
    with pytest.raises(ValueError, match=r"must be unique.*'dog' \(positions 1 and 3\)"):
        ZeroShotCLIPModel.from_clip(tiny_clip_folder, ["cat", "dog", "fox", "dog"])


def test_class_names_must_be_a_list_of_strings():
    with pytest.raises(ValueError, match="list of strings"):
        ZeroShotCLIPConfig(class_names="cat")
    with pytest.raises(ValueError, match=r"class_names\[1\] must be a non-empty string"):
        ZeroShotCLIPConfig(class_names=["cat", " "])


def test_prompt_longer_than_77_positions(tiny_clip_folder):
    long_name = "a" * 30 + " " + "b" * 40
    expected = r"needs 89 token positions .*only 77.*fewer context tokens"
    with pytest.raises(ValueError, match=expected):
        CoOpModel.from_clip(tiny_clip_folder, ["cat", long_name], n_ctx=16)
    model = CoOpModel.from_clip(tiny_clip_folder, ["cat", "dog"], n_ctx=16)
    with torch.no_grad():
        before = model(torch.ones(1, 3, 32, 32)).logits
    with pytest.raises(ValueError, match=expected):
        model.set_class_names(["cat", long_name])
    assert model.config.class_names == ["cat", "dog"]  # the failed change left the model as it was
    assert model.config.id2label == {0: "cat", 1: "dog"}
    with torch.no_grad():
        assert torch.equal(model(torch.ones(1, 3, 32, 32)).logits, before)


def test_adapter_for_another_context_width(saved_coop, tmp_path):
    _, folder = saved_coop
    wider = save_tiny_clip(tmp_path / "wider-clip", text_width=48)
    with pytest.raises(AdapterLoadError, match=r"text_config.hidden_size: adapter 32, base 48"):
        AutoModel.from_pretrained(folder, base_model=wider)


def test_adapter_tensor_of_the_wrong_shape(saved_coop):
    _, folder = saved_coop
    save_file({"context": torch.zeros(4, 48)}, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(AdapterLoadError, match=r"'context' .* shape \(4, 48\).* expects \(4, 32\)"):
        AutoModel.from_pretrained(folder)


def test_adapter_with_missing_or_unexpected_tensors(saved_coop):
    _, folder = saved_coop
    save_file({"meta_net.weight": torch.zeros(2)}, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        AdapterLoadError, match=r"missing tensors \['context'\].*unexpected tensors \['meta_net"
    ):
        AutoModel.from_pretrained(folder)


def test_missing_adapter_file(saved_coop):
    _, folder = saved_coop
    (folder / "model.safetensors").unlink()
    with pytest.raises(AdapterLoadError, match=r"No adapter weights file 'model.safetensors'"):
        AutoModel.from_pretrained(folder)


def test_corrupt_adapter_file(saved_coop):
    _, folder = saved_coop
    (folder / "model.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(AdapterLoadError, match="corrupt or not a safetensors file"):
        AutoModel.from_pretrained(folder)


def test_missing_base_model(saved_coop, tmp_path):
    _, folder = saved_coop
    with pytest.raises(AdapterLoadError, match="Could not load the base CLIP"):
        AutoModel.from_pretrained(folder, base_model=tmp_path / "nowhere")


def test_labels_outside_the_class_list(saved_coop):
    model, _ = saved_coop
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\)"):
        model(torch.zeros(2, 3, 32, 32), labels=torch.tensor([0, 5]))


def test_bad_method_options(clip_parts):
    with pytest.raises(ValueError, match="class_token_position must be one of"):
        CoOpConfig(class_token_position="start")
    with pytest.raises(ValueError, match="exactly one"):
        ZeroShotCLIPConfig(templates=["a photo of a cat"])
    # a config without classes states the method's facts before any data is read; its model needs them
    assert not CoOpConfig(class_specific_context=True).capabilities.classes_can_change
    clip, tokenizer, _ = clip_parts
    with pytest.raises(ValueError, match="class_names must be given"):
        CoOpModel(CoOpConfig(class_specific_context=True), clip_model=clip, tokenizer=tokenizer)


def test_unknown_loading_argument(saved_coop):
    _, folder = saved_coop
    with pytest.raises(TypeError, match="unexpected argument 'colour'"):
        AutoModel.from_pretrained(folder, colour="red")


def test_model_without_tokenizer_explains_how_to_attach_one(saved_coop):
    model, _ = saved_coop
    bare = CoOpModel(model.config, clip_model=model.clip)
    with pytest.raises(ValueError, match="needs the base model's tokenizer"):
        bare(torch.zeros(1, 3, 32, 32))
