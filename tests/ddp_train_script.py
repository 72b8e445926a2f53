"""Trains a tiny CoOp under Accelerate; run by test_training.py with one process or two
(`accelerate launch --multi_gpu --num_processes 2` with ACCELERATE_USE_CPU=true: gloo).

usage: ddp_train_script.py BASE_FOLDER OUTPUT_DIR PER_DEVICE_BATCH
"""

import json
import sys

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from hf_prompt_clip import CoOpModel
from hf_prompt_clip.data import collate_fn, eval_transform, with_image_transform
from hf_prompt_clip.evaluate import predict
from hf_prompt_clip.testing import pattern_benchmark
from hf_prompt_clip.train import PromptTrainer, TrainingConfig

base, output, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
model = CoOpModel.from_clip(base, ["red", "blue", "checkerboard", "stripes"], n_ctx=4)
transform = eval_transform(model.image_processor)
train = with_image_transform(pattern_benchmark(8, seed=0), transform)
config = TrainingConfig(
    output_dir=output,
    epochs=2,
    batch_size=batch,
    learning_rate=0.02,
    lr_schedule="constant",
    warmup_epochs=0,
    seed=3,
)
accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=3))
PromptTrainer(model, train, config, collate_fn=collate_fn, accelerator=accelerator).train()
test = with_image_transform(pattern_benchmark(5, seed=7), transform)
predictions = predict(model, test, collate_fn, batch_size=3, accelerator=accelerator)
if accelerator.is_main_process:
    result = {
        "num_processes": accelerator.num_processes,
        "context": model.context.tolist(),
        "accuracy": predictions.accuracy,
        "test_size": len(predictions.labels),
    }
    with open(f"{output}/result.json", "w") as handle:
        json.dump(result, handle)
accelerator.wait_for_everyone()
accelerator.end_training()  # ends the process group so no rank aborts at exit
