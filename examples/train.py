"""Train a prompt learner with a paper's protocol, evaluate it, write report and model card.

    python examples/train.py --method coop --dataset dtd --shots 16 --seed 1 2 3
    accelerate launch examples/train.py --method cocoop --dataset imagenet --push-to-hub org/cocoop-vitb16-imagenet

Writes `<output-dir>/<method>/seed<N>/adapter/` (with its model card) for every method and seed, and
`results.json`, `results.md` and charts in `<output-dir>` (docs/training.md).
All options and their defaults: python examples/train.py --help (the same as `hf-prompt-clip train`).
"""

import sys

from hf_prompt_clip.cli import main

if __name__ == "__main__":
    main(sys.argv[1:], prog="examples/train.py", command="train")
