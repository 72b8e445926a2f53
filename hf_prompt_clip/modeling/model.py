"""`PromptCLIPPreTrainedModel`: a frozen `CLIPModel` plus a small trainable adapter.

Room: `modeling/`.

What every method inherits:

- the frozen CLIP (`self.clip`), its tokenizer and image processor;
- the class list (`set_class_names`, `using_class_names`) kept in step with `config.id2label`;
- `forward(pixel_values, labels=None, input_ids=None)` returning a `PromptCLIPOutput`, usable by
  the `image-classification` and `zero-shot-image-classification` pipelines;
- adapter-only saving (`save_pretrained` writes the adapter tensors, config, tokenizer and image
  processor, never CLIP's weights) and loading (`from_pretrained` loads the base CLIP by Hub id +
  revision or local path, builds the wrapper and loads the adapter, loudly refusing mismatches), from
  the `AdapterIO` mixin (`serialization/adapter_io.py`);
- training stages that name their trainable parameters.

A method subclass implements `_build_class_prompts(class_names)` and either
`class_text_features()` (prompts that do not depend on the image) or
`logits_from_image_features(features)`; methods with several image-tower passes override
`classify(pixel_values)`.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    CLIPModel,
    PreTrainedModel,
)

from ..caching.feature_cache import FrozenFeaturesUnavailable, module_digest
from ..core.capabilities import Capabilities
from ..core.class_names import validate_class_names
from ..core.configuration import PromptCLIPConfig, check_config_keywords
from ..core.options import check_option_value, option_types
from ..serialization.adapter_io import AdapterIO
from ..serialization.loading import (
    AdapterLoadError,
    check_base_compatibility,
    hub_failure_advice,
    is_commit,
    pickle_refusal,
    resolve_base_model,
    resolve_dtype,
    resolved_commit,
)
from ..utils.settings import SettingError
from .class_prompts import ClassPrompts
from .fitting import FitData
from .image_dtype import dtype_name, resolve_image_dtype
from .merging import Merging
from .outputs import PromptCLIPOutput
from .stages import TrainingStage, stages_from_overrides
from .vision import encode_image_tokens

#: `from_clip`'s own arguments (offered as corrections of a misspelt keyword).
FROM_CLIP_ARGUMENTS = (
    "class_names",
    "prompt_names",
    "revision",
    "tokenizer",
    "image_processor",
    "dtype",
    "base_model_name_or_path",
    "cache_dir",
    "token",
)

__all__ = ["FROM_CLIP_ARGUMENTS", "PromptCLIPPreTrainedModel"]


class PromptCLIPPreTrainedModel(ClassPrompts, Merging, AdapterIO, PreTrainedModel):
    """Base class of every prompt learner: a frozen CLIP and a trainable adapter around it.

    Args:
        config: the method's config (a `PromptCLIPConfig` subclass).
        clip_model: the base `CLIPModel`. If omitted, one is built from `config.clip_config` with
            random weights (as `AutoModel.from_config` does); `from_pretrained` passes the loaded one.
        tokenizer: the base model's tokenizer, needed to turn class names into prompts.
        image_processor: the base model's image processor, saved with the adapter for pipelines.
    """

    config_class = PromptCLIPConfig
    base_model_prefix = "prompt_clip"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # CLIP submodules that a method trains; their weights are saved with the adapter.
    adapter_clip_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        config: PromptCLIPConfig,
        clip_model: CLIPModel | None = None,
        tokenizer: Any = None,
        image_processor: Any = None,
    ):
        super().__init__(config)
        if clip_model is None:
            clip_model = CLIPModel(config.build_clip_config())
        elif config.clip_config is None:
            config.clip_config = clip_model.config.to_dict()
        else:
            check_base_compatibility(config, clip_model.config.to_dict(), "the given clip_model")
        self.clip = clip_model
        self.clip.requires_grad_(False)
        for name in self.adapter_clip_modules:  # trained CLIP parts stay float32, as every adapter tensor
            getattr(self.clip, name).float()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self._init_class_prompts()

    def init_weights(self):
        # The frozen CLIP arrives initialised (or loaded); methods initialise their own tensors in
        # __init__. transformers' default would re-initialise CLIP here.
        pass

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_clip(
        cls,
        clip_model: str | os.PathLike | CLIPModel,
        class_names: list[str] | None = None,
        *,
        prompt_names: list[str] | None = None,
        revision: str | None = None,
        tokenizer: Any = None,
        image_processor: Any = None,
        dtype: torch.dtype | str | None = None,
        base_model_name_or_path: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        **method_kwargs,
    ):
        """Build a new (untrained) prompt learner around a CLIP model.

        Args:
            clip_model: Hub id (e.g. `"openai/clip-vit-base-patch16"`), local folder, or a loaded
                `CLIPModel` (then pass `tokenizer` and `image_processor`, or they are loaded from
                its `name_or_path`).
            class_names: names of the classes in label order (unique).
            prompt_names: the text of each class in prompts, if it differs from its label.
            revision: branch, tag or commit of the base model on the Hub (recorded in the config).
            cache_dir, token: passed to the Hub when loading the base model by id.
            base_model_name_or_path: what the config records as the base (defaults to `clip_model`
                when it is an id or path, else the model's `name_or_path`).
            **method_kwargs: fields of the method's config (e.g. `n_ctx=16` for CoOp), checked against
                their types; an unknown keyword is refused naming the closest valid ones.

        Example:
            ```python
            from hf_prompt_clip import CoOpModel
            model = CoOpModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"], n_ctx=4,
                                        ctx_init="a photo of a")
            ```
        """
        # refuse typos, values of the wrong type and bad class lists before loading anything
        check_config_keywords(
            cls.config_class, method_kwargs, f"{cls.__name__}.from_clip", also=FROM_CLIP_ARGUMENTS
        )
        for name, value in method_kwargs.items():
            if name in option_types(cls.config_class):
                method_kwargs[name] = check_option_value(cls.config_class, name, value)
        if class_names is not None:
            class_names = validate_class_names(class_names)
        hub_kwargs = {"revision": revision, "cache_dir": cache_dir, "token": token}
        if isinstance(clip_model, (str, os.PathLike)):
            source = os.fspath(clip_model)
            try:
                clip_model = CLIPModel.from_pretrained(
                    resolve_base_model(source), dtype=resolve_dtype(dtype), **hub_kwargs
                )
            except pickle.UnpicklingError as error:
                raise AdapterLoadError(
                    f"{cls.__name__}.from_clip could not load the CLIP: {pickle_refusal(source, error)}."
                ) from error
            except OSError as error:
                raise AdapterLoadError(
                    f"{cls.__name__}.from_clip could not load the CLIP {source!r}: {hub_failure_advice(error)}."
                ) from error
        else:
            source = clip_model.config._name_or_path or None
        if tokenizer is None or image_processor is None:
            if not source:
                raise ValueError(
                    "Pass tokenizer= and image_processor= with a CLIPModel object that was not "
                    "loaded with from_pretrained (its name_or_path is unknown)."
                )
            location = resolve_base_model(source)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(location, **hub_kwargs)
            image_processor = image_processor or AutoImageProcessor.from_pretrained(location, **hub_kwargs)
        config = cls.config_class(
            base_model_name_or_path=base_model_name_or_path or source,
            # the commit the Hub resolved (a branch moves): the adapter always finds the exact base
            base_model_revision=(
                revision
                if is_commit(revision) or not source
                else resolved_commit(source, revision, cache_dir=cache_dir, token=token) or revision
            ),
            clip_config=clip_model.config.to_dict(),
            class_names=class_names,
            prompt_names=prompt_names,
            **method_kwargs,
        )
        model = cls(config, clip_model=clip_model, tokenizer=tokenizer, image_processor=image_processor)
        if config.class_names:
            model._ensure_class_prompts()  # fail now on names that do not fit the text encoder
        return model

    @property
    def capabilities(self) -> Capabilities:
        """What generic code needs to know about this model (`capabilities_of(self.config)`)."""
        return type(self).capabilities_of(self.config)

    @classmethod
    def capabilities_of(cls, config: PromptCLIPConfig) -> Capabilities:
        """The facts of a model of this class with `config`: the config's own (`config.capabilities`), plus
        what only the model class can tell: a training loss without an image-features variant (it overrides
        `logits_and_loss` but not `logits_and_loss_from_image_features`) cannot train from cached features.

        Example:
            ```python
            CoOpModel.capabilities_of(CoOpConfig()).cached_features_problem   # None: --augment-views works
            ```
        """
        found = config.capabilities
        if found.cached_features_problem is None:
            loss_owner = next(c for c in cls.__mro__ if "logits_and_loss" in vars(c))
            features_owner = next(c for c in cls.__mro__ if "logits_and_loss_from_image_features" in vars(c))
            if loss_owner is not features_owner and issubclass(loss_owner, features_owner):
                found = dataclasses.replace(
                    found,
                    features_training_problem=(
                        f"its training loss ({loss_owner.__name__}.logits_and_loss) has no image-features "
                        "variant (logits_and_loss_from_image_features), so a loss from cached features would differ"
                    ),
                )
        return found

    def training_crop_scale(self, benchmark_scale: tuple[float, float]) -> tuple[float, float]:
        """The area range of the random resized crop of the training transform: the benchmark's
        (`BenchmarkSpec.crop_scale`, CoOp's (0.08, 1) on the real benchmarks) unless the method's protocol
        fixes its own (Tip-Adapter's augmented views: (0.5, 1))."""
        return benchmark_scale

    def fit(self, data: FitData) -> dict[str, Any]:
        """Hook of a `"fit"` training stage: fit the adapter from `data` (no optimiser of the trainer's)
        and return a JSON-able record of what was chosen (logged and kept in the trainer's state).

        The trainer calls it on every process with the same data; the main process's adapter tensors
        and config values are then shared, so every process holds the same model."""
        raise NotImplementedError(
            f"{type(self).__name__} has a 'fit' training stage but does not implement fit(data)."
        )

    def frozen_image_encoder(self) -> tuple[str, Any]:
        """`(identity, encode)` of the frozen image features the method classifies from, read through the
        feature cache by fits and by evaluation.

        The contract: `encode` maps pixel values `(B, 3, H, W)` to features `(B, E)` (default: `encode_images`,
        i.e. `get_image_features`) such that `logits_from_image_features(encode(x))` are exactly
        `classify(x)`'s logits, and the identity names that computation and the weights, dtype and device it
        runs with (`caching.feature_cache.module_digest`), so methods reading the same features share them.

        Raises:
            FrozenFeaturesUnavailable: the method trains its image tower (`Capabilities.trains_image_tower`),
                or classifies from more than these features (a method overriding this hook says why).
        """
        if self.capabilities.trains_image_tower:
            raise FrozenFeaturesUnavailable(
                f"{type(self).__name__} trains its image tower, so its image features change with training "
                "and cannot be cached."
            )
        return f"projected|{self.image_tower_digest()}", self.encode_images

    def training_image_encoder(self) -> tuple[str, Any]:
        """`frozen_image_encoder()` for gradient training from cached features (`--augment-views`): with it,
        `logits_and_loss_from_image_features(encode(x), labels)` equals `logits_and_loss(x, labels)` (logits,
        loss and gradients).

        Returns:
            `(identity, encode)`: the feature cache's encoder identity and pixel values `(B, 3, H, W)` ->
            features `(B, E)`.

        Raises:
            FrozenFeaturesUnavailable: `capabilities.cached_features_problem` names a problem for this config,
                or `frozen_image_encoder` refuses.

        Training from features computes `logits_and_loss_from_image_features(encode(x), labels)` where the
        pixel path computes `logits_and_loss(x, labels)`: the same loss (and gradients) when the image path is
        frozen (`frozen_image_encoder`'s contract) and the training loss has a features variant.
        """
        problem = self.capabilities.cached_features_problem
        if problem is not None:
            raise FrozenFeaturesUnavailable(
                f"{type(self).__name__} cannot train from cached image features: {problem}."
            )
        return self.frozen_image_encoder()

    @property
    def image_dtype(self) -> torch.dtype | None:
        """The dtype `set_image_dtype` runs the frozen image tower in (`None`: it was never set)."""
        return getattr(self, "_image_dtype", None)

    def set_image_dtype(self, dtype: torch.dtype | str) -> None:
        """Run only the frozen image tower (`clip.vision_model` and `clip.visual_projection`) in `dtype`.

        The tower's weights are cast once; pixel values are cast on the way in and features come back in
        float32, so the text side and the adapter see what they always do. The setting is not saved with
        the adapter (the adapter holds its own tensors only): a loaded model runs in its default dtype
        unless asked again. The features are part of the feature cache's key (their weights' dtype is in
        `image_tower_digest`).

        Args:
            dtype: `"float32"` (no change), `"bfloat16"` / `"bf16"` or `"float16"` / `"fp16"`, or a torch dtype.

        Raises:
            ValueError: the method trains through its image tower (`Capabilities.trains_image_tower`): its
                gradients would run in that dtype too.

        Example:
            ```python
            model = CoOpModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
            model.set_image_dtype("bf16")          # the image tower in bfloat16, features in float32
            ```
        """
        target = resolve_image_dtype(dtype)
        if self.capabilities.trains_image_tower and target != torch.float32:
            raise SettingError(
                f"{type(self).__name__} trains through its image tower (its gradients would run in "
                f"{dtype_name(target)}), so the tower cannot run in another dtype: keep {{image_dtype='float32'}} "
                "for this method, or use mixed precision ({mixed_precision='bf16'}) instead."
            )
        self.clip.vision_model.to(target)
        self.clip.visual_projection.to(target)
        self._image_dtype = target

    def image_output(self, features: torch.Tensor) -> torch.Tensor:
        """Image-tower output as the rest of the model reads it: float32 when `set_image_dtype` chose another
        dtype, else unchanged."""
        return features.float() if self.image_dtype not in (None, torch.float32) else features

    def image_tower_digest(self) -> str:
        """`module_digest` of CLIP's image tower and projection, remembered while their tensors are unchanged."""
        modules = (self.clip.vision_model, self.clip.visual_projection)
        state = tuple(
            (t.data_ptr(), t._version, t.dtype, t.device)
            for m in modules
            for t in [*m.parameters(), *m.buffers()]
        )
        memo = getattr(self, "_image_digest_memo", None)
        if memo is None or memo[0] != state:
            memo = (state, module_digest(*modules))
            self._image_digest_memo = memo
        return memo[1]

    def train(self, mode: bool = True):
        """`nn.Module.train`, except that frozen parts (every submodule whose parameters are all
        frozen, e.g. CLIP's text tower) stay in eval mode: a frozen backbone keeps its inference
        behaviour (no dropout) while the adapter trains."""
        super().train(mode)
        if mode:
            _frozen_to_eval(self)
        return self

    # ------------------------------------------------------------------ features and logits

    @property
    def text_device(self) -> torch.device:
        return self.clip.text_projection.weight.device

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image features `(B, E)` (`get_image_features`, through the shared image-tower path
        of `modeling/vision.py`); a frozen image tower runs in `torch.inference_mode` (no autograd records, no
        version counters), and its `(B, E)` output is cloned into a normal tensor, which may then enter
        autograd (CoCoOp's meta-net and CLIP-Adapter's MLP save it for their weight gradients; inference
        tensors cannot be saved). Under `torch.compile` (or `accelerate launch --dynamo_backend ...`) it runs
        under `torch.no_grad` instead: compiled graphs cannot hold inference tensors."""
        if any(m.startswith("vision") for m in self.adapter_clip_modules):
            return self.image_output(encode_image_tokens(self.clip, pixel_values).pooled)
        frozen = torch.no_grad() if torch.compiler.is_compiling() else torch.inference_mode()
        with frozen:
            features = self.image_output(encode_image_tokens(self.clip, pixel_values).pooled)
        return features.clone()

    def similarity_logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """`logit_scale * normalize(image) @ normalize(text).T`: `(B, E) x (K, E) -> (B, K)`."""
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = F.normalize(text_features.float(), dim=-1)
        return self.clip.logit_scale.exp().float() * image_features @ text_features.T

    def class_text_features(self) -> torch.Tensor:
        """Text features `(K, E)` of the current classes (methods whose prompts ignore the image)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no class text features that serve every image (its prompts depend on "
            "the image, or it classifies otherwise): use classify(pixel_values) or "
            "logits_from_image_features(features)."
        )

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits `(B, K)` for a batch of images `(B, 3, H, W)`."""
        return self.logits_from_image_features(self.encode_images(pixel_values))

    def logits_from_image_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """Class logits `(B, K)` from projected image features `(B, E)` (e.g. cached ones)."""
        return self.similarity_logits(image_features, self.class_text_features())

    def zero_shot_logits(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits `(B, N)` against N texts given as token ids (the zero-shot pipeline's input).

        Learned prompts treat each text as a class name: the pipeline's `candidate_labels` with
        `hypothesis_template="{}"` classify exactly as `set_class_names(candidate_labels)` does.
        """
        if not self.capabilities.classifies_texts:
            raise ValueError(
                f"This {type(self).__name__} learned parameters per class, so it classifies its own fixed "
                "classes, not free texts: use the image-classification pipeline (or a prompt learner "
                "whose classes can change, such as CoOp, for zero-shot-image-classification)."
            )
        if self.tokenizer is None:
            raise ValueError("Classifying free texts needs the tokenizer: set model.tokenizer first.")
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        texts = [text.strip() for text in texts]
        with self.using_class_names(texts):
            return self.classify(pixel_values)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
        image_features: torch.Tensor | None = None,
        **kwargs,
    ) -> PromptCLIPOutput:
        """Classify images among the model's classes, or among texts given as `input_ids`.

        Args:
            pixel_values: `(B, 3, H, W)` images prepared by the base model's image processor.
            labels: `(B,)` class indices; when given, `loss` is the training loss (the cross-entropy,
                plus a method's own terms).
            input_ids: `(N, L)` token ids of candidate texts (zero-shot pipeline); the logits are
                then over those N texts instead of the model's classes.
            image_features: instead of `pixel_values`, `(B, E)` frozen image features from
                `training_image_encoder()` (cached views, `--augment-views`): the logits and loss are
                `logits_and_loss_from_image_features`'s, equal to those of the pixels they were encoded from.

        Returns:
            `PromptCLIPOutput` with `logits` and `logits_per_image` `(B, K)`.
        """
        if image_features is not None:
            if pixel_values is not None or input_ids is not None:
                raise ValueError(
                    "forward() takes image_features (cached frozen features) or pixel_values (with input_ids for "
                    "free texts), not both: pass one of them."
                )
            logits, loss = self.logits_and_loss_from_image_features(image_features, labels)
            output = PromptCLIPOutput(
                loss=loss, logits=logits, logits_per_image=logits, logits_per_text=logits.T
            )
            return output if return_dict is not False else output.to_tuple()
        if pixel_values is None:
            raise ValueError(
                "forward() needs pixel_values: images prepared by the image processor (or image_features, "
                "frozen features from training_image_encoder())."
            )
        if input_ids is not None:
            if input_ids.shape[0] == 0:  # no text to score against (the pipeline's candidate_labels=[])
                from .pipelines import candidate_labels_problem

                raise ValueError(f"input_ids holds no text: {candidate_labels_problem([])}")
            logits = self.zero_shot_logits(pixel_values, input_ids, attention_mask)
            loss = None if labels is None else self.classification_loss(logits, labels)
        else:
            logits, loss = self.logits_and_loss(pixel_values, labels)
        output = PromptCLIPOutput(loss=loss, logits=logits, logits_per_image=logits, logits_per_text=logits.T)
        return output if return_dict is not False else output.to_tuple()

    def logits_and_loss(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits `(B, K)` and, with labels, the training loss (cross-entropy of the logits).

        Methods whose training objective is more than that (MP-FGVC's stage losses) override this.
        """
        logits = self.classify(pixel_values)
        return logits, None if labels is None else self.classification_loss(logits, labels)

    def logits_and_loss_from_image_features(
        self, image_features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`logits_and_loss` from frozen image features instead of pixels (training on cached views,
        `--augment-views`): equal to `logits_and_loss(x, labels)` for `image_features = encode(x)` of
        `training_image_encoder()`. A method whose training loss is its own (KgCoOp's L_kg term) overrides
        both.

        Args:
            image_features: `(B, E)` features from `frozen_image_encoder()`'s `encode` (e.g. cached ones).
            labels: `(B,)` class indices, or `None` (logits only).

        Returns:
            logits `(B, K)` and the loss (a scalar), or `None` without labels.

        Example:
            ```python
            identity, encode = model.training_image_encoder()
            logits, loss = model.logits_and_loss_from_image_features(encode(pixel_values), labels)
            ```
        """
        logits = self.logits_from_image_features(image_features)
        return logits, None if labels is None else self.classification_loss(logits, labels)

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of `logits` `(B, K)` against class indices `(B,)`, refusing labels out of range."""
        labels = labels.to(logits.device)
        num_classes = logits.shape[-1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"labels must be class indices in [0, {num_classes}), got values from "
                f"{int(labels.min())} to {int(labels.max())}. Check that the dataset's labels "
                "follow model.config.class_names."
            )
        return F.cross_entropy(logits, labels)

    # ------------------------------------------------------------------ training stages

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that make up the adapter: everything persistent outside the frozen CLIP, the CLIP
        submodules of `adapter_clip_modules`, and the CLIP entries `is_adapter_clip_key` claims."""
        kept = tuple(f"clip.{name}." for name in self.adapter_clip_modules)
        return {
            key: value
            for key, value in self.state_dict().items()
            if not key.startswith("clip.") or key.startswith(kept) or self.is_adapter_clip_key(key)
        }

    def is_adapter_clip_key(self, key: str) -> bool:
        """Hook: whether the state-dict entry `key` (`"clip."`-prefixed) is an adapter tensor the method put
        inside CLIP's own modules (low-rank weights injected into its layers): saved, loaded and trained as
        the adapter. Default: none (besides `adapter_clip_modules`)."""
        return False

    @classmethod
    def card_usage_notes(cls, config: PromptCLIPConfig, repo_id: str) -> str | None:
        """Hook: markdown the model card adds to "How to use" for an adapter of `config` published as
        `repo_id` (other ways to load it: another library's form saved beside it, a merged model), or `None`."""
        return None

    def saved_adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What `save_pretrained` writes: the adapter tensors (a method may store some in a smaller
        dtype; loading casts them back). Checkpoints always keep `adapter_state_dict()` as is."""
        return self.adapter_state_dict()

    def training_stages(self) -> list[TrainingStage]:
        """The stages of training, in order; one stage training the whole adapter by default."""
        return self.stages_from_config({"prompt": tuple(self.adapter_state_dict())})

    def stages_from_config(self, trainable: dict[str, tuple[str, ...]]) -> list[TrainingStage]:
        """`TrainingStage`s named and ordered as `trainable` (stage -> parameter-name prefixes), with the
        epochs and learning rates of `config.stage_epochs` / `config.stage_learning_rates`."""
        return stages_from_overrides(
            trainable, self.config.stage_epochs, self.config.stage_learning_rates, type(self).__name__
        )

    def set_training_stage(self, stage: TrainingStage | str) -> list[str]:
        """Make exactly the parameters of `stage` trainable and record it as `active_stage` (in the
        config, so it is saved); returns the trainable parameters' names. Methods whose logits
        differ between stages read `active_stage`."""
        if isinstance(stage, str):
            stages = {s.name: s for s in self.training_stages()}
            if stage not in stages:
                raise ValueError(f"Unknown training stage {stage!r}; this model has {list(stages)}.")
            stage = stages[stage]
        names = []
        for name, parameter in self.named_parameters():
            trainable = name.startswith(stage.trainable)
            parameter.requires_grad_(trainable)
            if trainable:
                names.append(name)
        self.config.training_stage = stage.name
        return names

    @property
    def active_stage(self) -> str | None:
        """The training stage the model was last set to (saved in its config), or `None`."""
        return self.config.training_stage


def _frozen_to_eval(module: torch.nn.Module) -> None:
    """Put every child subtree without a trainable parameter (but with parameters) in eval mode."""
    for child in module.children():
        parameters = list(child.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            child.eval()
        else:
            _frozen_to_eval(child)
