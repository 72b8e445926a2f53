"""Loading an adapter: its base CLIP (by Hub id + revision, local path or shipped alias), its
tokenizer and image processor, and its tensors, refusing anything that does not fit.

Room: `serialization/`.

`PromptCLIPPreTrainedModel.from_pretrained` and `load_adapter` are built from these functions.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import CLIPModel
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME
from transformers.utils.hub import cached_file

from ..core.configuration import PromptCLIPConfig
from ..core.registry import METHODS

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


def _root_cause(error: BaseException) -> BaseException:
    """The first exception of the chain that `error` ends (its `__cause__`s and `__context__`s)."""
    seen = {id(error)}
    while (earlier := error.__cause__ or error.__context__) is not None and id(earlier) not in seen:
        seen.add(id(earlier))
        error = earlier
    return error


def hub_failure_advice(error: BaseException) -> str:
    """What to do when reaching the Hub failed: the timeouts that made it slow and the offline switch,
    for a connection failure (or, with `HF_HUB_OFFLINE=1` set, that the local cache lacks it); the error
    itself otherwise.

    Example:
        >>> hub_failure_advice(OSError("We couldn't connect to 'https://huggingface.co' ..."))
        "the Hub could not be reached (each request waits up to HF_HUB_ETAG_TIMEOUT=10 s ..."
    """
    from huggingface_hub.constants import HF_HUB_CACHE, is_offline_mode

    text = " ".join(str(error).split())
    root = _root_cause(error)
    unreachable = ("couldn't connect", "connection", "timed out", "timeout", "network", "resolve")
    if not any(word in f"{text} {root}".lower() for word in unreachable):
        return text
    # the network's own words (a refused connection, a time-out), not transformers' generic sentence
    cause = f"{type(root).__name__}: {' '.join(str(root).split())}" if root is not error else text
    if is_offline_mode():
        return (
            f"HF_HUB_OFFLINE=1 is set, so the Hub was not asked, and the local cache ({HF_HUB_CACHE}) does not "
            "hold it. Download it once with a network (HF_HUB_OFFLINE unset), or pass a local folder"
        )
    etag = os.environ.get("HF_HUB_ETAG_TIMEOUT", "10")
    download = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    return (
        f"the Hub could not be reached ({cause[:200]}); each request waits up to HF_HUB_ETAG_TIMEOUT={etag} s "
        f"(metadata) or HF_HUB_DOWNLOAD_TIMEOUT={download} s (files) and is retried. Without a network, set "
        "HF_HUB_OFFLINE=1 to use the local cache at once, or pass a local folder"
    )


#: What every hf-prompt-clip config's `model_type` starts with (`prompt_clip_coop`, ...).
ADAPTER_TYPE_PREFIX = "prompt_clip"


def saved_config(path: str, hub_kwargs: dict | None = None) -> dict | None:
    """The `config.json` of an adapter folder or Hub repository as a dict; `None` when it has none.

    The Hub is asked once: when it cannot be reached the error comes at once, naming the timeouts that
    applied and the offline switch (`hub_failure_advice`), instead of a second wait in transformers.

    Args:
        path: a local folder or Hub id.
        hub_kwargs: `revision`, `subfolder`, `cache_dir`, `token`, `local_files_only`, `force_download`.

    Raises:
        AdapterLoadError: the Hub could not be reached (or the repository or revision does not exist), or
            the file is not a JSON object.

    Example:
        >>> saved_config("outputs/run/coop/seed1/adapter")["model_type"]
        'prompt_clip_coop'
    """
    kwargs = {key: value for key, value in (hub_kwargs or {}).items() if value is not None}
    try:
        config_file = cached_file(path, CONFIG_NAME, **kwargs)  # None when there is no config.json
    except OSError as error:
        raise AdapterLoadError(
            f"Could not read the config of {path!r}: {hub_failure_advice(error)}."
        ) from error
    if config_file is None:
        return None
    try:
        saved = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        saved, reason = None, f"{type(error).__name__}: {error}"
    else:
        reason = f"it holds a JSON {type(saved).__name__}"
    if not isinstance(saved, dict):
        raise AdapterLoadError(
            f"The config {config_file} is not a JSON object ({reason}). Save the adapter again with "
            "save_pretrained, or download it again (force_download=True)."
        )
    return saved


def _auto_map_type(saved: dict) -> tuple[str, str] | None:
    """(config class name, its model type) of the registered config that the saved `auto_map` names."""
    named = str((saved.get("auto_map") or {}).get("AutoConfig", "")).rpartition(".")[2]
    for config_class, _ in METHODS.values():
        if config_class.__name__ == named:
            return named, config_class.model_type
    return None


def _restore_hint(saved: dict, model_type: str | None, known: list[str]) -> str:
    """A sentence on the model type a damaged config most likely had: the one of the config class its
    `auto_map` names, else the closest registered type."""
    import difflib

    named = _auto_map_type(saved)
    if named is not None and named[1] != model_type:
        return (
            f" Its auto_map names {named[0]}, whose model_type is {named[1]!r}: if that is the adapter, "
            f'restore "model_type": "{named[1]}" in its config.json (or save it again).'
        )
    close = difflib.get_close_matches(model_type or "", known, n=1, cutoff=0.8)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_method_message(path: str, model_type: str, saved: dict) -> str:
    """Why an adapter of a model type no registered method has cannot load, and whether upgrading helps:
    it does when a newer release saved it; it cannot when this release is as new as the one that saved it.

    Example:
        >>> unknown_method_message("a", "prompt_clip_from_the_future", {"hf_prompt_clip_version": "9.0.0"})
        "'a' is a 'prompt_clip_from_the_future' adapter saved by hf-prompt-clip 9.0.0; ... pip install -U ..."
    """
    from ..utils.version import __version__, compare_releases, upgrade_advice

    known = sorted(config_class.model_type for config_class, _ in METHODS.values())
    hint = _restore_hint(saved, model_type, known)
    version = saved.get("hf_prompt_clip_version")
    order = compare_releases(version if isinstance(version, str) else None, __version__)
    if order is not None and order > 0:
        return (
            f"{path!r} is a {model_type!r} adapter saved by hf-prompt-clip {version}; this is hf-prompt-clip "
            f"{__version__}, which does not know that method. Upgrade: {upgrade_advice(version)} (and "
            "`import hf_prompt_clip` before loading)."
        )
    if order is not None:
        return (
            f"{path!r} is a {model_type!r} adapter saved by hf-prompt-clip {version}, and the installed "
            f"hf-prompt-clip {__version__} ({'that release' if order == 0 else 'a newer one'}) has no method of "
            "that model type, so upgrading will not help: its config.json was edited, or the method comes from "
            f"another package, which must be imported before loading to register it.{hint}"
        )
    recorded = (
        f"records hf_prompt_clip_version {version!r}, not a release" if version else "records no release"
    )
    return (
        f"{path!r} is a {model_type!r} adapter that {recorded} (hf_prompt_clip_version), and hf-prompt-clip "
        f"{__version__} has no method of that model type. Upgrading helps only if a newer release added it "
        f"({upgrade_advice(None)}); otherwise its config.json was edited, or the method comes from another "
        f"package, which must be imported before loading to register it.{hint}"
    )


def check_adapter_config(path: str, saved: dict | None, builds: type | None = None) -> None:
    """Refuse a folder or repository whose saved config is not that of an hf-prompt-clip adapter of a
    method this install knows or, given `builds`, not of that model class: saying what it is and what was
    expected, before transformers' generic messages ("contains custom code", "upgrade transformers") or a
    model of the wrong class.

    Args:
        path: the adapter folder or Hub id (named in the message).
        saved: its `config.json` as a dict (`saved_config`); `None` (no config.json) is refused.
        builds: the model class that will be built (`CoOpModel`); `None` for any registered method.

    Raises:
        AdapterLoadError: naming the folder, its `model_type` and the one expected.

    Example:
        >>> check_adapter_config("clip-folder", {"model_type": "clip"})
        AdapterLoadError: 'clip-folder' is a transformers 'clip' model, not an hf-prompt-clip adapter ...
    """
    classes = {config_class.model_type: model_class for config_class, model_class in METHODS.values()}
    expected = getattr(getattr(builds, "config_class", None), "model_type", None) or None
    wanted = (
        f"{builds.__name__} loads model_type {expected!r}"
        if expected
        else f"an adapter's config names its method, model_type '{ADAPTER_TYPE_PREFIX}_<method>'"
    )
    if saved is None:
        raise AdapterLoadError(
            f"{path!r} holds no config.json, so it is no saved adapter ({wanted}; save_pretrained writes "
            "config.json beside model.safetensors). Give the folder or Hub repository an adapter was saved in."
        )
    model_type = saved.get("model_type")
    if not model_type or not isinstance(model_type, str):
        raise AdapterLoadError(
            f"{path!r} is no hf-prompt-clip adapter as saved: its config.json names no model_type ({wanted})."
            + (_restore_hint(saved, None, sorted(classes)) or " Save the adapter again with save_pretrained.")
        )
    if not model_type.startswith(ADAPTER_TYPE_PREFIX):
        base = (
            f" A CLIP is a base model: build an adapter on it (`hf-prompt-clip train --base-model {path}`, "
            f"or <Method>Model.from_clip({path!r}, class_names)) and load the folder that saves."
            if model_type == "clip"
            else ""
        )
        raise AdapterLoadError(
            f"{path!r} is a transformers {model_type!r} model (config.json model_type), not an hf-prompt-clip "
            f"adapter ({wanted}).{base}"
        )
    if model_type not in classes:
        raise AdapterLoadError(unknown_method_message(path, model_type, saved))
    if expected and model_type != expected:
        found = classes[model_type].__name__
        raise AdapterLoadError(
            f"{path!r} is a {model_type!r} adapter ({found}), but {builds.__name__}.from_pretrained builds "
            f"{expected!r} adapters. Load it with {found}.from_pretrained, or with AutoModel.from_pretrained "
            "after `import hf_prompt_clip` (no trust_remote_code needed); if its config.json was edited, "
            "restore its model_type."
        )


def pickle_refusal(source: str, error: BaseException) -> str:
    """Why a base model whose weights are a pickle that torch's weights-only loading refused is not
    loaded, and a command that converts it to a safetensors folder (to run only on a trusted file:
    converting unpickles it, so its code runs).

    Example:
        >>> pickle_refusal("old-clip", pickle.UnpicklingError("... unsupported GLOBAL posix.system ..."))
        "'old-clip' holds its weights as a pickle (pytorch_model.bin) that torch's weights-only loading ..."
    """
    location = resolve_base_model(source)
    local = os.path.isdir(location)
    pickles = (
        sorted(p for p in Path(location).iterdir() if p.suffix in (".bin", ".pt", ".pth")) if local else []
    )
    files = f" ({', '.join(p.name for p in pickles)})" if pickles else ""
    found = re.search(r"unsupported global [^\s]+", str(error), flags=re.IGNORECASE)
    reason = found.group(0) if found else " ".join(str(error).split())[:160]
    target = f"{os.path.normpath(location)}-safetensors" if local else "clip-safetensors"
    # transformers 5 does not pass from_pretrained(weights_only=False) on to a .bin: torch.load it directly
    paths = repr([str(p) for p in pickles]) if pickles else "[hf_hub_download(source, 'pytorch_model.bin')]"
    convert = (
        "import torch; from huggingface_hub import hf_hub_download; "
        "from transformers import CLIPConfig, CLIPModel, CLIPProcessor; "
        f"source, target, state = {location!r}, {target!r}, {{}}; "
        f"[state.update(torch.load(path, weights_only=False)) for path in {paths}]; "
        "CLIPModel.from_pretrained(None, config=CLIPConfig.from_pretrained(source), "
        "state_dict={k: v for k, v in state.items() if torch.is_tensor(v)}).save_pretrained(target); "
        "CLIPProcessor.from_pretrained(source).save_pretrained(target)"
    )
    return (
        f"{source!r} holds its weights as a pickle{files} that torch's weights-only loading refused ({reason}): "
        "base models are loaded from safetensors files, or from pickles of plain tensors only, never by running "
        f'a pickle\'s code. Only if you trust the file, convert it once: python -c "{convert}" (weights_only=False '
        f"runs the pickle; the new folder holds model.safetensors and the processors), then use {target!r}"
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
    except pickle.UnpicklingError as error:
        raise AdapterLoadError(f"Could not load the base CLIP: {pickle_refusal(source, error)}.") from error
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


def dtype_kind(dtype: torch.dtype) -> str:
    """The kind of a dtype: `"floating point"`, `"complex"`, `"boolean"` or `"integer"`. A saved tensor must
    be of the kind the model holds it as (a float16 copy of a float32 tensor is fine, an int64 one is not).

    Example:
        >>> dtype_kind(torch.bfloat16), dtype_kind(torch.int32), dtype_kind(torch.bool)
        ('floating point', 'integer', 'boolean')
    """
    if dtype.is_floating_point:
        return "floating point"
    if dtype.is_complex:
        return "complex"
    return "boolean" if dtype == torch.bool else "integer"


def check_adapter_tensors(
    expected: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], source: str, owner: str
) -> None:
    """Refuse adapter tensors that are missing, unexpected, misshapen for `owner` (a class name), stored
    as another kind of dtype than the model's (`dtype_kind`: an integer `context` would be cast silently) or
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
    for key, tensor in state_dict.items():
        stored, wanted = dtype_kind(tensor.dtype), dtype_kind(expected[key].dtype)
        if stored != wanted:
            raise AdapterLoadError(
                f"Adapter tensor {key!r} in {source} is stored as {tensor.dtype} ({stored}), but {owner} holds "
                f"it as {expected[key].dtype} ({wanted}); casting it would load other values than were saved. "
                "The file was not written by this method's save_pretrained (or was edited): save the adapter "
                "again."
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
