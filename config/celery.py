"""The Celery app: its queues, the routes to them and beat's schedule, in one place.

Broker-agnostic: Redis, RabbitMQ or the filesystem (embedded mode). The tasks are in messaging/tasks.py.
"""
import functools
import json
import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_prerun, worker_process_init, worker_ready
from kombu import Exchange, Queue

from config import startup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")

TRANSACTIONAL_QUEUE = "transactional_messages"  # single sends a person waits for: the API, the admin, resends
BULK_QUEUE = "bulk_messages"  # bulk requests, campaigns, scheduled releases
MAINTENANCE_QUEUE = "maintenance"
SEND_QUEUES = (TRANSACTIONAL_QUEUE, BULK_QUEUE)
# The send task is one (send_transactional_message); a message's priority picks its queue when it is published.
QUEUE_OF_PRIORITY = {"transactional": TRANSACTIONAL_QUEUE, "bulk": BULK_QUEUE}

# Each queue has its own direct exchange, so a message routed to one queue is never copied into another. A worker
# started without -Q consumes all three; one worker consuming several takes from each in turn, so a transactional
# send waits behind at most one bulk send per worker thread, however long the bulk backlog.
app.conf.task_queues = tuple(
    Queue(name, Exchange(name), routing_key=name) for name in (TRANSACTIONAL_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE)
)
app.conf.task_default_exchange = MAINTENANCE_QUEUE
app.conf.task_default_routing_key = MAINTENANCE_QUEUE
app.conf.task_default_queue = MAINTENANCE_QUEUE
app.conf.task_routes = {
    "send_transactional_message": {"queue": TRANSACTIONAL_QUEUE},
    "send_bulk_messages": {"queue": BULK_QUEUE},
}


def new_task_id() -> str:
    """A task id as Celery makes one (``str(uuid.uuid4())``), from the same 16 random bytes with the version and
    variant bits set, at a third of the cost: a bulk request of 1,000 messages makes 1,000 of them."""
    digits = os.urandom(16).hex()
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122: 10xx


def publish_by_id(producer, task, object_id: int | list[int], *, task_id: str, queue: Queue, declare: list) -> None:
    """Publish ``task(object_id)`` on ``producer`` as Celery's own task message, straight to ``queue``; the one
    argument is an id, or a list of ids.

    The hot paths' publisher (messaging.tasks.publish_sends, inbound.tasks.publish_event): the headers
    ``create_task_message`` builds are made once per task and process and reused with each task id, and the message
    goes through the default exchange ("") to the queue. ``apply_async`` routes and re-binds the queue for every
    message, and kombu's Redis transport reads the exchange's bindings from Redis on every publish: more than the
    publish itself. ``declare`` is ``[queue.bind(producer.channel)]``, declared once per connection (kombu caches it).
    """
    headers, embed, reply_to = _task_message_template(task.name)
    retry, retry_policy = _publish_retry()
    argument = str(int(object_id)) if isinstance(object_id, int) else json.dumps([int(pk) for pk in object_id])
    producer.publish(
        f"[[{argument}], {{}}, {embed}]",
        exchange="",  # straight to the queue: no per-message binding lookup
        routing_key=queue.name,
        declare=declare,
        headers={**headers, "id": task_id, "root_id": task_id, "argsrepr": f"[{argument}]"},
        content_type="application/json",
        content_encoding="utf-8",
        correlation_id=task_id,
        reply_to=reply_to,
        retry=retry,
        retry_policy=retry_policy,
    )


@functools.cache
def _publish_retry() -> tuple[bool, dict]:
    # Read once: two lookups in Celery's layered settings were a sixth of a publish in a 1,000-message batch.
    return app.conf.task_publish_retry, app.conf.task_publish_retry_policy


@functools.cache
def _task_message_template(task_name: str) -> tuple[dict, str, str]:
    """What every message of a task shares: its headers, its embedded options (JSON) and reply_to. ignore_result
    goes in the headers too: a worker takes the message's value over the task's own."""
    task = app.tasks[task_name]
    template = app.amqp.create_task_message("", task.name, [0], {}, ignore_result=task.ignore_result)
    return template.headers, json.dumps(template.body[2]), template.properties.get("reply_to", "")


def _beat_schedule() -> dict:
    from django.conf import settings

    # Synced into the database (django-celery-beat) when beat starts; editable in the admin afterwards.
    return {
        "dispatch-due-messages": {"task": "dispatch_due_messages", "schedule": settings.MESSAGING_DISPATCH_INTERVAL_SECONDS},
        "requeue-stuck-messages": {"task": "requeue_stuck_messages", "schedule": settings.MESSAGING_SWEEP_INTERVAL_SECONDS},
        "purge-old-records": {"task": "purge_old_records", "schedule": crontab(hour=3, minute=17)},
        "check-paused-instances": {"task": "check_paused_instances", "schedule": 10.0},
        # Campaigns: start the runs that are due (the database is the schedule) and complete the finished ones.
        "start-due-campaign-runs": {"task": "start_due_campaign_runs", "schedule": 10.0},
        # Wakes a contact's batch whose countdown was lost, and events whose task never ran (inbound/tasks.py).
        "inbound-tick": {"task": "inbound_tick", "schedule": 5.0},
        # Status callbacks whose task was lost (callbacks/services.py: wake_due_deliveries).
        "wake-due-callbacks": {"task": "wake_due_callbacks", "schedule": 30.0},
    }


app.conf.beat_schedule = _beat_schedule()
app.autodiscover_tasks()


@task_prerun.connect
def close_old_database_connections(task=None, **kwargs):
    """Before each task, what Django does before each request: drop a connection that is broken or past
    DATABASE_CONN_MAX_AGE (CELERY_DB_REUSE_MAX stops Celery from closing every connection every time)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_process_init.connect  # each prefork child: its sends run in it
@worker_ready.connect  # the main process: where a threads or solo pool runs its sends
def start_worker_heartbeat(**kwargs):
    """Tell the sweeper this process is alive, so it takes over a dead worker's sends within seconds
    (messaging/heartbeats.py)."""
    from messaging import heartbeats

    heartbeats.start()


@worker_process_init.connect
@worker_ready.connect
def freeze_startup_objects(**kwargs):
    startup.freeze_startup_objects()
