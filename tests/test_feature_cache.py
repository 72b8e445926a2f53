"""The shared image-feature cache: each view encoded once, and exactly what recomputing gives."""

import threading
from types import SimpleNamespace

import pytest
import torch
from accelerate import PartialState
from torch.utils.data import DataLoader

from hf_prompt_clip import ZeroShotCLIPConfig, ZeroShotCLIPModel
from hf_prompt_clip.caching.feature_cache import (
    FeatureKey,
    ImageFeatureCache,
    ProcessShards,
    SeededViews,
    encode_dataset,
    module_digest,
    view_seed,
)
from hf_prompt_clip.caching.process_shards import rows_in_dataset_order
from hf_prompt_clip.data import collate_fn, eval_transform, train_transform, with_image_transform
from hf_prompt_clip.modeling.fitting import FitData
from hf_prompt_clip.testing import PATTERN_CLASSES, pattern_benchmark, tiny_clip
from hf_prompt_clip.train.trainer import EpochSeededDataset


def make_model(seed=0):
    clip, tokenizer, processor = tiny_clip(seed=seed)
    config = ZeroShotCLIPConfig(clip_config=clip.config.to_dict(), class_names=list(PATTERN_CLASSES))
    return ZeroShotCLIPModel(config, clip_model=clip, tokenizer=tokenizer, image_processor=processor)


@pytest.fixture(scope="module")
def model():
    return make_model().eval()


@pytest.fixture(scope="module")
def data(model):
    raw = pattern_benchmark(3)
    return {
        "plain": with_image_transform(raw, eval_transform(model.image_processor)),
        "augmented": with_image_transform(raw, train_transform(model.image_processor, (0.5, 1.0))),
    }


class CountingEncoder:
    def __init__(self, model):
        self.model, self.images = model, 0

    def __call__(self, pixel_values):
        self.images += len(pixel_values)
        return self.model.encode_images(pixel_values)


def test_cached_features_equal_recomputed_ones_and_are_encoded_once(model, data):
    cache, encode = ImageFeatureCache(), CountingEncoder(model)
    first, labels = cache.features(encode, "e", data["plain"], collate_fn=collate_fn, batch_size=5)
    again, _ = cache.features(encode, "e", data["plain"], collate_fn=collate_fn, batch_size=5)
    assert again is first and encode.images == len(data["plain"]) and (cache.hits, cache.misses) == (1, 1)
    pixels = torch.stack([example["pixel_values"] for example in data["plain"]])
    with torch.no_grad():
        torch.testing.assert_close(first, model.clip.get_image_features(pixel_values=pixels).pooler_output)
    assert labels.tolist() == [example["label"] for example in data["plain"]]


def test_a_cached_view_is_the_image_the_trainer_shows_in_that_epoch(model, data):
    cache, encode = ImageFeatureCache(), CountingEncoder(model)
    views, _ = cache.features(encode, "e", data["augmented"], seed=3, views=range(3), collate_fn=collate_fn)
    assert views.shape[:2] == (3, len(data["augmented"]))
    assert not torch.equal(views[0], views[1])  # views differ: the transform augments
    epochs = EpochSeededDataset(data["augmented"], seed=3)
    for epoch in range(3):
        epochs.set_epoch(epoch)
        batch = next(iter(DataLoader(epochs, batch_size=len(epochs), collate_fn=collate_fn)))
        with torch.no_grad():
            recomputed = model.encode_images(batch["pixel_values"])
        assert torch.equal(views[epoch], recomputed)  # exactly equal, not merely close
    # views 1-2 are cached; view 3 is new
    cache.features(encode, "e", data["augmented"], seed=3, views=[1, 2, 3], collate_fn=collate_fn)
    assert encode.images == 4 * len(data["augmented"])


def test_the_key_tells_apart_transforms_seeds_views_encoders_and_precision(model, data):
    cache, encode = ImageFeatureCache(), CountingEncoder(model)
    requests = [
        ("e", data["plain"], None, None, "no"),
        ("e", data["augmented"], 1, [0], "no"),
        ("e", data["augmented"], 2, [0], "no"),  # another seed
        ("e", data["augmented"], 1, [1], "no"),  # another view
        ("other", data["plain"], None, None, "no"),  # another encoder
        ("e", data["plain"], None, None, "bf16"),  # another precision
    ]
    for encoder, dataset, seed, views, precision in requests:
        cache.features(
            encode, encoder, dataset, seed=seed, views=views, precision=precision, collate_fn=collate_fn
        )
    assert (cache.misses, cache.hits, len(cache)) == (len(requests), 0, len(requests))
    subset = data["plain"].select([0, 1])  # a selection has its own fingerprint
    cache.features(encode, "e", subset, collate_fn=collate_fn)
    assert cache.misses == len(requests) + 1


def test_the_encoder_digest_follows_the_weights():
    one, other = make_model(0), make_model(1)
    assert one.image_tower_digest() == make_model(0).image_tower_digest()
    assert one.image_tower_digest() != other.image_tower_digest()
    before = one.image_tower_digest()
    with torch.no_grad():
        one.clip.visual_projection.weight.add_(1.0)
    assert one.image_tower_digest() != before
    assert module_digest(torch.nn.Linear(2, 2)) != module_digest(torch.nn.Linear(2, 3))


def test_data_without_a_fingerprint_is_encoded_every_time(model, data):
    cache, encode = ImageFeatureCache(), CountingEncoder(model)
    plain = list(data["plain"])  # a list has no fingerprint
    for _ in range(2):
        cache.features(encode, "e", plain, collate_fn=collate_fn)
    assert encode.images == 2 * len(plain) and len(cache) == 0


def test_the_least_recently_used_entry_is_dropped_first():
    entry = (torch.zeros(10), torch.zeros(0))  # 40 bytes
    cache = ImageFeatureCache(max_bytes=100)
    for name in "abc":
        cache.get_or_compute(FeatureKey("e", name), lambda: entry)
    assert len(cache) == 2 and cache.nbytes == 80  # a was dropped for c
    cache.get_or_compute(FeatureKey("e", "b"), lambda: entry)  # b is used again: c is now the oldest
    assert cache.hits == 1
    cache.get_or_compute(FeatureKey("e", "d"), lambda: entry)  # drops c
    assert FeatureKey("e", "b") in cache._entries and FeatureKey("e", "c") not in cache._entries
    with pytest.raises(ValueError, match="cannot be negative"):
        ImageFeatureCache(max_bytes=-1)


def test_seeded_views_leave_the_global_generator_alone(data):
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    SeededViews(data["augmented"], seed=1, view=2)[0]
    assert torch.equal(torch.rand(1), expected)
    assert view_seed(1, 2, 0) != view_seed(1, 0, 2)


def test_fit_data_says_which_split_is_missing(model, data):
    fit = FitData(train=data["plain"], collate_fn=collate_fn)
    features, labels = fit.image_features(model, "train")
    assert features.shape[0] == labels.shape[0] == len(data["plain"])
    with pytest.raises(ValueError, match="needs 'validation' examples"):
        fit.image_features(model, "validation")
    with pytest.raises(ValueError, match="views go with split 'train_views'"):
        fit.image_features(model, "train", views=[0])
    with pytest.raises(ValueError, match="empty dataset"):
        encode_dataset(model.encode_images, [], collate_fn=collate_fn)


class ThreadRank(SimpleNamespace):
    """One thread's stand-in for a process's `Accelerator`, as `ProcessShards.of` reads it: `num_processes`,
    `process_index`, `gather`, `device`, `is_local_main_process`, and Accelerate's own
    `split_between_processes` (which reads the rank and the process count only)."""

    split_between_processes = PartialState.split_between_processes


def rank(index: int, count: int, gather=None) -> ThreadRank:
    return ThreadRank(
        num_processes=count,
        process_index=index,
        gather=gather,
        device="cpu",
        is_local_main_process=index == 0,
    )


class ThreadGroup:
    """`count` threads standing in for a run's processes: `gather` is an all-gather through a barrier (one
    that times out, so a collective a thread skips fails the test instead of hanging it); the shards are
    Accelerate's split. Outside `gather` one thread runs at a time (`turn`): processes have their own torch
    RNG, threads share one, and a view is drawn with the global RNG seeded."""

    def __init__(self, count: int):
        self.count, self.slots = count, [None] * count
        self.barrier = threading.Barrier(count, timeout=120)
        self.turn = threading.Lock()

    def shards(self, index: int) -> ProcessShards:
        def gather(tensor):
            self.slots[index] = tensor
            self.turn.release()
            try:
                self.barrier.wait()
                gathered = torch.cat(self.slots)
                self.barrier.wait()
            finally:
                self.turn.acquire()
            return gathered

        return ProcessShards.of(rank(index, self.count, gather))

    def run(self, work):
        """`work(index, shards)` on every thread; their results in thread order (a thread's error re-raised)."""
        results, errors = [None] * self.count, []

        def one(index):
            self.turn.acquire()
            try:
                results[index] = work(index, self.shards(index))
            except BaseException as error:
                errors.append(error)
                self.barrier.abort()
            finally:
                self.turn.release()

        threads = [threading.Thread(target=one, args=(index,)) for index in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


def test_the_shards_are_accelerates_split_and_gathered_rows_come_back_in_dataset_order():
    for size in range(3, 12):
        for count in (2, 3):
            shards = [ProcessShards.of(rank(p, count)).shard(size) for p in range(count)]
            assert [i for shard in shards for i in shard] == list(range(size))  # contiguous, in process order
            assert max(map(len, shards)) - min(map(len, shards)) <= 1
            per = -(-size // count)
            for split in (shards, [list(range(p, size, count)) for p in range(count)]):  # or strided
                rows = torch.tensor([i for shard in split for i in shard + [-1] * (per - len(shard))])
                values = torch.where(rows >= 0, 10 * rows, -7)
                assert rows_in_dataset_order(values, rows, size).tolist() == [10 * i for i in range(size)]
    with pytest.raises(ValueError, match="not each of the 4 examples once"):
        rows_in_dataset_order(torch.arange(4), torch.tensor([0, 1, 1, 3]), 4)
    with pytest.raises(ValueError, match="index < count"):
        ProcessShards(2, 2, gather=lambda t: t)
    with pytest.raises(ValueError, match="no split"):
        ProcessShards(0, 2, gather=lambda t: t).shard(4)
    assert ProcessShards.of(rank(0, 1)) is None  # one process: nothing to share
    assert (ProcessShards.of(rank(1, 2)).index, ProcessShards.of(rank(1, 2)).count) == (1, 2)


@pytest.mark.parametrize("count", [2, 5])
def test_processes_share_the_encoding_each_image_once_and_all_get_all_views(model, data, count, tmp_path):
    """Each process encodes its shard of every view (the same images, drawn with the same seeds, as one
    process encodes); all of them end up with one process's features; only the main process writes disk
    entries, and a later run whose processes all find them encodes nothing."""
    dataset = data["augmented"]
    alone, labels = ImageFeatureCache().features(
        model.encode_images, "e", dataset, seed=3, views=range(2), collate_fn=collate_fn, batch_size=4
    )
    group = ThreadGroup(count)

    def work(index, shards, directory=tmp_path / "cache"):
        cache, encode = ImageFeatureCache(directory=directory), CountingEncoder(model)
        views, got = cache.features(
            encode,
            "e",
            dataset,
            seed=3,
            views=range(2),
            collate_fn=collate_fn,
            batch_size=4,
            processes=shards,
        )
        return views, got, encode.images, cache

    results = group.run(work)
    for views, got, _, _ in results:
        torch.testing.assert_close(views, alone, atol=1e-6, rtol=1e-5)  # batches differ: float rounding only
        assert torch.equal(got, labels)
    shares = [images for _, _, images, _ in results]
    assert sum(shares) == 2 * len(dataset) and max(shares) - min(shares) <= 2  # 2 views, one shard each
    assert [cache.disk_writes for *_, cache in results] == [2] + [0] * (count - 1)
    again = group.run(work)  # fresh caches, the same folder: every process finds both views on disk
    assert [images for _, _, images, _ in again] == [0] * count
    assert all(cache.disk_hits == 2 for *_, cache in again)


def test_processes_that_disagree_on_a_hit_encode_together_instead_of_waiting_forever(model, data):
    dataset = data["plain"]
    group = ThreadGroup(2)
    caches = [ImageFeatureCache(), ImageFeatureCache()]
    caches[0].features(model.encode_images, "e", dataset, collate_fn=collate_fn)  # only process 0 has it

    def work(index, shards):
        encode = CountingEncoder(model)
        features, _ = caches[index].features(encode, "e", dataset, collate_fn=collate_fn, processes=shards)
        return features, encode.images

    (first, images0), (second, images1) = group.run(work)
    assert images0 + images1 == len(dataset) and torch.equal(first, second)


def test_a_dataset_smaller_than_the_process_count_is_encoded_whole_by_each(model, data):
    tiny = data["plain"].select(range(2))
    group = ThreadGroup(3)

    def work(index, shards):
        encode = CountingEncoder(model)
        ImageFeatureCache().features(encode, "e", tiny, collate_fn=collate_fn, processes=shards)
        return encode.images

    assert group.run(work) == [2, 2, 2]


def test_a_process_that_fails_to_encode_stops_every_process_instead_of_leaving_them_waiting(model, data):
    dataset = data["plain"]
    group = ThreadGroup(2)

    def work(index, shards):
        def encode(pixel_values):
            if index == 1:
                raise OSError("image 7 is truncated")
            return model.encode_images(pixel_values)

        try:
            ImageFeatureCache().features(encode, "e", dataset, collate_fn=collate_fn, processes=shards)
        except Exception as error:  # what each process raised
            return error
        return None

    stopped = group.run(work)
    assert isinstance(stopped[1], OSError) and "truncated" in str(stopped[1])  # its own error
    assert isinstance(stopped[0], RuntimeError) and "process(es) [1] of 2 failed" in str(stopped[0])


def test_each_nodes_first_process_writes_the_disk_entries():
    accelerator = rank(2, 4)
    accelerator.is_local_main_process = True
    assert ProcessShards.of(accelerator).writes_disk  # rank 2, first of the second node
    assert ProcessShards(0, 2, gather=None).writes_disk and not ProcessShards(1, 2, gather=None).writes_disk


def test_a_cache_folder_that_cannot_be_written_keeps_the_features_in_memory(model, data, tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    cache, encode = ImageFeatureCache(directory=blocked), CountingEncoder(model)
    with caplog.at_level("WARNING", logger="hf_prompt_clip.caching.feature_cache"):
        first, _ = cache.features(encode, "e", data["plain"], collate_fn=collate_fn)
        again, _ = cache.features(encode, "e", data["plain"], collate_fn=collate_fn)
    assert again is first and encode.images == len(data["plain"])  # served from memory the second time
    assert "could not write the image-feature file" in caplog.text and "permissions" in caplog.text


def test_views_read_from_disk_and_views_encoded_on_another_device_stack(model, data, tmp_path, monkeypatch):
    """Disk entries come back on the CPU, fresh ones where the encoder ran (a GPU): one device for the
    stack. `meta` stands in for the GPU here (the disk entry is moved there, the fresh view stays on CPU)."""
    folder = tmp_path / "cache"
    ImageFeatureCache(directory=folder).features(
        model.encode_images, "e", data["augmented"], seed=3, views=[0], collate_fn=collate_fn
    )
    read = ImageFeatureCache._read_disk
    monkeypatch.setattr(
        ImageFeatureCache,
        "_read_disk",
        lambda self, key: tuple(t.to("meta") for t in read(self, key) or ()) or None,
    )
    views, _ = ImageFeatureCache(directory=folder).features(
        model.encode_images, "e", data["augmented"], seed=3, views=[0, 1], collate_fn=collate_fn
    )
    assert views.shape[:2] == (2, len(data["augmented"])) and views.device.type == "meta"
