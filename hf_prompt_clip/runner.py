"""`hf_prompt_clip.runner`, earlier releases' module of a run, is `hf_prompt_clip.experiment.runner`: this
name gives that module itself (so `from hf_prompt_clip.runner import run_experiment, ExperimentConfig, ...`
and patches of `hf_prompt_clip.runner.<name>` reach the code that runs).

Room: `runner.py`.
"""

import sys

from .experiment import runner as _runner

sys.modules[__name__] = _runner
