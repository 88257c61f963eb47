"""The benchmarks' environment: what `make bench` measures must not depend on the shell it is run from."""
import threading
import time

import pytest
from redis import connection as redis_connection

from bench import ceiling, harness


def test_benchmarks_run_with_pacing_off_whatever_the_callers_environment_says(monkeypatch):
    monkeypatch.setenv("EVOLUTION_RATE_LIMIT", "20/m")
    monkeypatch.setenv("EVOLUTION_RATE_LIMITS", "console=1/s")
    monkeypatch.setenv("EVOLUTION_SEND_JITTER_SECONDS", "2")

    env = harness.child_env()

    assert (env["EVOLUTION_RATE_LIMIT"], env["EVOLUTION_RATE_LIMITS"], env["EVOLUTION_SEND_JITTER_SECONDS"]) == ("", "", "0")


def test_a_benchmark_empties_the_tables_only_after_the_warm_up_s_requests_are_answered(tmp_path):
    log = tmp_path / "gunicorn.log"
    log.write_bytes(b'127.0.0.1 - - [x] "POST /messages/bulk HTTP/1.1" 202 9\n')
    line = b'127.0.0.1 - - [x] "POST /messages HTTP/1.1" 202 9\n'

    def answer_later():
        for _ in range(3):
            time.sleep(0.3)
            with log.open("ab") as out:
                out.write(line)

    writer = threading.Thread(target=answer_later)
    writer.start()
    harness.wait_until_answered(log, path="/messages", sent=3, still_for=5)
    assert log.read_bytes().count(b'"POST /messages HTTP/1.1"') == 3  # not before the third answer
    writer.join()

    # A request cut off before its body was sent is never answered: the count stands still, and that is the end.
    started = time.monotonic()
    harness.wait_until_answered(log, path="/messages", sent=4, still_for=0.5)
    assert 0.5 <= time.monotonic() - started < 5


@pytest.mark.django_db
def test_the_ceiling_benchmark_s_path_is_the_api_s_json_404_with_no_database_or_redis_work(
        client, django_assert_num_queries, monkeypatch):
    commands = []
    send_command = redis_connection.AbstractConnection.send_command
    monkeypatch.setattr(redis_connection.AbstractConnection, "send_command",
                        lambda self, *args, **kwargs: commands.append(args) or send_command(self, *args, **kwargs))
    client.get(ceiling.PATH)  # the first request of a process may set things up

    with django_assert_num_queries(0):
        response = client.get(ceiling.PATH)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert commands == []
