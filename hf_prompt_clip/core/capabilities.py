"""What generic code needs to know about a method: one record computed from a config instance.

Room: core (the model machinery). The runner, the trainer, evaluation, cards and the CLI never name a
method; they ask `config.capabilities` (before anything is built: `get_method(name)[0](**options)`) or
`model.capabilities` (a built model). A method states its facts once, on its config class, from its own
fields (`self.class_specific_context`, never `options.get(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The pipelines every adapter serves, and the one it serves only where any class list can be classified.
IMAGE_CLASSIFICATION = "image-classification"
ZERO_SHOT_IMAGE_CLASSIFICATION = "zero-shot-image-classification"


@dataclass(frozen=True)
class Capabilities:
    """What a method with one configuration learns, reads and serves.

    Attributes:
        learns_parameters: whether anything is trained (false for zero-shot CLIP): a run then evaluates it
            once, whatever the number of shots, and records no shots.
        classes_can_change: whether it classifies class lists other than the one it was trained on (new
            classes, other datasets): false for per-class parameters (CoOp's class-specific context, a linear
            probe, MP-FGVC). Protocols that test other classes are refused otherwise.
        classifies_texts: whether it classifies free texts given as classes at all (the zero-shot pipeline);
            `free_texts` says whether it may.
        uses_validation: whether training reads validation examples (a searched regularisation strength):
            the runner then draws the few-shot protocol's validation shots from the benchmark's val split.
        trains_image_tower: whether training sends gradients through the image tower (fine-tuned weights, or
            learned tokens it reads): its features then change with training, cannot be cached, and the tower
            cannot run in another dtype.
        features_training_problem: a reason of the method's own why gradient training cannot read cached
            frozen image features (PLOT matches local features the cache does not hold); `None` otherwise.

    Example:
        >>> CoOpConfig(class_specific_context=True).capabilities.classes_can_change
        False
        >>> Capabilities(learns_parameters=False).pipelines
        ('image-classification', 'zero-shot-image-classification')
    """

    learns_parameters: bool = True
    classes_can_change: bool = True
    classifies_texts: bool = True
    uses_validation: bool = False
    trains_image_tower: bool = False
    features_training_problem: str | None = None

    @property
    def free_texts(self) -> bool:
        """Whether the zero-shot pipeline may give it free texts as classes (they are other classes)."""
        return self.classifies_texts and self.classes_can_change

    @property
    def pipelines(self) -> tuple[str, ...]:
        """The transformers pipelines the method serves."""
        if self.free_texts:
            return (IMAGE_CLASSIFICATION, ZERO_SHOT_IMAGE_CLASSIFICATION)
        return (IMAGE_CLASSIFICATION,)

    @property
    def cached_features_problem(self) -> str | None:
        """Why gradient training cannot read cached frozen image features (`--augment-views`), or `None`."""
        if self.trains_image_tower:
            return "it trains through its image tower, so its image features change with training"
        return self.features_training_problem
