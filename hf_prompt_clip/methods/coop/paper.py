"""CoOp's numbers as the CoCoOp paper reports them (ViT-B/16, 16 shots; `core/reference.py`).

Room: `methods/`.
"""

from ...core.reference import AVERAGE, base_to_new_results, transfer_result

SOURCE = "CoOp (Zhou et al., IJCV 2022), as reported by CoCoOp (Zhou et al., CVPR 2022)"

PAPER_RESULTS = (
    # base-to-new generalisation (CoCoOp, Table 1): (base, new) per dataset
    *base_to_new_results(
        {
            "imagenet": (76.47, 67.88),
            "caltech101": (98.00, 89.81),
            "oxford_pets": (93.67, 95.29),
            "stanford_cars": (78.12, 60.40),
            "oxford_flowers": (97.60, 59.67),
            "food101": (88.33, 82.26),
            "fgvc_aircraft": (40.44, 22.30),
            "sun397": (80.60, 65.89),
            "dtd": (79.44, 41.18),
            "eurosat": (92.19, 54.74),
            "ucf101": (84.69, 56.05),
            AVERAGE: (82.69, 63.22),
        },
        SOURCE,
    ),
    # domain generalisation (CoCoOp, Table 3): trained on ImageNet, tested unchanged on its variants
    transfer_result(
        "imagenet",
        "domain_generalization",
        {
            "imagenet": 71.51,
            "imagenet_v2": 64.20,
            "imagenet_sketch": 47.99,
            "imagenet_a": 49.71,
            "imagenet_r": 75.21,
        },
        SOURCE,
    ),
)
