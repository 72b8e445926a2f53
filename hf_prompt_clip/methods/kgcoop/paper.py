"""KgCoOp's base-to-new average as its authors' README states it (ViT-B/16, 16 shots; H 77.0 there).

Room: `methods/`.

No per-dataset rows are recorded (`core/reference.py`)."""

from ...core.reference import AVERAGE, base_to_new_results

SOURCE = "KgCoOp (Yao et al., CVPR 2023; the average of the authors' htyao89/KgCoOp README)"

PAPER_RESULTS = base_to_new_results({AVERAGE: (80.73, 73.60)}, SOURCE)
