"""Evaluate a saved adapter (local folder or Hub id) with a paper's protocol.

python examples/evaluate.py --model org/cocoop-vitb16-imagenet --protocol base2new --dataset dtd
python examples/evaluate.py --model outputs/run/coop/seed1/adapter --protocol cross_dataset --targets dtd eurosat
"""

import sys

from hf_prompt_clip.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
