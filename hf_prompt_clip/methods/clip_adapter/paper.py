"""CLIP-Adapter's few-shot accuracies as the Tip-Adapter authors ran it, with a **ResNet-50** CLIP.

Room: `methods/`.

From the `exp.log` of gaopengcuhk/Tip-Adapter (the CLIP-Adapter curves of the Tip-Adapter paper's figures;
CLIP-Adapter's own paper reports RN50 too). Recorded with `backbone="RN50"`, so no ViT-B/16 result is ever
compared with them (`core/reference.py`). The log's dataset `fgvc` is `fgvc_aircraft`.
"""

from ...core.reference import few_shot_results

SOURCE = (
    "CLIP-Adapter (Gao et al., IJCV 2023) as run by the Tip-Adapter authors (gaopengcuhk/Tip-Adapter exp.log, "
    "ResNet-50)"
)
SHOTS = (16, 8, 4, 2, 1)  # the log's column order

CLIP_ADAPTER = {
    "imagenet": (63.59, 62.68, 61.84, 61.52, 61.20),
    "sun397": (69.55, 67.50, 65.96, 63.29, 61.30),
    "oxford_pets": (87.84, 87.65, 87.46, 86.73, 85.99),
    "eurosat": (84.43, 77.93, 73.38, 63.90, 61.40),
    "caltech101": (92.49, 91.40, 89.98, 89.37, 88.60),
    "dtd": (65.96, 61.00, 56.86, 51.48, 45.80),
    "fgvc_aircraft": (32.10, 26.25, 22.59, 20.10, 17.49),
    "food101": (78.25, 78.04, 77.92, 77.22, 76.82),
    "oxford_flowers": (93.90, 91.72, 87.17, 81.61, 73.49),
    "ucf101": (76.76, 73.30, 69.05, 67.12, 62.20),
    "stanford_cars": (74.01, 67.89, 62.45, 58.74, 55.13),
}

PAPER_RESULTS = few_shot_results(CLIP_ADAPTER, SHOTS, SOURCE, backbone="RN50")
