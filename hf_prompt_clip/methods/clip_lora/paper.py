"""CLIP-LoRA's few-shot numbers as its authors report them (ViT-B/16, 16 shots, all classes of the 11 datasets).

Room: `methods/`.

The authors' own runs: Table 1 of Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models"
(CVPRW 2024, arXiv 2405.18541), shown as curves in Figure 2 of the MaxZanella/CLIP-LoRA README (`few_shot.png`,
whose 16-shot points these match; the README has no table). Default settings (both towers, every layer, q k v,
r = 2), 500 x 16 iterations, averages over 3 seeds. Re-runs by others differ by about a point.
"""

from ...core.reference import AVERAGE, few_shot_results

SOURCE = "CLIP-LoRA, the authors' runs (Zanella & Ben Ayed, CVPRW 2024, Table 1; MaxZanella/CLIP-LoRA README Figure 2)"

CLIP_LORA = {
    "imagenet": (73.6,),
    "sun397": (76.1,),
    "fgvc_aircraft": (54.7,),
    "eurosat": (92.1,),
    "stanford_cars": (86.3,),
    "food101": (84.2,),
    "oxford_pets": (92.4,),
    "oxford_flowers": (98.0,),
    "caltech101": (96.4,),
    "dtd": (72.0,),
    "ucf101": (86.7,),
    AVERAGE: (83.0,),
}

PAPER_RESULTS = few_shot_results(CLIP_LORA, (16,), SOURCE)
