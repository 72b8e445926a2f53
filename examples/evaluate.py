"""Evaluate a saved adapter (local folder or Hub id) with a paper's protocol.

`--dataset` (default: the data the adapter was trained on, from its `training_data.json`) is the
benchmark tested with few_shot / base2new, refused when the adapter was trained on other data or
classes (unless --classes-from-data); with cross_dataset / domain_generalization it is the adapter's
training benchmark, which labels the results, and each of `--targets` is tested among its own classes.

python examples/evaluate.py --model org/cocoop-vitb16-imagenet          # its own data and protocol
python examples/evaluate.py --model outputs/coop-dtd/coop/seed1/adapter --dataset dtd \
    --protocol cross_dataset --targets eurosat
HF_HUB_OFFLINE=1 python examples/evaluate.py --model outputs/run/coop/seed1/adapter \
    --dataset synthetic_shapes_outline --protocol cross_dataset --targets synthetic_shape_only synthetic_colours
"""

import sys

from hf_prompt_clip.cli import main

if __name__ == "__main__":
    main(sys.argv[1:], prog="examples/evaluate.py", command="evaluate")
