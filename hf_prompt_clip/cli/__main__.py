"""`python -m hf_prompt_clip.cli ...` (and `accelerate launch -m hf_prompt_clip.cli ...`): the command line.

Room: `cli/`.
"""

import sys

from . import main

main(sys.argv[1:])
