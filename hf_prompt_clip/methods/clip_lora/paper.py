"""CLIP-LoRA's few-shot number as its authors report it (ViT-B/16, 16 shots, all classes, the average over the
11 datasets).

Room: `methods/`.

The authors' own runs (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models", CVPRW 2024,
arXiv 2405.18541): default settings (both towers, every layer, q k v, r = 2), 500 x 16 iterations, averages over 3
seeds; the MaxZanella/CLIP-LoRA README shows the curves (Figure 2) and has no table. Only the 11-dataset average is
recorded here: the per-dataset values of the paper's Table 1 were not transcribed from a source this project
could read, and re-runs by others differ by about a point.
"""

from ...core.reference import AVERAGE, few_shot_results

SOURCE = "CLIP-LoRA, the authors' runs (Zanella & Ben Ayed, CVPRW 2024), 11-dataset average"

PAPER_RESULTS = few_shot_results({AVERAGE: (83.0,)}, (16,), SOURCE)
