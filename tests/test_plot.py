"""PLOT and PLOT++: definition, exactness of the fast path, stages, saving, Auto classes, pipelines."""

import pytest
import torch
import torch.nn.functional as F
from conftest import PATTERN_NAMES, assert_pipelines_score_like_the_model, fit_to_patterns, pattern_images
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForZeroShotImageClassification

from hf_prompt_clip import CoOpConfig, CoOpModel, PLOTConfig, PLOTModel, PLOTPPConfig, PLOTPPModel
from hf_prompt_clip.data import get_benchmark
from hf_prompt_clip.methods.plot.model import transport_logits
from hf_prompt_clip.methods.plot.optimal_transport import sinkhorn
from hf_prompt_clip.methods.plot.templates import REFERENCE_PHRASES
from hf_prompt_clip.modeling.text import tokenize_texts
from hf_prompt_clip.modeling.vision import encode_image_tokens
from hf_prompt_clip.testing import pattern_benchmark
from hf_prompt_clip.train import PromptTrainer, TrainingConfig

NAMES = ["red star", "a blue circle of another length", "ring"]


def pixels(batch=3):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def make(clip_parts, model_class=PLOTModel, names=NAMES, **kwargs):
    clip, tokenizer, processor = clip_parts
    config = model_class.config_class(clip_config=clip.config.to_dict(), class_names=names, **kwargs)
    torch.manual_seed(0)
    return model_class(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


def perturb(model):
    """Move every adapter tensor away from its initialisation."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


# ---------------------------------------------------------------------------------------- definition


def test_one_prompt_matched_to_the_global_feature_alone_is_coop(clip_parts):
    """N = 1 prompt and one local feature equal to the global feature: the plan is 1, PLOT is CoOp."""
    plot = perturb(make(clip_parts, n_prompts=1, n_ctx=4))
    clip, tokenizer, processor = clip_parts
    coop = CoOpModel(
        CoOpConfig(clip_config=clip.config.to_dict(), class_names=NAMES, n_ctx=4),
        clip_model=clip,
        tokenizer=tokenizer,
        image_processor=processor,
    )
    with torch.no_grad():
        coop.context.copy_(plot.context[0])
        features = plot.encode_images(pixels())
        ours = plot.logits_from_features(features, features[:, None], plot.prompt_text_features())
        torch.testing.assert_close(ours, coop.logits_from_image_features(features), atol=1e-4, rtol=0)


def test_logits_are_the_scaled_transport_score_of_patch_features(clip_parts):
    """Definition check against the reference's formula on the model's own features."""
    model = perturb(make(clip_parts))
    with torch.no_grad():
        _, local = model.local_image_features(pixels())
        prompts = model.prompt_text_features()  # (N, K, E)
        assert local.shape == (3, 16, 16) and prompts.shape == (4, 3, 16)
        local_n, prompts_n = F.normalize(local, dim=-1), F.normalize(prompts, dim=-1)
        similarity = torch.einsum("mbd,ncd->mnbc", local_n.transpose(0, 1), prompts_n)  # reference layout
        similarity = similarity.reshape(16, 4, 3 * 3).permute(2, 0, 1)  # (B*K, M, N)
        plan = sinkhorn(similarity).plan
        expected = model.clip.logit_scale.exp() * (plan * similarity).sum((1, 2)).view(3, 3)
        torch.testing.assert_close(model(pixels()).logits, expected, atol=1e-4, rtol=0)


def test_gradients_reach_the_prompts_only_through_the_similarities():
    """d/dS sum(T S) = T with the plan held constant (not differentiated through Sinkhorn)."""
    generator = torch.Generator().manual_seed(0)
    local = torch.randn(2, 5, 8, generator=generator)
    prompts = torch.randn(3, 4, 8, generator=generator, requires_grad=True)

    def plan_fn(similarity):
        assert not similarity.requires_grad  # the plan sees a constant
        return sinkhorn(similarity, threshold=None).plan

    transport_logits(local, prompts, plan_fn).sum().backward()
    ours = prompts.grad.clone()
    # the same scores with the plan as an explicit constant
    prompts.grad = None
    similarity = torch.einsum("bme,nke->bkmn", F.normalize(local, dim=-1), F.normalize(prompts, dim=-1))
    (plan_fn(similarity.detach()) * similarity).sum().backward()
    torch.testing.assert_close(ours, prompts.grad)
    # differentiating through the iterations would give other gradients
    prompts.grad = None
    similarity = torch.einsum("bme,nke->bkmn", F.normalize(local, dim=-1), F.normalize(prompts, dim=-1))
    log_kernel, log_r, log_c = (similarity - 1) / 0.1, torch.zeros(2, 4, 5), torch.zeros(2, 4, 3)
    for _ in range(100):
        log_r = -torch.log(torch.tensor(5.0)) - torch.logsumexp(log_kernel + log_c.unsqueeze(-2), -1)
        log_c = -torch.log(torch.tensor(3.0)) - torch.logsumexp(log_kernel + log_r.unsqueeze(-1), -2)
    plan = torch.exp(log_r.unsqueeze(-1) + log_kernel + log_c.unsqueeze(-2))
    (plan * similarity).sum().backward()
    assert (prompts.grad - ours).abs().max() > 1e-3


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("model_class", [PLOTModel, PLOTPPModel])
def test_fast_path_equals_the_straightforward_path(clip_parts, model_class, position):
    """Text engine + log-domain Sinkhorn vs 77 positions per prompt + the authors' Sinkhorn loop:
    equal logits and gradients, with contexts of unequal lengths (phrases) and ragged names."""
    options = {
        "class_token_position": position,
        "ctx_inits": ["a photo of", "x y", "a b c", "one picture of a"],
    }
    fast = perturb(make(clip_parts, model_class, fast=True, **options))
    reference = make(clip_parts, model_class, fast=False, **options)
    reference.load_adapter_state_dict(fast.adapter_state_dict())
    assert fast.context_lengths == [8, 2, 3, 13]  # BPE tokens (here: characters) of each phrase
    labels = torch.tensor([0, 2, 1])
    for model in (fast, reference):
        model.set_training_stage(model.training_stages()[-1])
        model(pixels(), labels=labels).loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(fast(pixels()).logits, reference(pixels()).logits, atol=2e-4, rtol=0)
    for name, parameter in fast.named_parameters():
        if parameter.requires_grad:
            other = dict(reference.named_parameters())[name].grad
            assert parameter.grad.abs().max() > 0
            torch.testing.assert_close(parameter.grad, other, atol=2e-5, rtol=1e-3)


def test_each_context_is_as_long_as_its_phrase_and_keeps_the_whole_class_name(clip_parts):
    """Started from its phrase, prompt n of class k is exactly the text "<phrase n> <name k>." (the
    reference cuts every phrase to the first one's word count and overwrites name tokens)."""
    clip, tokenizer, _ = clip_parts
    phrases = ["a photo of a", "this is a", "x", "one picture of a"]
    model = make(clip_parts, PLOTPPModel, ctx_inits=phrases)
    assert model.config.context_lengths == [
        len(tokenizer(p, add_special_tokens=False).input_ids) for p in phrases
    ]
    with torch.no_grad():
        features = model.prompt_text_features()
        for n, phrase in enumerate(phrases):
            input_ids, _ = tokenize_texts(tokenizer, [f"{phrase} {name}." for name in NAMES])
            expected = clip.get_text_features(input_ids=input_ids).pooler_output
            torch.testing.assert_close(features[n], expected, atol=1e-5, rtol=0)


def test_text_features_are_cached_at_inference_and_follow_the_context(clip_parts):
    model = perturb(make(clip_parts))
    with torch.no_grad():
        first = model.prompt_text_features()
        assert model.prompt_text_features() is first
        model.context.add_(0.1)
        assert not torch.equal(model.prompt_text_features(), first)
    model.set_class_names(["ring", "red star"])
    with torch.no_grad():
        assert model.prompt_text_features().shape == (4, 2, 16)


# ---------------------------------------------------------------------------------------- stages


def changed_parameters(model, stage):
    model.set_training_stage(stage)
    before = {name: value.clone() for name, value in model.adapter_state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    optimizer.step()
    return {
        name for name, value in model.adapter_state_dict().items() if not torch.equal(value, before[name])
    }


def test_plotpp_stage_one_trains_the_visual_prompts_then_stage_two_both(clip_parts):
    model = make(clip_parts, PLOTPPModel)
    visual, joint = model.training_stages()
    assert (visual.name, joint.name) == ("visual", "joint")
    assert changed_parameters(model, visual) == {"visual_prompts"}
    assert model.uses_global_logits  # stage 1: global + transport logits
    assert changed_parameters(model, joint) == {"context", "visual_prompts"}
    assert not model.uses_global_logits  # stage 2 (and the trained model): transport only
    assert not any(p.requires_grad for p in model.clip.parameters())


def test_stage_one_logits_add_the_global_term(clip_parts):
    """Global term = scale * cos(mean of the M_v prompted CLS features, mean of the N prompt features)."""
    clip, tokenizer, _ = clip_parts
    model = make(clip_parts, PLOTPPModel)  # contexts at their phrases
    with torch.no_grad():
        model.visual_prompts.add_(0.3 * torch.randn_like(model.visual_prompts))
        transport = model(pixels()).logits
        model.set_training_stage("visual")
        both = model(pixels()).logits
        prompted = encode_image_tokens(clip, pixels(), model.visual_prompts).pooled  # (B, M_v, E)
        image = F.normalize(prompted.mean(1), dim=-1)
        prompts = [  # the N prompt features of each class, straight from transformers' text tower
            clip.get_text_features(input_ids=tokenize_texts(tokenizer, [f"{p} {name}." for name in NAMES])[0])
            for p in PLOTPPConfig().ctx_inits
        ]
        text = F.normalize(torch.stack([f.pooler_output for f in prompts]).mean(0), dim=-1)
        expected = clip.logit_scale.exp() * image @ text.T
    torch.testing.assert_close(both - transport, expected, atol=1e-4, rtol=0)


def test_a_model_saved_in_stage_one_scores_as_it_did(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    model = perturb(PLOTPPModel.from_clip(tiny_clip_folder, NAMES))
    model.set_training_stage("visual")
    with torch.no_grad():
        expected = model(pixels()).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.active_stage == "visual" and loaded.uses_global_logits
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels()).logits, expected, atol=0, rtol=0)


def test_transport_runs_in_float32_under_autocast():
    generator = torch.Generator().manual_seed(1)
    local, prompts = torch.randn(4, 9, 16, generator=generator), torch.randn(3, 5, 16, generator=generator)
    plans = []

    def plan_fn(similarity):
        plans.append(similarity.dtype)
        return sinkhorn(similarity).plan

    expected = transport_logits(local, prompts, plan_fn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = transport_logits(local, prompts, plan_fn)
    assert plans == [torch.float32, torch.float32] and ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_patch_transport_alone_learns(tiny_clip_folder):
    """Without the global logits, the transport between patch and prompt features fits the patterns."""
    torch.manual_seed(0)
    model = PLOTModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=4)
    assert not model.uses_global_logits
    pixel_values = model.image_processor(pattern_images(), return_tensors="pt").pixel_values
    with torch.no_grad():
        before = model(pixel_values).logits.softmax(-1).diag()
    fit_to_patterns(model)
    with torch.no_grad():
        after = model(pixel_values).logits.softmax(-1).diag()
    assert before.min() < 0.5 and after.min() > 0.9, (before, after)


def test_plot_trains_the_contexts_only(clip_parts):
    model = make(clip_parts)
    (stage,) = model.training_stages()
    assert changed_parameters(model, stage) == {"context"}


def test_the_generic_loop_runs_both_stages_with_their_own_epochs(tiny_clip_folder, tmp_path):
    from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform

    model = PLOTPPModel.from_clip(tiny_clip_folder, PATTERN_NAMES, stage_epochs=[1, 2])
    data = with_image_transform(pattern_benchmark(4), eval_transform(model.image_processor))
    initial = {name: value.clone() for name, value in model.adapter_state_dict().items()}
    config = TrainingConfig(output_dir=str(tmp_path), batch_size=8, learning_rate=0.05, optimizer="adamw")
    state = PromptTrainer(model, data, config, collate_fn=collate_fn).train()
    assert [(entry["stage"], entry["epoch"]) for entry in state.log] == [
        ("visual", 0),
        ("joint", 0),
        ("joint", 1),
    ]
    assert all(not torch.equal(value, initial[name]) for name, value in model.adapter_state_dict().items())


# ---------------------------------------------------------------------------------------- saving and loading


@pytest.mark.parametrize("model_class", [PLOTModel, PLOTPPModel])
def test_adapter_round_trips_through_the_auto_classes(tiny_clip_folder, tmp_path, model_class):
    torch.manual_seed(0)
    model = perturb(model_class.from_clip(tiny_clip_folder, NAMES)).eval()
    with torch.no_grad():
        expected = model(pixels()).logits
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    wanted = {"context"} | ({"visual_prompts"} if model_class is PLOTPPModel else set())
    assert set(tensors) == wanted  # never the CLIP weights (the reference checkpoints them)
    for auto_class in (AutoModel, AutoModelForZeroShotImageClassification):
        loaded = auto_class.from_pretrained(tmp_path)
        assert type(loaded) is model_class
        assert loaded.config.context_lengths == model.config.context_lengths
        with torch.no_grad():
            torch.testing.assert_close(loaded(pixels()).logits, expected, atol=0, rtol=0)


@pytest.mark.parametrize("model_class", [PLOTModel, PLOTPPModel])
def test_both_pipelines_score_like_the_model(tiny_clip_folder, tmp_path, model_class):
    torch.manual_seed(0)
    model = perturb(model_class.from_clip(tiny_clip_folder, PATTERN_NAMES)).eval()
    model.save_pretrained(tmp_path)
    assert_pipelines_score_like_the_model(model, tmp_path)


# ---------------------------------------------------------------------------------------- options


def test_benchmark_defaults_follow_the_reference():
    dtd, imagenet, synthetic = (get_benchmark(k) for k in ("dtd", "imagenet", "synthetic_shapes_outline"))
    assert PLOTPPConfig().benchmark_defaults(dtd) == {"ctx_inits": list(REFERENCE_PHRASES["dtd"])}
    phrases = PLOTPPConfig().benchmark_defaults(synthetic)["ctx_inits"]
    assert phrases[:2] == ["a photo of a", "itap of a"] and len(phrases) == 4  # from the templates
    assert len(PLOTPPConfig(n_prompts=2).benchmark_defaults(dtd)["ctx_inits"]) == 2
    assert PLOTConfig().benchmark_defaults(imagenet) == {"add_global_logits": True}
    assert PLOTConfig().benchmark_defaults(dtd) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ctx_inits": ["a", "b", "c"], "n_prompts": 2}, "ctx_inits has 3 phrases for n_prompts=2"),
        ({"local_features": "grid"}, "local_features must be one of"),
        ({"sinkhorn_stop": "never"}, "sinkhorn_stop must be one of"),
        ({"sinkhorn_eps": 0.0}, "sinkhorn_eps must be positive"),
        ({"stage_epochs": [5, 5]}, r"each of the 1 training stages \('prompt',\)"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options, message):
    with pytest.raises(ValueError, match=message):
        PLOTConfig(**options)


def test_contexts_past_the_phrases_start_random(clip_parts):
    model = make(clip_parts, PLOTPPModel, n_prompts=6)
    phrases = len(PLOTPPConfig().ctx_inits)
    assert model.config.context_lengths[phrases:] == [4, 4]  # n_ctx tokens
    assert model.context[phrases:, :4].std() > 0.01 and model.prompt_text_features().shape[0] == 6


def test_phrases_without_a_tokenizer_are_refused(clip_parts):
    clip, _, _ = clip_parts
    with pytest.raises(ValueError, match="needs the base model's tokenizer"):
        PLOTPPModel(PLOTPPConfig(clip_config=clip.config.to_dict(), class_names=NAMES), clip_model=clip)


def test_plotpp_defaults_follow_the_authors_code():
    config = PLOTPPConfig()
    assert (config.n_prompts, config.n_visual_prompt_sets, config.n_visual_prompt_tokens) == (4, 4, 2)
    assert config.local_features == "visual_prompts" and config.stage_names == ("visual", "joint")
    assert config.ctx_inits == ["a photo of a", "this is a photo", "this is picture of", "one picture of a"]
    assert not config.add_global_logits and config.sinkhorn_eps == 0.1 and config.sinkhorn_max_iter == 100
