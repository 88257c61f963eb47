"""The Celery app and its queues; the beat schedule is in settings. Broker-agnostic: Redis, RabbitMQ or the filesystem."""
import os

from celery import Celery
from celery.signals import task_prerun
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")

TRANSACTIONAL_QUEUE = "transactional_messages"
MAINTENANCE_QUEUE = "maintenance"

# Each queue has its own direct exchange, so a message routed to one queue is never copied into the other.
app.conf.task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in (TRANSACTIONAL_QUEUE, MAINTENANCE_QUEUE))
app.conf.task_default_exchange = MAINTENANCE_QUEUE
app.conf.task_default_routing_key = MAINTENANCE_QUEUE
app.conf.task_default_queue = MAINTENANCE_QUEUE
app.conf.task_routes = {"send_transactional_message": {"queue": TRANSACTIONAL_QUEUE}}

app.autodiscover_tasks()


@task_prerun.connect
def close_old_database_connections(task=None, **kwargs):
    """Before each task, what Django does before each request: drop a connection that is broken or past
    DATABASE_CONN_MAX_AGE (CELERY_DB_REUSE_MAX stops Celery from closing every connection every time)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
