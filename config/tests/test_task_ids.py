"""Task ids the console makes read as Celery's own (random UUIDs, version 4)."""
import uuid

from config.celery import new_task_id


def test_a_task_id_is_a_random_version_4_uuid_in_its_usual_spelling():
    ids = [new_task_id() for _ in range(2000)]
    for task_id in ids:
        parsed = uuid.UUID(task_id)
        assert str(parsed) == task_id  # lower-case hex, hyphens where uuid4() puts them
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # Every variant digit (8, 9, a, b) turns up, as from uuid4(): the random bits under the fixed ones are kept.
    assert {task_id[19] for task_id in ids} == set("89ab")
