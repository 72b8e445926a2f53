"""Zero-shot CLIP's numbers as the CoCoOp paper reports them (ViT-B/16; `core/reference.py`).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results, transfer_result

SOURCE = "CLIP (Radford et al., ICML 2021), as reported by CoCoOp (Zhou et al., CVPR 2022)"

PAPER_RESULTS = (
    # base-to-new generalisation (CoCoOp, Table 1): (base, new) per dataset
    *base_to_new_results(
        {
            "imagenet": (72.43, 68.14),
            "caltech101": (96.84, 94.00),
            "oxford_pets": (91.17, 97.26),
            "stanford_cars": (63.37, 74.89),
            "oxford_flowers": (72.08, 77.80),
            "food101": (90.10, 91.22),
            "fgvc_aircraft": (27.19, 36.29),
            "sun397": (69.36, 75.35),
            "dtd": (53.24, 59.90),
            "eurosat": (56.48, 64.05),
            "ucf101": (70.53, 77.50),
            AVERAGE: (69.34, 74.22),
        },
        SOURCE,
    ),
    # domain generalisation (CoCoOp, Table 3): ImageNet's classes, tested on its shifted variants
    transfer_result(
        "imagenet",
        "domain_generalization",
        {
            "imagenet": 66.73,
            "imagenet_v2": 60.83,
            "imagenet_sketch": 46.15,
            "imagenet_a": 47.77,
            "imagenet_r": 73.96,
        },
        SOURCE,
    ),
)
