"""What the served model runs together next (rt_ray/serve/batching.py)."""

from __future__ import annotations

import collections

from rt_ray.serve.batching import Pending, batch_deadline, fill_more, take_batch


def queue_of(*items: tuple) -> collections.deque[Pending]:
    """items: (kind, temperature) in arrival order, one second apart."""
    return collections.deque(Pending(kind, i, ("q", 8, temperature, 1.0), float(i)) for i, (kind, temperature) in enumerate(items))


def test_a_batch_takes_the_oldest_generate_requests_up_to_the_limit_and_leaves_the_rest_in_order():
    queue = queue_of(*[("generate", 0.0)] * 5)
    assert [p.id for p in take_batch(queue, 3)] == [0, 1, 2]
    assert [p.id for p in queue] == [3, 4]


def test_only_requests_with_the_heads_sampling_settings_share_its_call():
    queue = queue_of(("generate", 0.0), ("generate", 0.7), ("generate", 0.0))
    assert [p.id for p in take_batch(queue, 16)] == [0, 2]
    assert [p.id for p in take_batch(queue, 16)] == [1]


def test_a_stream_runs_alone_in_its_turn_and_generate_requests_behind_it_wait():
    queue = queue_of(("stream", 0.0), ("generate", 0.0), ("generate", 0.0))
    assert not fill_more(queue, 16)  # a stream at the head does not wait for company
    assert [p.id for p in take_batch(queue, 16)] == [0]
    assert fill_more(queue, 16) and not fill_more(queue, 2)
    assert [p.id for p in take_batch(queue, 16)] == [1, 2]


def test_the_oldest_request_waits_at_most_wait_s_in_all():
    queue = queue_of(("generate", 0.0), ("generate", 0.0))
    assert batch_deadline(queue, 0.02) == 0.02
