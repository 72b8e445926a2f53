"""Tip-Adapter's and Tip-Adapter-F's few-shot accuracies.

Room: `methods/`.

The authors publish them with a **ResNet-50** CLIP (`exp.log` of gaopengcuhk/Tip-Adapter, the per-dataset
numbers of the paper's few-shot figures, one setting of alpha/beta per dataset): they are recorded with
`backbone="RN50"` so that no ViT-B/16 result is ever compared with them (`core/reference.py`). The dataset
`fgvc` of the log is `fgvc_aircraft`.
"""

from ...core.reference import few_shot_results

SOURCE = "Tip-Adapter (Zhang et al., ECCV 2022; the authors' gaopengcuhk/Tip-Adapter exp.log, ResNet-50)"
SHOTS = (16, 8, 4, 2, 1)  # the log's column order

TIP_ADAPTER = {
    "imagenet": (62.01, 61.45, 60.98, 60.96, 60.70),
    "sun397": (66.85, 65.62, 64.15, 62.70, 61.30),
    "oxford_pets": (88.14, 87.03, 86.45, 87.03, 86.10),
    "eurosat": (70.54, 67.95, 65.32, 61.68, 54.38),
    "caltech101": (90.18, 89.83, 89.39, 88.44, 87.18),
    "dtd": (60.93, 58.63, 53.96, 49.47, 46.22),
    "fgvc_aircraft": (29.76, 25.59, 22.41, 21.21, 19.05),
    "food101": (77.83, 77.76, 77.54, 77.52, 77.42),
    "oxford_flowers": (89.89, 87.98, 83.80, 79.13, 73.12),
    "ucf101": (70.58, 68.68, 66.46, 64.74, 62.60),
    "stanford_cars": (66.77, 62.93, 61.45, 57.93, 57.54),
}
TIP_ADAPTER_F = {
    "imagenet": (65.51, 64.00, 62.52, 61.69, 61.13),
    "sun397": (71.47, 68.87, 66.21, 63.64, 62.50),
    "oxford_pets": (89.70, 88.09, 87.54, 87.03, 87.00),
    "eurosat": (84.54, 77.93, 74.12, 66.15, 59.53),
    "caltech101": (92.86, 91.44, 90.56, 89.74, 89.33),
    "dtd": (66.55, 62.71, 57.39, 53.72, 49.65),
    "fgvc_aircraft": (35.55, 30.21, 25.80, 23.19, 20.22),
    "food101": (79.43, 78.64, 78.24, 77.81, 77.51),
    "oxford_flowers": (94.80, 91.51, 88.83, 82.30, 79.98),
    "ucf101": (78.03, 74.25, 70.55, 66.43, 64.87),
    "stanford_cars": (75.74, 69.25, 64.57, 61.50, 58.86),
}

TIP_ADAPTER_RESULTS = few_shot_results(TIP_ADAPTER, SHOTS, SOURCE, backbone="RN50")
TIP_ADAPTER_F_RESULTS = few_shot_results(TIP_ADAPTER_F, SHOTS, SOURCE, backbone="RN50")
