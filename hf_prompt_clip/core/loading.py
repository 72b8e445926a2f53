"""Loading an adapter: its base CLIP (by Hub id + revision, local path or shipped alias), its
tokenizer and image processor, and its tensors, refusing anything that does not fit.

`PromptCLIPPreTrainedModel.from_pretrained` and `load_adapter` are built from these functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import CLIPModel
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME
from transformers.utils.hub import cached_file

from .configuration import PromptCLIPConfig

_BASE_MODEL_ALIASES: dict[str, Callable[[], str]] = {}


def register_base_model_alias(name: str, locate: Callable[[], str]) -> None:
    """Let configs name a base model that ships with a package (`locate()` returns its folder), so
    adapters record a portable name instead of a machine's path."""
    _BASE_MODEL_ALIASES[name] = locate


def resolve_base_model(name: str) -> str:
    """The folder of an aliased base model, or `name` itself (a Hub id or a path)."""
    return _BASE_MODEL_ALIASES[name]() if name in _BASE_MODEL_ALIASES else name


class AdapterLoadError(OSError):
    """An adapter folder or file cannot be used with the requested base model."""


# from_pretrained keywords that transformers' Auto classes and pipelines pass along and that
# have no meaning for an adapter wrapper.
IGNORED_LOADING_KWARGS = frozenset(
    {
        "trust_remote_code",
        "adapter_kwargs",
        "use_safetensors",
        "low_cpu_mem_usage",
        "code_revision",
        "proxies",
        "use_fast",
        "weights_only",
        "output_loading_info",
    }
)

_CLIP_SHAPE_KEYS = (
    ("text_config", "hidden_size"),
    ("text_config", "vocab_size"),
    ("text_config", "max_position_embeddings"),
    ("vision_config", "hidden_size"),
    (None, "projection_dim"),
)


def _clip_dimension(config: dict, section: str | None, key: str) -> Any:
    source = config if section is None else config.get(section) or {}
    return source.get(key)


def check_base_compatibility(config: PromptCLIPConfig, base_clip_config: dict, base_name: str) -> None:
    """Refuse a base CLIP whose dimensions differ from those the adapter was built for."""
    if config.clip_config is None:
        return
    mismatches = []
    for section, key in _CLIP_SHAPE_KEYS:
        want = _clip_dimension(config.clip_config, section, key)
        have = _clip_dimension(base_clip_config, section, key)
        if want is not None and have is not None and want != have:
            label = f"{section}.{key}" if section else key
            mismatches.append(f"{label}: adapter {want}, base {have}")
    if mismatches:
        raise AdapterLoadError(
            f"The adapter was built for a CLIP of other dimensions than {base_name} ("
            + "; ".join(mismatches)
            + f"). Load it on its own base model ({config.base_model_name_or_path!r})."
        )


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    return dtype


def is_commit(revision: str | None) -> bool:
    """Whether `revision` is a full commit hash (40 hex digits), not a branch or tag that can move."""
    return bool(revision) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower())


def resolved_commit(source: str, revision: str | None = None, **hub_kwargs) -> str | None:
    """The commit the Hub resolved for a base model id (and branch or tag `revision`), read from the
    path of its cached `config.json` (`.../snapshots/<commit>/config.json`); `None` for a local folder,
    the shipped tiny CLIP (read from the package) or anything not in the Hub cache.

    Example:
        >>> resolved_commit("openai/clip-vit-base-patch16")  # after loading it once
        '57c216476eefef5ab752ec549e440a49ae4ae5f3'
    """
    location = resolve_base_model(source)
    if os.path.isdir(location):
        return None
    hub_kwargs = {key: value for key, value in hub_kwargs.items() if value is not None}
    path = cached_file(
        location,
        CONFIG_NAME,
        revision=revision,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )
    parts = Path(path).parts if path else ()
    if "snapshots" in parts[:-1]:
        commit = parts[parts.index("snapshots") + 1]
        return commit if is_commit(commit) else None
    return None


def hub_failure_advice(error: BaseException) -> str:
    """What to do when reaching the Hub failed: the timeouts that made it slow and the offline switch,
    for a connection failure; with `HF_HUB_OFFLINE=1` set, that only the local cache was searched; the
    error itself otherwise.

    Example:
        >>> hub_failure_advice(OSError("We couldn't connect to 'https://huggingface.co' ..."))
        "the Hub could not be reached (each request waits up to HF_HUB_ETAG_TIMEOUT=10 s ..."
    """
    from huggingface_hub import constants

    text = " ".join(str(error).split())
    unreachable = ("couldn't connect", "connection", "timed out", "timeout", "network", "resolve")
    if not any(word in text.lower() for word in unreachable):
        return text
    if constants.HF_HUB_OFFLINE:  # transformers says "couldn't connect" though it did not try
        return (
            "it is not a folder here, and HF_HUB_OFFLINE=1 is set, so only the local Hub cache was searched, "
            "which does not hold it; unset HF_HUB_OFFLINE (with a network) to download it into the cache, or "
            "pass a local folder"
        )
    etag = os.environ.get("HF_HUB_ETAG_TIMEOUT", "10")
    download = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    return (
        f"the Hub could not be reached ({text[:200]}); each request waits up to HF_HUB_ETAG_TIMEOUT={etag} s "
        f"(metadata) or HF_HUB_DOWNLOAD_TIMEOUT={download} s (files) and is retried. Without a network, set "
        "HF_HUB_OFFLINE=1 to use the local cache at once, or pass a local folder"
    )


def check_model_type(path: str, hub_kwargs: dict | None = None) -> None:
    """Refuse, before transformers' generic "upgrade transformers" message, an adapter whose
    hf-prompt-clip model type this install does not know: naming the release that saved it and the
    upgrade. Anything that is not an hf-prompt-clip config passes unchecked.

    Raises:
        AdapterLoadError: naming the model type, both versions and `pip install -U ...`.
    """
    from transformers import CONFIG_MAPPING

    from .version import __version__, upgrade_advice

    config_file = file_in(path, CONFIG_NAME, {k: v for k, v in (hub_kwargs or {}).items() if v is not None})
    if config_file is None:
        return
    try:
        saved = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # transformers' own loading names a broken file
    model_type = saved.get("model_type") or ""
    if not model_type.startswith("prompt_clip") or model_type in CONFIG_MAPPING:
        return
    version = saved.get("hf_prompt_clip_version")
    by = f"hf-prompt-clip {version}" if version else "another hf-prompt-clip release"
    raise AdapterLoadError(
        f"{path!r} is a {model_type!r} adapter saved by {by}; this is hf-prompt-clip {__version__}, which "
        f"does not know that method. Upgrade: {upgrade_advice(version)} (and `import hf_prompt_clip` before "
        "loading)."
    )


def load_base_clip(
    config: PromptCLIPConfig,
    base_model: str | os.PathLike | CLIPModel | None,
    base_model_revision: str | None,
    **loading_kwargs,
) -> CLIPModel:
    if isinstance(base_model, CLIPModel):
        check_base_compatibility(config, base_model.config.to_dict(), "the given base_model")
        return base_model
    if base_model is not None:
        source, revision = os.fspath(base_model), base_model_revision
    else:
        source = config.base_model_name_or_path
        revision = base_model_revision or config.base_model_revision
    if not source:
        raise AdapterLoadError(
            "The adapter's config names no base model (base_model_name_or_path is empty); pass "
            "base_model='openai/clip-vit-base-patch16' (or the base it was trained on)."
        )
    loading_kwargs = {k: v for k, v in loading_kwargs.items() if v is not None}
    try:
        clip_model = CLIPModel.from_pretrained(
            resolve_base_model(source), revision=revision, **loading_kwargs
        )
    except OSError as error:
        raise AdapterLoadError(
            f"Could not load the base CLIP {source!r} (revision {revision or 'main'}): "
            f"{hub_failure_advice(error)}. Check the id and your network/cache, or pass base_model= a local copy."
        ) from error
    check_base_compatibility(config, clip_model.config.to_dict(), repr(source))
    return clip_model


def file_in(path: str, filename: str, hub_kwargs: dict) -> str | None:
    return cached_file(
        path,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )


def load_component(
    auto_class,
    marker_file: str,
    path: str,
    hub_kwargs: dict,
    base: dict,
    trust_remote_code: bool | None = None,
):
    """Load a tokenizer/image processor from the adapter folder, else from the base model
    (`trust_remote_code` passed on: a tokenizer with an `auto_map` needs it)."""
    extra = {} if trust_remote_code is None else {"trust_remote_code": trust_remote_code}
    if file_in(path, marker_file, hub_kwargs):
        return auto_class.from_pretrained(
            path, **{k: v for k, v in hub_kwargs.items() if v is not None}, **extra
        )
    base_kwargs = {k: v for k, v in base.items() if k != "source" and v}
    return auto_class.from_pretrained(resolve_base_model(base["source"]), **base_kwargs, **extra)


def adapter_file(path: str, hub_kwargs: dict) -> str:
    resolved = file_in(path, SAFE_WEIGHTS_NAME, hub_kwargs)
    if resolved is None:
        raise AdapterLoadError(
            f"No adapter weights file {SAFE_WEIGHTS_NAME!r} in {path!r}"
            + (f" (subfolder {hub_kwargs['subfolder']!r})" if hub_kwargs.get("subfolder") else "")
            + ". Save the adapter with model.save_pretrained(folder), or check the repository id."
        )
    return resolved


def read_adapter_file(weights_file: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an adapter safetensors file, with a clear error for a corrupt or foreign file."""
    try:
        return load_file(os.fspath(weights_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterLoadError(
            f"The adapter file {weights_file} is corrupt or not a safetensors file ({error}). "
            "Save it again with model.save_pretrained(folder) or download it again "
            "(force_download=True)."
        ) from error


def check_adapter_tensors(
    expected: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], source: str, owner: str
) -> None:
    """Refuse adapter tensors that are missing, unexpected, misshapen for `owner` (a class name) or
    non-finite (a diverged training: the pipeline would serve `score: NaN`)."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise AdapterLoadError(
            f"The adapter in {source} does not fit {owner}: "
            f"missing tensors {missing or 'none'}, unexpected tensors {unexpected or 'none'}. "
            "Was it saved by a different method or configuration?"
        )
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise AdapterLoadError(
                f"Adapter tensor {key!r} in {source} has shape {tuple(tensor.shape)}, but this model "
                f"expects {tuple(expected[key].shape)}. The adapter was trained for a different base "
                "model or class list; load it on the base model recorded in its config."
            )
    broken = [
        key
        for key, tensor in state_dict.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        raise AdapterLoadError(
            f"The adapter in {source} holds non-finite values (NaN or infinity) in {broken}: its training "
            "diverged, and it would score NaN. Train it again (a lower learning rate), or load an earlier "
            "checkpoint whose tensors are finite."
        )
