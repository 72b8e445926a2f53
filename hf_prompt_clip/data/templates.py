"""Prompt templates shared by the benchmark registry and the synthetic world.

Room: `data/`.
"""

#: The 7 templates CLIP selected on ImageNet; every benchmark's ensemble starts with them.
IMAGENET_SELECT_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
