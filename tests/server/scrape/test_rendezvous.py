"""Rendezvous hashing: one owner per target, an even split, and a join or leave moves only one replica's share."""

from __future__ import annotations

from server.scrape.rendezvous import assign, owner

TARGETS = [f"http://10.0.{i // 250}.{i % 250}:6060|svc{i % 7}" for i in range(3000)]
MEMBERS = ["a1f3", "b7c2", "c9d4"]


def test_every_target_has_exactly_one_owner_among_the_members() -> None:
    shares = assign(TARGETS, MEMBERS)
    assert sorted(k for share in shares.values() for k in share) == sorted(TARGETS)
    assert set(shares) == set(MEMBERS)
    assert all(owner(k, MEMBERS) in MEMBERS for k in TARGETS[:50])


def test_the_owner_does_not_depend_on_the_order_members_are_listed_in() -> None:
    for key in TARGETS[:200]:
        assert owner(key, MEMBERS) == owner(key, list(reversed(MEMBERS))) == owner(key, sorted(MEMBERS))


def test_no_members_no_owner() -> None:
    assert owner("http://10.0.0.1:6060|svc", []) is None
    assert assign(TARGETS[:3], []) == {}


def test_shares_are_even() -> None:
    for count in (2, 3, 5):
        members = [f"replica-{n}" for n in range(count)]
        sizes = [len(share) for share in assign(TARGETS, members).values()]
        expected = len(TARGETS) / count
        # 3000 keys: a fair split is within a few standard deviations (about sqrt(n p (1-p)) <= 28) of n/count.
        assert all(abs(size - expected) < 0.1 * expected for size in sizes), sizes


def test_a_joining_member_takes_only_what_it_wins() -> None:
    before = {k: owner(k, MEMBERS) for k in TARGETS}
    after = {k: owner(k, [*MEMBERS, "d0e5"]) for k in TARGETS}
    moved = [k for k in TARGETS if before[k] != after[k]]
    assert moved and all(after[k] == "d0e5" for k in moved)
    assert abs(len(moved) - len(TARGETS) / 4) < 0.1 * len(TARGETS) / 4


def test_a_leaving_member_gives_away_only_its_own_share() -> None:
    before = {k: owner(k, MEMBERS) for k in TARGETS}
    after = {k: owner(k, ["a1f3", "c9d4"]) for k in TARGETS}
    moved = [k for k in TARGETS if before[k] != after[k]]
    assert sorted(moved) == sorted(k for k in TARGETS if before[k] == "b7c2")
    # What it held is spread over the rest, not dumped on one of them.
    taken = [after[k] for k in moved]
    assert 0.4 < taken.count("a1f3") / len(taken) < 0.6
