"""PLOT++'s few-shot numbers (ViT-B/16; `core/reference.py`). PLOT's paper reports RN50 only, so PLOT
itself has no ViT-B/16 row.

Room: `methods/`.
"""

from ...core.reference import AVERAGE, few_shot_results

SOURCE = "PLOT++ (Chen et al., ICLR 2023; per-dataset numbers from the authors' plot-pp README)"
SHOTS = (1, 2, 4, 8, 16)

PLOTPP_RESULTS = few_shot_results(
    {
        # the paper's average over the 11 datasets, per number of shots
        AVERAGE: (70.71, 74.00, 76.92, 79.65, 82.09),
        # CHENGY12/PLOT, plot-pp/README.md (their mean at 16 shots is the paper's 82.09)
        "caltech101": (94.34, 94.69, 95.13, 95.51, 96.04),
        "dtd": (54.57, 56.72, 62.43, 66.49, 71.43),
        "eurosat": (65.41, 76.80, 83.21, 88.37, 92.00),
        "fgvc_aircraft": (28.60, 31.14, 35.29, 41.42, 46.74),
        "oxford_flowers": (80.48, 89.81, 92.93, 95.44, 97.56),
        "food101": (86.16, 86.33, 86.46, 86.58, 87.11),
        "imagenet": (66.45, 68.28, 70.40, 71.31, 72.60),
        "oxford_pets": (91.89, 92.29, 92.55, 93.02, 93.59),
        "stanford_cars": (68.81, 73.17, 76.25, 81.26, 84.55),
        "sun397": (66.77, 68.06, 71.73, 73.93, 76.03),
        "ucf101": (74.31, 76.76, 79.76, 82.80, 85.34),
    },
    SHOTS,
    SOURCE,
)
