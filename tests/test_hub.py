"""Model cards of adapters and pushing adapter folders, tested offline at the HfApi boundary."""

import types
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from safetensors.torch import save_file

from hf_prompt_clip import CoOpConfig, CoOpModel
from hf_prompt_clip.data import FewShotSelection, get_benchmark
from hf_prompt_clip.hub import (
    SELECTION_FILE,
    build_model_card,
    card_results,
    push_adapter_to_hub,
    save_model_card,
)

BASE = "openai/clip-vit-base-patch16"
RESULTS = [
    {
        "method": "coop",
        "base_model": BASE,
        "dataset": "dtd",
        "protocol": "base2new",
        "shots": 16,
        "synthetic": False,
        "runs": [
            {"seed": 1, "metrics": {"base": 80.1, "new": 60.2, "hm": 68.74}},
            {"seed": 2, "metrics": {"base": 80.5, "new": 59.8, "hm": 68.62}},
        ],
        "mean": {"base": 80.3, "new": 60.0, "hm": 68.68},
        "std": {"base": 0.28, "new": 0.28, "hm": 0.08},
        "hub_datasets": {
            "dtd": {"id": "tanganke/dtd", "config": None, "split": "test", "revision": "d2afa97f"}
        },
    }
]
SYNTHETIC = {
    **{key: value for key, value in RESULTS[0].items() if key != "hub_datasets"},
    "dataset": "shapes",
    "synthetic": True,
    "mean": {"base": 95.5, "new": 71.25, "hm": 81.61},
}
SELECTION = FewShotSelection("dtd", "train", 1, 16, None, list(range(24 * 16)))


@pytest.fixture
def config():
    return CoOpConfig(
        base_model_name_or_path=BASE, base_model_revision="abc123", class_names=["cat", "dog"], n_ctx=4
    )


def front_matter(card: ModelCard) -> dict:
    return yaml.safe_load(REGEX_YAML_BLOCK.search(card.content).group(2))


def model_index_metrics(metadata: dict) -> dict[tuple[str, str], float]:
    """(dataset name, metric name) -> value, from the `model-index` block."""
    (entry,) = metadata["model-index"]
    return {
        (result["dataset"]["name"], metric["name"]): metric["value"]
        for result in entry["results"]
        for metric in result["metrics"]
    }


# ------------------------------------------------------------------------------- model cards


def test_card_metadata_names_library_base_model_and_adapter_relation(config):
    metadata = front_matter(build_model_card(config, results=card_results(RESULTS)))
    assert metadata["library_name"] == "hf_prompt_clip"
    assert metadata["base_model"] == BASE
    assert metadata["base_model_relation"] == "adapter"
    assert metadata["pipeline_tag"] == "image-classification"
    assert {"coop", "clip", "prompt-learning", "image-classification"} <= set(metadata["tags"])


def test_model_index_carries_the_measured_means(config):
    card = build_model_card(config, results=card_results(RESULTS))
    metrics = model_index_metrics(front_matter(card))
    assert metrics == {
        ("dtd", "base accuracy (base-to-new, 16 shots)"): 80.3,
        ("dtd", "new accuracy (base-to-new, 16 shots)"): 60.0,
        ("dtd", "harmonic mean (base-to-new, 16 shots)"): 68.68,
    }
    reloaded = ModelCard(card.content).data.eval_results  # what the Hub's own parser reads back
    assert [(r.metric_type, r.metric_value) for r in reloaded] == [
        ("accuracy", 80.3),
        ("accuracy", 60.0),
        ("accuracy", 68.68),
    ]


def test_card_body_explains_the_adapter_loading_training_selection_and_citation(config):
    card = build_model_card(
        config,
        {"learning_rate": 0.002, "epochs": 50},
        SELECTION.to_dict(),
        results=card_results(RESULTS),
        repo_id="org/coop-dtd",
    )
    text = card.text
    assert "adapter on a frozen CLIP" in text and "`abc123`" in text
    assert "import hf_prompt_clip" in text
    assert 'AutoModel.from_pretrained("org/coop-dtd")' in text
    assert 'pipeline("image-classification", model="org/coop-dtd")' in text
    assert 'hypothesis_template="{}"' in text
    assert "| `n_ctx` | `4` |" in text and "| `learning_rate` | `0.002` |" in text
    assert "| dtd | train | 1 | 16 | 384 |" in text
    assert "80.30 ± 0.28" in text and "79.44" in text  # ours beside the paper's
    assert "synthetic" not in text
    assert "Zhou et al., IJCV 2022" in text and "@article{zhou2022coop" in text and "radford2021clip" in text


def test_model_index_names_the_hub_dataset_read_and_the_card_lists_it(config):
    metadata = front_matter(build_model_card(config, results=card_results(RESULTS)))
    (entry,) = metadata["model-index"]
    (result,) = entry["results"]
    assert result["dataset"] == {
        "name": "dtd",
        "type": "tanganke/dtd",
        "split": "test",
        "revision": "d2afa97f",
    }
    assert metadata["datasets"] == ["tanganke/dtd"]


def validate_offline(card: ModelCard) -> dict:
    """What huggingface_hub checks without the Hub: the YAML parses into `ModelCardData` (the
    `model-index` into `EvalResult`s, which validate their fields), the results write back to the same
    block, and every model and dataset id is a valid repo id. (`ModelCard.validate` asks the Hub.)"""
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
    from huggingface_hub.utils import validate_repo_id

    metadata = front_matter(card)
    parsed = ModelCard(card.content).data
    name, evals = model_index_to_eval_results(metadata["model-index"])
    assert name == parsed.model_name and evals == parsed.eval_results
    assert eval_results_to_model_index(name, evals) == metadata["model-index"]
    for repo_id in [metadata.get("base_model"), *metadata.get("datasets", [])]:
        if repo_id:
            validate_repo_id(repo_id)
    return metadata


def test_cards_pass_huggingface_hubs_own_parsing_and_validation(config):
    from hf_prompt_clip import TINY_CLIP_ID
    from hf_prompt_clip.hub import eval_results_from

    card = build_model_card(config, results=card_results(RESULTS))
    assert ModelCard(card.content).data.eval_results == eval_results_from(RESULTS)
    validate_offline(card)
    config.base_model_name_or_path = TINY_CLIP_ID
    transfer = {
        **RESULTS[0],
        "protocol": "cross_dataset",
        "dataset": "imagenet",
        "mean": {"imagenet": 71.5, "dtd": 45.0},
        "hub_datasets": {
            "imagenet": {
                "id": "ILSVRC/imagenet-1k",
                "config": None,
                "split": "validation",
                "revision": "49e2",
            },
            "dtd": RESULTS[0]["hub_datasets"]["dtd"],
        },
    }
    metadata = validate_offline(build_model_card(config, results=card_results([transfer, SYNTHETIC])))
    types_ = [result["dataset"]["type"] for result in metadata["model-index"][0]["results"]]
    assert types_ == ["ILSVRC/imagenet-1k", "tanganke/dtd", "shapes"]
    assert metadata["datasets"] == ["ILSVRC/imagenet-1k"]  # trained on; the synthetic world is no Hub dataset


def test_a_card_shows_no_absolute_local_path(config, tmp_path):
    base = tmp_path / "my-clip"
    config.base_model_name_or_path = str(base)
    folder = {
        **RESULTS[0],
        "dataset": "imagefolder:flowers",
        "data": f"image folder {str(tmp_path / 'data' / 'flowers')!r} (flat: train only)",
        "hub_datasets": {},
    }
    card = build_model_card(
        config,
        {"output_dir": str(tmp_path / "outputs" / "seed1"), "lr": 0.002},
        results=card_results([folder]),
    )
    assert str(tmp_path) not in card.content
    assert "`my-clip` (a local folder)" in card.text
    assert "image folder 'flowers'" in card.text and "| `output_dir` | `seed1` |" in card.text
    assert "datasets" not in front_matter(card) and "base_model" not in front_matter(card)


def test_synthetic_results_are_labelled_in_card_and_model_index(config):
    card = build_model_card(config, results=card_results([SYNTHETIC]))
    assert "measured on hf_prompt_clip's synthetic offline world" in card.text
    (entry,) = front_matter(card)["model-index"]
    (result,) = entry["results"]
    assert result["dataset"] == {
        "name": "shapes (synthetic)",
        "type": "shapes",
        "config": "synthetic",
        "split": "test",
    }
    assert all("synthetic world" in metric["name"] for metric in result["metrics"])


def test_card_without_results_has_no_model_index_and_a_local_base_is_not_claimed_as_hub_id(config, tmp_path):
    config.base_model_name_or_path = str(tmp_path)
    metadata = front_matter(build_model_card(config))
    assert "model-index" not in metadata and "model_name" not in metadata
    assert "base_model" not in metadata  # the Hub only accepts model ids there


def test_a_shipped_base_model_is_named_by_its_hub_id(config):
    from hf_prompt_clip import TINY_CLIP_ID

    config.base_model_name_or_path = TINY_CLIP_ID
    metadata = front_matter(build_model_card(config))
    assert metadata["base_model"] == TINY_CLIP_ID and metadata["base_model_relation"] == "adapter"


def test_save_model_card_reads_config_and_selection_record_from_the_folder(config, tmp_path):
    config.save_pretrained(tmp_path)
    SELECTION.save(tmp_path / SELECTION_FILE)
    path = save_model_card(tmp_path, results=RESULTS)
    assert path == tmp_path / "README.md"
    text = path.read_text()
    assert f"[`{SELECTION_FILE}`]({SELECTION_FILE})" in text and "| 384 |" in text
    assert (
        model_index_metrics(front_matter(ModelCard(text)))[("dtd", "harmonic mean (base-to-new, 16 shots)")]
        == 68.68
    )


# ------------------------------------------------------------------------------- published cards

ROOT = Path(__file__).resolve().parents[1]


def test_the_model_cards_folder_is_what_the_card_builder_writes(tmp_path):
    """`python -m hf_prompt_clip.hub.published` regenerates model_cards/ without a change."""
    from hf_prompt_clip.hub.published import main, published_adapters, stale_cards, write_published_cards

    assert stale_cards(ROOT / "model_cards") == [], "run python -m hf_prompt_clip.hub.published"
    written = write_published_cards(tmp_path)
    assert sorted(path.name for path in written) == sorted(
        p.name for p in (ROOT / "model_cards").glob("*.md")
    )
    assert all(path.read_text() == (ROOT / "model_cards" / path.name).read_text() for path in written)
    from hf_prompt_clip.core.registry import METHODS

    assert {method for method, _ in published_adapters()} == set(METHODS)  # every method publishes one
    (tmp_path / "retired-adapter.md").write_text("old")
    (tmp_path / written[0].name).write_text("edited")
    assert stale_cards(tmp_path) == sorted([written[0].name, "retired-adapter.md"])
    assert main(["--output-dir", str(tmp_path), "--check"]) == 1
    assert main(["--output-dir", str(tmp_path)]) == 0 and stale_cards(tmp_path) == []


@pytest.mark.parametrize(
    "name", ["cocoop-vitb16-imagenet", "mpfgvc-vitb16-cub200", "zeroshot-vitb16-imagenet"]
)
def test_a_published_card_claims_no_results_and_its_command_runs_its_setting(name, monkeypatch):
    import hf_prompt_clip.runner
    from hf_prompt_clip.cli import main
    from hf_prompt_clip.hub.published import published_adapters, published_card

    method, adapter = next((m, a) for m, a in published_adapters() if a.name == name)
    card = published_card(method, adapter)
    metadata = validate_offline_without_results(card)
    assert "model-index" not in metadata and "Not trained yet" in card.text
    assert metadata["base_model"] == "openai/clip-vit-base-patch16"
    assert metadata["datasets"] == [get_benchmark(adapter.benchmark).hub.repo_id]
    command = card.text.split("```bash\n")[1].split("\n```")[0]
    runs = []
    monkeypatch.setattr(hf_prompt_clip.runner, "run_comparison", lambda config, methods, **kw: runs.append(
        (config, methods)) or [])  # fmt: skip
    monkeypatch.setattr(hf_prompt_clip.runner, "_check_push_access_on_main", lambda repo: None)
    main(command.split()[1:])
    ((config, methods),) = runs
    assert methods == [method] and config.dataset.key == adapter.benchmark
    assert config.shots == adapter.shots or adapter.shots == 0  # zero-shot ignores --shots (records 0)
    assert (config.protocol, tuple(config.targets or ())) == (adapter.protocol, adapter.targets)
    assert (config.base_model, config.base_revision) == (adapter.base_model, adapter.base_revision)
    assert config.push_to_hub == f"hf-prompt-clip/{name}"
    if "epochs" in adapter.training:
        assert config.training.epochs == adapter.training["epochs"]
        assert config.training.batch_size == adapter.training["batch-size"]


def test_published_cards_show_other_backbones_numbers_only_as_not_comparable():
    from hf_prompt_clip.hub.published import published_adapters, published_card

    cards = {a.name: published_card(m, a).text for m, a in published_adapters()}
    tip = cards["tip-adapter-vitb16-imagenet"]
    # Tip-Adapter's authors publish ResNet-50 numbers only: shown, with the backbone named
    assert "| accuracy | 62.01 |" in tip and "CLIP RN50, not this adapter's ViT-B/16" in tip
    assert "training-free cache adapter for CLIP" in tip and "tiny adapter" not in tip
    assert "| accuracy | 65.51 |" in cards["tip-adapter-f-vitb16-imagenet"]
    assert "not directly comparable" not in cards["coop-vitb16-imagenet"]  # CoCoOp's ViT-B/16 table
    assert "What the paper reports" not in cards["linear-probe-vitb16-imagenet"]  # none published


def validate_offline_without_results(card: ModelCard) -> dict:
    from huggingface_hub.utils import validate_repo_id

    metadata = front_matter(card)
    assert ModelCard(card.content).data.to_dict() == metadata
    for repo_id in [metadata["base_model"], *metadata["datasets"]]:
        validate_repo_id(repo_id)
    return metadata


# ------------------------------------------------------------------------------- pushing


@pytest.fixture
def hub_calls(monkeypatch):
    """Record HfApi.create_repo / upload_folder calls instead of reaching the network."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", self.token, repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", self.token, kwargs["repo_id"], kwargs))
        pr = f"https://huggingface.co/{kwargs['repo_id']}/discussions/1" if kwargs.get("create_pr") else None
        return types.SimpleNamespace(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0123", pr_url=pr
        )

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", self.token, repo_id, kwargs))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", create_branch)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_push_creates_the_repo_and_uploads_exactly_the_adapter_folder(clip_parts, tmp_path, hub_calls):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, ["cat", "dog"], tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    folder = tmp_path / "coop-adapter"
    model.save_pretrained(folder)
    save_model_card(folder, model.config)

    url = push_adapter_to_hub(folder, "org/coop-adapter", private=True, token="hf_test", revision="v1")

    assert url == "https://huggingface.co/org/coop-adapter/commit/0123"
    (create, branch, upload) = hub_calls
    assert branch[2:] == ("org/coop-adapter", {"branch": "v1", "exist_ok": True, "repo_type": "model"})
    assert create[:3] == ("create_repo", "hf_test", "org/coop-adapter")
    assert create[3]["private"] is True and create[3]["exist_ok"] is True
    assert upload[:3] == ("upload_folder", "hf_test", "org/coop-adapter")
    kwargs = upload[3]
    assert kwargs["folder_path"] == folder and kwargs["revision"] == "v1"
    assert not {"allow_patterns", "ignore_patterns", "path_in_repo"} & set(kwargs)


def test_push_refuses_a_folder_without_an_adapter(tmp_path, hub_calls):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"lacks model\.safetensors"):
        push_adapter_to_hub(tmp_path, "org/nothing")
    save_file({}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks config\.json"):
        push_adapter_to_hub(tmp_path, "org/nothing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_adapter_to_hub(tmp_path / "missing", "org/nothing")
    assert hub_calls == []


def test_model_push_to_hub_uploads_the_adapter_with_our_card(clip_parts, hub_calls, monkeypatch):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(
        clip,
        ["cat", "dog"],
        tokenizer=tokenizer,
        image_processor=processor,
        n_ctx=2,
        base_model_name_or_path="openai/clip-vit-base-patch16",
    )
    uploaded = {}

    def record(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        uploaded.update({path.name: path.read_text(errors="ignore") for path in folder.iterdir()})
        return types.SimpleNamespace(commit_url="https://huggingface.co/org/x/commit/1")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", record)
    model.push_to_hub("org/coop-cats", private=True)
    assert hub_calls[0][2] == "org/coop-cats" and hub_calls[0][3]["private"] is True
    assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= set(uploaded)
    assert "library_name: hf_prompt_clip" in uploaded["README.md"]
    assert "base_model_relation: adapter" in uploaded["README.md"]


def test_cards_offer_the_zero_shot_pipeline_only_where_classes_can_change():
    from hf_prompt_clip.serialization.card import build_model_card

    shared = CoOpConfig(class_names=["a", "b"], base_model_name_or_path="openai/clip-vit-base-patch16")
    per_class = CoOpConfig(
        class_names=["a", "b"],
        class_specific_context=True,
        base_model_name_or_path="openai/clip-vit-base-patch16",
    )
    assert 'pipeline("zero-shot-image-classification"' in str(build_model_card(shared))
    text = str(build_model_card(per_class))
    assert 'pipeline("zero-shot-image-classification"' not in text and "its class list cannot change" in text


def test_push_access_is_checked_without_creating_anything(monkeypatch):
    from hf_prompt_clip.hub import PushAccessError, check_push_access

    answer = {"name": "me", "orgs": [{"name": "lab"}], "auth": {"accessToken": {"role": "write"}}}
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda self, *a, **k: answer)
    assert check_push_access("me/x") == "me" and check_push_access("lab/x") == "me"
    with pytest.raises(PushAccessError, match=r"may write to \['lab', 'me'\], not to 'other'"):
        check_push_access("other/x")
    answer["auth"]["accessToken"]["role"] = "read"
    with pytest.raises(PushAccessError, match="read-only"):
        check_push_access("me/x")

    def offline(self, *args, **kwargs):
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", offline)
    with pytest.raises(PushAccessError, match=r"did not confirm a login.*hf auth login"):
        check_push_access("me/x")


def test_results_on_your_own_folder_are_listed_as_imagefolder_results():
    from hf_prompt_clip.hub import eval_results_from

    result = {"method": "coop", "dataset": "imagefolder:my_photos", "protocol": "few_shot", "shots": 4,
              "runs": [{"seed": 1, "metrics": {"accuracy": 80.0}}], "mean": {"accuracy": 80.0}, "std": {}}  # fmt: skip
    [entry] = eval_results_from([result])
    assert entry.dataset_type == "imagefolder" and entry.dataset_name == "my_photos (local image folder)"
    assert entry.metric_name == "accuracy (few-shot, 4 shots)"


def test_model_push_to_hub_takes_transformers_arguments(clip_parts, hub_calls):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, ["cat", "dog"], tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    url = model.push_to_hub(
        "org/coop-cats", commit_description="first", create_pr=True, tags=["cats"], max_shard_size="5GB"
    )
    assert url == "https://huggingface.co/org/coop-cats/discussions/1"
    upload = next(call[3] for call in hub_calls if call[0] == "upload_folder")
    assert upload["create_pr"] is True and upload["commit_description"] == "first"
    assert not [call for call in hub_calls if call[0] == "create_branch"]  # a PR needs no branch
    model.push_to_hub(
        "org/coop-cats", revision="experiments"
    )  # a new branch is created, as transformers does
    assert hub_calls[-2][:3] == ("create_branch", None, "org/coop-cats")
    with pytest.raises(ValueError, match="does not take variant"):
        model.save_pretrained("unused", variant="fp16")
    with pytest.raises(TypeError, match="unexpected arguments \\['safe_serialization'\\]"):
        model.push_to_hub("org/x", safe_serialization=False)


def test_pushed_cards_carry_the_given_tags(clip_parts, tmp_path, hub_calls):
    clip, tokenizer, processor = clip_parts
    model = CoOpModel.from_clip(clip, ["cat", "dog"], tokenizer=tokenizer, image_processor=processor, n_ctx=2)
    model.save_pretrained(tmp_path)
    save_model_card(tmp_path, model.config)
    push_adapter_to_hub(tmp_path, "org/x", tags=["cats", "coop"])
    tags = ModelCard.load(tmp_path / "README.md").data.tags
    assert tags.count("coop") == 1 and tags[-1] == "cats"
