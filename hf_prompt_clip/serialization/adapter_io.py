"""Saving, pushing and loading an adapter: the `AdapterIO` half of `PromptCLIPPreTrainedModel`.

Room: `serialization/`.

An adapter folder holds the adapter tensors (one `model.safetensors`, never CLIP's weights), the config
(which names the base model and its pinned revision), the tokenizer, the image processor and the
`hf_prompt_clip_loader.py` module its `auto_map` names. `save_pretrained` writes it (and with
`push_to_hub=True` uploads it), `push_to_hub` uploads it from a temporary folder, and `from_pretrained`
loads the base CLIP by Hub id + revision or local path, builds the wrapper and loads the adapter, loudly
refusing mismatches (`serialization/loading.py` holds the checks).

`AdapterIO` is a mixin of `PromptCLIPPreTrainedModel` (`modeling/model.py`), placed before transformers'
`PreTrainedModel`, whose `save_pretrained` it calls to write the config. It reads of the model: `config`,
`tokenizer`, `image_processor`, `adapter_state_dict()`, `saved_adapter_state_dict()`, `forget_text_features()`
and the `save_companion_files(folder)` hook.
"""

from __future__ import annotations

import copy
import difflib
import os
import tempfile

import torch
from safetensors.torch import save_file
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel
from transformers.utils import SAFE_WEIGHTS_NAME

from ..core.configuration import PromptCLIPConfig
from ..core.options import option_types
from ..utils.version import __version__
from .card import CARD_FILE, write_model_card
from .loading import (
    IGNORED_LOADING_KWARGS,
    adapter_file,
    check_adapter_config,
    check_adapter_tensors,
    is_commit,
    load_base_clip,
    load_component,
    read_adapter_file,
    resolve_dtype,
    resolved_commit,
    saved_config,
)
from .push import push_adapter_to_hub
from .remote_code import auto_map, write_loader_module

#: `save_pretrained(push_to_hub=True, ...)` arguments that go to the push, not to the config.
PUSH_ARGUMENTS = (
    "repo_id",
    "commit_message",
    "commit_description",
    "private",
    "revision",
    "create_pr",
    "tags",
)

#: `from_pretrained`'s own arguments (offered as corrections of a misspelt keyword).
LOADING_ARGUMENTS = (
    "config",
    "base_model",
    "base_model_revision",
    "dtype",
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "device_map",
    "attn_implementation",
)


class AdapterIO:
    """`save_pretrained`, `push_to_hub` and `from_pretrained` of an adapter folder, and loading adapter
    tensors into a built model (`load_adapter`, `load_adapter_state_dict`)."""

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """Save the adapter folder: config, adapter safetensors, tokenizer, image processor, and the
        `hf_prompt_clip_loader.py` that the config's `auto_map` names (`serialization/remote_code.py`).

        Only the adapter tensors are written (see `saved_adapter_state_dict`) unless an explicit
        `state_dict` is passed, as one `model.safetensors` file (no shards, no variants: loading
        reads that one file). The folder loads back with `AutoModel.from_pretrained(folder)` and
        works with the image pipelines. With `push_to_hub=True` the folder is uploaded too, taking
        `push_to_hub`'s arguments (`repo_id`, `commit_message`, `commit_description`, `private`,
        `token`, `revision`, `create_pr`, `tags`).

        transformers' `max_shard_size`, `save_peft_format` and `save_original_format` are accepted
        and have nothing to do (one small file, no PEFT or legacy layout); `variant`,
        `safe_serialization=False` and `distributed_checkpoint=True` are refused: loading reads one
        `model.safetensors`.
        """
        for name, refused, reason in (
            ("variant", kwargs.pop("variant", None), "loading reads one model.safetensors file"),
            ("safe_serialization=False", kwargs.pop("safe_serialization", True) is False,
             "adapters are written as safetensors only (nothing is pickled)"),
            ("distributed_checkpoint=True", kwargs.pop("distributed_checkpoint", False),
             "the adapter is a few tensors, saved whole by the main process"),
        ):  # fmt: skip
            if refused:
                raise ValueError(f"{type(self).__name__}.save_pretrained does not take {name}: {reason}.")
        for ignored in ("max_shard_size", "save_peft_format", "save_original_format"):
            kwargs.pop(ignored, None)
        if state_dict is None:
            state_dict = self.saved_adapter_state_dict()
        state_dict = {key: value.detach().contiguous() for key, value in state_dict.items()}
        push = {name: kwargs.pop(name, None) for name in PUSH_ARGUMENTS}
        push["token"] = kwargs.get("token")
        # transformers writes the config (and no weights for an empty state dict); the adapter file is
        # written here, under the modules' own names: transformers would rename some submodules' keys
        # to their legacy checkpoint layout (a ViT's), which loading the adapter does not undo
        self.config.auto_map = auto_map(type(self))  # trust_remote_code=True loads it with no setup
        # a trust_remote_code load in this process registered the classes for their Auto class, which would
        # make transformers copy the package's module files here (and fail on their relative imports): the
        # loader module written below is all an adapter carries
        type(self)._auto_class = type(self.config)._auto_class = None
        self.config.hf_prompt_clip_version = __version__  # a newer release's settings are recognised
        super().save_pretrained(save_directory, is_main_process=is_main_process, state_dict={}, **kwargs)
        if not is_main_process:
            return
        write_loader_module(save_directory, type(self))
        save_file(state_dict, os.path.join(save_directory, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(save_directory)
        self.save_companion_files(save_directory)
        if push_to_hub:
            if not os.path.isfile(os.path.join(save_directory, CARD_FILE)):
                write_model_card(save_directory, self.config)
            repo_id = push.pop("repo_id") or os.path.basename(os.path.normpath(save_directory))
            self._last_push_url = push_adapter_to_hub(
                save_directory,
                repo_id,
                private=bool(push.pop("private")),
                create_pr=bool(push.pop("create_pr")),
                **push,
            )

    def save_companion_files(self, save_directory: str | os.PathLike) -> None:
        """Hook: write files of the adapter's own beside the saved folder (another library's form of the same
        tensors, which a stack without this package reads); called by `save_pretrained` after the adapter
        file. Loading never reads them. Default: nothing."""

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = None,
        tags: list[str] | None = None,
        **kwargs,
    ) -> str:
        """Upload the adapter folder (adapter, config, processors, loader module and our model card)
        to `repo_id`, with transformers' arguments; returns the commit (or pull request) URL.

        `revision` is the branch to commit to, created if it does not exist; `create_pr` opens a pull
        request instead; `tags` join the card's tags; `max_shard_size` has nothing to do (one small
        file). Unlike transformers' default, the card is this package's (how to load the adapter, base
        model, `base_model_relation: adapter`), never a generic one. To publish measured results in the
        card, write it first with `hf_prompt_clip.hub.save_model_card` and push the folder with
        `hf_prompt_clip.hub.push_adapter_to_hub`.
        """
        if kwargs:
            raise TypeError(
                f"push_to_hub got unexpected arguments {sorted(kwargs)}; it takes repo_id, commit_message, "
                "commit_description, private, token, revision, create_pr, max_shard_size and tags."
            )
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(
                folder,
                push_to_hub=True,
                repo_id=repo_id,
                private=private,
                token=token,
                commit_message=commit_message,
                commit_description=commit_description,
                revision=revision,
                create_pr=create_pr,
                tags=tags,
            )
        return self._last_push_url

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args,
        config: PromptCLIPConfig | None = None,
        base_model: str | os.PathLike | CLIPModel | None = None,
        base_model_revision: str | None = None,
        dtype: torch.dtype | str | None = None,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str | None = None,
        subfolder: str = "",
        device_map: str | torch.device | None = None,
        attn_implementation: str | None = None,
        **kwargs,
    ):
        """Load an adapter and the frozen base CLIP it points at.

        Args:
            pretrained_model_name_or_path: Hub id or local folder of the adapter.
            base_model: override the base recorded in the config (a Hub id, a local folder, or a
                loaded `CLIPModel`), e.g. a local copy of `openai/clip-vit-base-patch16`.
            base_model_revision: override the recorded base revision.
            dtype: dtype of the frozen CLIP (default float32; `"auto"` keeps the checkpoint's).
                Adapter tensors stay float32. `torch_dtype` is accepted as an older name.
            device_map: a device (`"cuda"`, `"cuda:1"`, `torch.device(...)`) to move the model to,
                or `"auto"` (CUDA when available). The adapter wraps a single CLIP, so a dict
                mapping modules to devices is refused.
            revision, subfolder, cache_dir, token, local_files_only, force_download: for the
                adapter repository; cache and token also apply to the base model.
        """
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes no extra positional arguments.")
        torch_dtype = kwargs.pop("torch_dtype", None)
        if dtype is None:
            dtype = torch_dtype
        if isinstance(device_map, dict):
            raise ValueError(
                f"{cls.__name__}.from_pretrained got a dict device_map, but the adapter wraps a single "
                "CLIP that runs on one device: pass a device (e.g. device_map='cuda') or call .to(device) "
                "on the loaded model."
            )
        unknown = {
            k: v for k, v in kwargs.items() if not k.startswith("_") and k not in IGNORED_LOADING_KWARGS
        }
        path = os.fspath(pretrained_model_name_or_path)
        hub_kwargs = {
            "cache_dir": cache_dir,
            "force_download": force_download,
            "local_files_only": local_files_only,
            "token": token,
            "revision": revision,
            "subfolder": subfolder,
        }
        # the folder must be an adapter of this class: an edited model_type, a base CLIP's config or a method
        # this release lacks is named here (a config passed in, as the Auto classes do, is checked too)
        saved = saved_config(path, hub_kwargs)  # an unreachable Hub: named at once, with its timeouts
        if saved is not None or config is None:
            check_adapter_config(path, saved, builds=cls)
        if config is None:
            config = cls.config_class.from_pretrained(path, **hub_kwargs)
        elif not isinstance(config, cls.config_class):
            raise TypeError(
                f"{cls.__name__} needs a {cls.config_class.__name__}, got {type(config).__name__}."
            )
        config = copy.deepcopy(config)
        for key, value in unknown.items():
            if not hasattr(config, key):
                options = [*option_types(type(config)), *LOADING_ARGUMENTS]
                close = difflib.get_close_matches(key, options, n=3, cutoff=0.6)
                hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
                raise TypeError(
                    f"{cls.__name__}.from_pretrained got an unexpected argument {key!r}{hint}: it takes the "
                    f"loading arguments ({', '.join(LOADING_ARGUMENTS)}) and options of "
                    f"{type(config).__name__} to override. Fix the spelling or drop it."
                )
            setattr(config, key, value)

        clip_model = load_base_clip(
            config,
            base_model,
            base_model_revision,
            dtype=resolve_dtype(dtype),
            attn_implementation=attn_implementation,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        base = {
            "source": clip_model.config._name_or_path or config.base_model_name_or_path,
            "revision": base_model_revision or (None if base_model else config.base_model_revision),
            "cache_dir": cache_dir,
            "token": token,
            "local_files_only": local_files_only,
        }
        # trust_remote_code means nothing to the adapter itself, but a tokenizer or processor with an
        # auto_map needs it: passed on, never swallowed
        trust = kwargs.get("trust_remote_code")
        tokenizer = load_component(AutoTokenizer, "tokenizer_config.json", path, hub_kwargs, base, trust)
        image_processor = load_component(
            AutoImageProcessor, "preprocessor_config.json", path, hub_kwargs, base, trust
        )
        if (
            base_model is None
            and config.base_model_name_or_path
            and not is_commit(config.base_model_revision)
        ):
            commit = resolved_commit(
                config.base_model_name_or_path, config.base_model_revision, cache_dir=cache_dir, token=token
            )
            config.base_model_revision = commit or config.base_model_revision
        model = cls(config, clip_model=clip_model, tokenizer=tokenizer, image_processor=image_processor)
        model.load_adapter(adapter_file(path, hub_kwargs))
        if device_map == "auto":
            if torch.cuda.is_available():
                model.to("cuda")
        elif device_map is not None:
            model.to(device_map)
        return model.eval()

    def _prepare_for_adapter(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Hook before adapter tensors are checked and loaded: a method whose adapter size is only known
        after fitting (Tip-Adapter's cache of N training features) sizes an unfitted model to them."""

    def load_adapter(self, weights_file: str | os.PathLike) -> None:
        """Load adapter tensors from a safetensors file, refusing missing, extra or misshapen ones."""
        self.load_adapter_state_dict(read_adapter_file(weights_file), source=os.fspath(weights_file))

    def load_adapter_state_dict(
        self, state_dict: dict[str, torch.Tensor], source: str = "state dict"
    ) -> None:
        self._prepare_for_adapter(state_dict)
        check_adapter_tensors(self.adapter_state_dict(), state_dict, source, type(self).__name__)
        self.load_state_dict(state_dict, strict=False)
        self.forget_text_features()
