"""The authors' per-dataset settings of Tip-Adapter (gaopengcuhk/Tip-Adapter, `configs/<dataset>.yaml`),
keyed by the benchmark registry's keys: the initial alpha and beta (Tip-Adapter-F trains with them), the
search ranges of beta and alpha (`search_scale`) and Tip-Adapter-F's epochs. Every dataset there searches
200 betas and 20 alphas, builds its cache from 10 augmented views and fine-tunes with AdamW at lr 0.001.

Room: `methods/`.
"""

from __future__ import annotations

#: benchmark key -> (init_alpha, init_beta, (beta scale, alpha scale), Tip-Adapter-F epochs)
AUTHOR_SETTINGS: dict[str, tuple[float, float, tuple[float, float], int]] = {
    "imagenet": (1.17, 1.0, (7.0, 3.0), 20),
    "caltech101": (3.0, 1.0, (12.0, 5.0), 20),
    "dtd": (2.0, 1.0, (13.0, 13.0), 20),
    "eurosat": (2.0, 1.0, (12.0, 10.0), 100),
    "fgvc_aircraft": (5.0, 1.0, (30.0, 30.0), 20),
    "food101": (1.17, 1.0, (10.0, 10.0), 20),
    "oxford_flowers": (10.0, 1.0, (50.0, 50.0), 20),
    "oxford_pets": (1.17, 1.0, (7.0, 3.0), 20),
    "stanford_cars": (3.0, 1.0, (20.0, 10.0), 20),
    "sun397": (1.17, 1.0, (12.0, 10.0), 20),
    "ucf101": (3.0, 1.0, (7.0, 3.0), 20),
}
