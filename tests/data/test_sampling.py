from src.data.sampling import EpochSeededSampler


def _epoch(sampler: EpochSeededSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_epoch_is_a_permutation_with_one_seed_per_sample():
    sampler = EpochSeededSampler(50, seed=7)
    items = _epoch(sampler, 0)
    assert len(items) == len(sampler) == 50
    assert sorted(index for index, _ in items) == list(range(50))
    assert len({seed for _, seed in items}) == 50 and all(0 <= seed < 2**32 for _, seed in items)


def test_the_sequence_is_a_function_of_seed_and_epoch():
    a, b = EpochSeededSampler(20, seed=7), EpochSeededSampler(20, seed=7)
    assert _epoch(a, 3) == _epoch(b, 3)  # b never saw epochs 0-2
    assert _epoch(a, 3) != _epoch(a, 4)
    assert _epoch(a, 0) != _epoch(EpochSeededSampler(20, seed=8), 0)
    assert _epoch(a, 5) == _epoch(a, 5)  # iterating twice changes nothing


def test_without_a_seed_two_samplers_differ():
    assert _epoch(EpochSeededSampler(20), 0) != _epoch(EpochSeededSampler(20), 0)
