"""Refusals that name the problem and the fix (issue 24, items 7, 9, 10, 12, 13): a full disk, an empty line
in a class-names file, an MP-FGVC image tower missing offline, an invalid repository id, and a zero-shot
pipeline without candidate labels. The CLI prints each as one error line, exit code 2, with no raw
library message."""

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from conftest import PATTERN_NAMES, pattern_images
from safetensors import SafetensorError
from test_cli import QUICK, error_line, pattern_run, run_cli
from test_crash_safety import run as train_tiny_coop
from transformers import pipeline
from transformers.pipelines.zero_shot_image_classification import ZeroShotImageClassificationPipeline

from hf_prompt_clip import AdapterLoadError, CoOpModel, MPFGVCModel
from hf_prompt_clip.data.local import read_class_names
from hf_prompt_clip.serialization.push import check_push_access
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_dataset
from hf_prompt_clip.utils.atomic import DiskFullError, disk_full_error

DEV_FULL = Path("/dev/full")  # every write fails with ENOSPC


@pytest.fixture
def pattern_folder(tmp_path):
    """An image folder (train/test) of the generated pattern classes, as in tests/test_cli.py."""
    for split, per_class, seed in (("train", 4, 0), ("test", 2, 1)):
        images, labels = pattern_dataset(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "patterns" / split / PATTERN_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return tmp_path / "patterns"


def torch_zip_write_error() -> RuntimeError:
    """What torch's zip writer raises when the disk fills under it: `[enforce fail at
    inline_container.cc:672] . unexpected pos 704 vs 598`, with no ENOSPC anywhere in it."""
    try:
        torch.save({"optimizer": torch.zeros(100_000)}, DEV_FULL)
    except RuntimeError as error:
        return error
    raise AssertionError("torch.save to /dev/full succeeded")


def full_disk(monkeypatch, free: int = 512) -> None:
    """`shutil.disk_usage` reports a disk with `free` bytes left (what a short write leaves)."""
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(64 << 20, (64 << 20) - free, free)
    )


# ---------------------------------------------------------------- 7: a full disk


@pytest.mark.parametrize("failure", ["enospc", "torch_zip"])
def test_a_full_disk_in_a_checkpoint_write_names_the_folder_its_free_space_and_the_resume(
    tiny_clip_folder, tmp_path, monkeypatch, failure
):
    """The second checkpoint write fails on a full disk, as a plain OSError(ENOSPC) or as torch's zip
    writer's "unexpected pos" error: the error says so, naming the checkpoints folder, its free space and
    the resume from the complete checkpoint; nothing half-written stays."""
    if failure == "torch_zip" and not DEV_FULL.exists():
        pytest.skip("needs /dev/full")
    original, saves = Accelerator.save_state, []

    def save_state(self, output_dir=None, **kwargs):
        saves.append(output_dir)
        if len(saves) == 2:
            Path(output_dir, "model.safetensors").write_bytes(b"\0" * 10)  # what fitted on the disk
            if failure == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            full_disk(monkeypatch)
            raise torch_zip_write_error()
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    with pytest.raises(DiskFullError) as caught:
        train_tiny_coop(tiny_clip_folder, tmp_path / "run")
    error, checkpoints = caught.value, tmp_path / "run" / "checkpoints"
    message = str(error)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert message.startswith("No space left on device: writing checkpoint-4 in ")
    assert f"in {checkpoints} failed" in message and "free of" in message
    assert "checkpoint-2 is complete" in message and "--resume-from-checkpoint latest" in message
    if failure == "torch_zip":
        assert "512 B free of 64.0 MiB" in message and error.free == 512
        assert "enforce fail" not in message and "enforce fail" in str(error.__cause__)  # --debug shows it
    assert sorted(os.listdir(checkpoints)) == ["checkpoint-2"]  # no staging folder, no half checkpoint


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_a_write_error_counts_as_a_full_disk_only_when_it_says_so_or_the_disk_is_full(tmp_path, monkeypatch):
    torch_error = torch_zip_write_error()
    assert disk_full_error(torch_error, tmp_path, "checkpoint-4") is None  # room on the disk: another cause
    assert disk_full_error(OSError(errno.EACCES, "Permission denied"), tmp_path, "adapter") is None
    said = disk_full_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path, "adapter")
    assert isinstance(said, DiskFullError) and str(tmp_path) in str(said)
    full_disk(monkeypatch, free=0)
    assert isinstance(disk_full_error(torch_error, tmp_path, "checkpoint-4"), DiskFullError)
    assert disk_full_error(ValueError("bad option"), tmp_path, "adapter") is None  # not a write error


def test_a_full_disk_while_writing_the_adapter_is_one_cli_line_and_its_advice_finishes_the_run(
    tiny_clip_folder, pattern_folder, tmp_path, monkeypatch, capsys
):
    """The adapter's safetensors write fails on a full disk after training: one error line naming the
    folder, its free space and the rerun with --resume-from-checkpoint latest, which then writes it."""
    from hf_prompt_clip.serialization.adapter_io import AdapterIO

    def disk_full(self, folder, *args, **kwargs):
        Path(folder, "model.safetensors").write_bytes(b"\0" * 10)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    output = tmp_path / "run"
    argv = pattern_run(tiny_clip_folder, pattern_folder, output, *QUICK, "--method", "coop", "--no-baseline")
    monkeypatch.setattr(AdapterIO, "save_pretrained", disk_full)
    code, _, err = run_cli(argv, capsys)
    line = error_line(err)
    seed = output / "coop" / "seed1"
    assert code == 2 and f"No space left on device: writing adapter in {seed} failed (" in line
    assert "free of" in line and "--resume-from-checkpoint latest" in line
    assert "SafetensorError" not in line and "os error 28" not in line and "serializing" not in line
    left = [
        "checkpoints",
        "run_fingerprint.json",
        "train.lock",
    ]  # the lock file stays, its holder record goes
    assert sorted(path.name for path in seed.iterdir()) == left
    monkeypatch.undo()
    code, _, err = run_cli([*argv, "--resume-from-checkpoint", "latest"], capsys)
    assert code == 0, err
    assert (seed / "adapter" / "model.safetensors").is_file()


# ---------------------------------------------------------------- 9: an empty line in a class-names file

FOLDERS = ["blue", "checkerboard", "red", "stripes"]


def test_an_empty_line_in_a_class_names_file_is_named_with_the_folder_whose_name_it_holds(
    tiny_clip_folder, pattern_folder, tmp_path, capsys
):
    names = tmp_path / "names.txt"
    names.write_text("blue\n   \nred\nstripes\n\n")  # line 2: whitespace only; a trailing blank line is fine
    with pytest.raises(ValueError) as caught:
        read_class_names(names, FOLDERS)
    message = str(caught.value)
    assert "line 2 is empty" in message and "'checkerboard'" in message and "2nd class folder" in message
    names.write_text("\nblue\ncheckerboard\n\n\nstripes\n")  # too few names and empty lines elsewhere
    with pytest.raises(ValueError, match=r"lines 1, 4, 5 are empty .* lists 3 names for 4 class folders"):
        read_class_names(names, FOLDERS)
    names.write_text("blue\n\ncheckerboard\nred\nstripes\n")  # a blank line between complete names: fine
    assert read_class_names(names, FOLDERS)["checkerboard"] == "checkerboard"
    names.write_text("blue\n\nred\nstripes\n")
    data = ["--data-dir", str(pattern_folder), "--class-names", str(names)]
    code, _, err = run_cli(
        ["train", "--base-model", tiny_clip_folder, *data, "--output-dir", str(tmp_path / "run")], capsys
    )
    assert (
        code == 2
        and "line 2 is empty (whitespace only) where the 2nd class folder's name goes" in error_line(err)
    )


def test_an_empty_name_or_broken_json_in_a_json_class_names_file_is_named(tmp_path):
    names = tmp_path / "names.json"
    names.write_text('["blue", " ", "red", "stripes"]')
    with pytest.raises(
        ValueError, match=r"entry 2 of its list is empty, where the name of the class folder 'checkerboard'"
    ):
        read_class_names(names, FOLDERS)
    names.write_text('{"red": ""}')
    with pytest.raises(ValueError, match="empty name to the class folder 'red'"):
        read_class_names(names, FOLDERS)
    names.write_text('["blue", ')
    with pytest.raises(ValueError, match=r"names.json' is not valid JSON \(Expecting value"):
        read_class_names(names, FOLDERS)


# ---------------------------------------------------------------- 10: MP-FGVC's image tower offline


def test_an_mpfgvc_image_tower_missing_offline_names_the_option_the_id_and_the_offline_setting(
    tiny_clip_folder, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(AdapterLoadError) as caught:
        MPFGVCModel.from_clip(
            tiny_clip_folder, PATTERN_NAMES, image_tower="no-such/tower", cache_dir=str(tmp_path)
        )
    message = str(caught.value)
    assert "image_tower='no-such/tower' (--option image_tower=no-such/tower)" in message
    assert "HF_HUB_OFFLINE=1 is set, so the Hub was not asked, and the local cache" in message
    assert "couldn't connect" not in message and "set HF_HUB_OFFLINE=1 to" not in message


# ---------------------------------------------------------------- 12: repository ids


def test_push_of_a_repo_id_starting_with_a_dash_says_it_is_invalid_and_why(tmp_path, capsys):
    code, _, err = run_cli(["push", str(tmp_path / "adapter"), "-/x"], capsys)
    line = error_line(err)
    assert code == 2 and "'-/x' is not a valid Hub repository id" in line
    assert "here the namespace '-' starts with '-'" in line and "required" not in line
    code, _, err = run_cli(["push", str(tmp_path / "adapter"), "--", "-/x"], capsys)
    assert code == 2 and "'-/x' is not a valid Hub repository id" in error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "adapter", "me/x.git"],
        ["train", "--push-to-hub", "me/a/b"],
        ["train", "--push-to-hub", "-/x"],
        ["data", "export", "eurosat", "--output-dir", "out", "--push-to-hub", "me/a--b"],
    ],
)
def test_every_repo_id_the_cli_takes_is_checked_before_anything_runs(argv, capsys):
    code, _, err = run_cli(argv, capsys)
    assert (
        code == 2 and "is not a valid Hub repository id" in error_line(err) and "Give namespace/name" in err
    )


def test_a_value_read_as_an_option_says_how_to_pass_it_and_the_api_checks_repo_ids(capsys):
    code, _, err = run_cli(["train", "--output-dir", "-/x"], capsys)
    assert code == 2 and "write --output-dir=-/x" in error_line(err)
    with pytest.raises(ValueError, match="'-/x' is not a valid Hub repository id"):
        check_push_access("-/x")  # before asking the Hub anything


# ---------------------------------------------------------------- 13: the zero-shot pipeline without labels


@pytest.fixture
def coop_folder(tiny_clip_folder, tmp_path):
    torch.manual_seed(0)
    CoOpModel.from_clip(tiny_clip_folder, PATTERN_NAMES, n_ctx=2).save_pretrained(tmp_path / "coop")
    return tmp_path / "coop"


@pytest.mark.parametrize(
    ("labels", "found"),
    [
        ([], "candidate_labels is empty"),
        (None, "no candidate_labels were given"),
        ("red", "one string ('red')"),
    ],
)
def test_the_zero_shot_pipeline_refuses_missing_candidate_labels_naming_them_and_the_fix(
    coop_folder, labels, found
):
    classifier = pipeline("zero-shot-image-classification", model=str(coop_folder))
    with pytest.raises(ValueError) as caught:
        classifier(pattern_images()[0], candidate_labels=labels)
    assert found in str(caught.value) and "candidate_labels=['cat', 'dog']" in str(caught.value)
    model = classifier.model
    with pytest.raises(ValueError, match="input_ids holds no text: candidate_labels is empty"):
        model(torch.zeros(1, 3, 32, 32), input_ids=torch.zeros(0, 4, dtype=torch.long))


def test_the_zero_shot_pipeline_scores_as_before_for_these_and_other_models(coop_folder, tiny_clip_folder):
    image = pattern_images()[1]
    for folder in (coop_folder, tiny_clip_folder):  # a CoOp adapter, and a plain CLIP
        ours = pipeline("zero-shot-image-classification", model=str(folder))
        theirs = pipeline(
            "zero-shot-image-classification",
            model=str(folder),
            pipeline_class=ZeroShotImageClassificationPipeline,
        )
        labels = ["red", "blue", "stripes"]
        assert ours(image, candidate_labels=labels, hypothesis_template="{}") == theirs(
            image, candidate_labels=labels, hypothesis_template="{}"
        )
