"""CoCoOp's own numbers (ViT-B/16, 16 shots; `core/reference.py`).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results, transfer_result

SOURCE = "CoCoOp (Zhou et al., CVPR 2022)"

PAPER_RESULTS = (
    # base-to-new generalisation (Table 1): (base, new) per dataset
    *base_to_new_results(
        {
            "imagenet": (75.98, 70.43),
            "caltech101": (97.96, 93.81),
            "oxford_pets": (95.20, 97.69),
            "stanford_cars": (70.49, 73.59),
            "oxford_flowers": (94.87, 71.75),
            "food101": (90.70, 91.29),
            "fgvc_aircraft": (33.41, 23.71),
            "sun397": (79.74, 76.86),
            "dtd": (77.01, 56.00),
            "eurosat": (87.49, 60.04),
            "ucf101": (82.33, 73.45),
            AVERAGE: (80.47, 71.69),
        },
        SOURCE,
    ),
    # domain generalisation (Table 3): trained on ImageNet, tested unchanged on its variants
    transfer_result(
        "imagenet",
        "domain_generalization",
        {
            "imagenet": 71.02,
            "imagenet_v2": 64.07,
            "imagenet_sketch": 48.75,
            "imagenet_a": 50.63,
            "imagenet_r": 76.18,
        },
        SOURCE,
    ),
)
