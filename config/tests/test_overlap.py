"""config.overlap.Overlapped: pieces of database work stored on a second connection, in order, while the caller
goes on; inside a caller's transaction they run inline, since a second connection could not see its rows."""
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from config.overlap import Overlapped


def make_group(name, threads):
    threads.append(threading.current_thread().name)
    Group.objects.create(name=name)


@pytest.mark.django_db(transaction=True)
def test_pieces_are_stored_in_order_on_another_thread_and_committed_at_the_end_of_the_block():
    threads = []
    with Overlapped() as overlap:
        assert not overlap.inline
        for number in range(5):
            overlap.submit(make_group, f"group {number}", threads)
    assert list(Group.objects.filter(name__startswith="group").order_by("pk").values_list("name", flat=True)) == [
        f"group {n}" for n in range(5)]
    assert set(threads) != {threading.current_thread().name}


@pytest.mark.django_db(transaction=True)
def test_a_piece_that_fails_raises_in_the_caller_and_stops_what_follows():
    threads = []
    with pytest.raises(ValueError, match="boom"):
        with Overlapped() as overlap:
            overlap.submit(make_group, "first", threads)
            overlap.submit(lambda: (_ for _ in ()).throw(ValueError("boom")))
            overlap.submit(make_group, "never", threads)
    assert not Group.objects.filter(name="never").exists() and Group.objects.filter(name="first").exists()


@pytest.mark.django_db
def test_inside_a_transaction_the_work_runs_inline_and_sees_the_callers_rows():
    threads = []
    with transaction.atomic():
        Group.objects.create(name="the caller's")
        with Overlapped() as overlap:
            assert overlap.inline
            overlap.submit(lambda: threads.append(Group.objects.filter(name="the caller's").exists()))
    assert threads == [True]
