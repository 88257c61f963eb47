"""The Celery app: queues, routes and the beat schedule. Broker-agnostic: Redis, RabbitMQ or the filesystem."""
import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")

TRANSACTIONAL_QUEUE = "transactional_messages"
MAINTENANCE_QUEUE = "maintenance"

app.conf.task_queues = (Queue(TRANSACTIONAL_QUEUE), Queue(MAINTENANCE_QUEUE))
app.conf.task_default_queue = MAINTENANCE_QUEUE
app.conf.task_routes = {"send_transactional_message": {"queue": TRANSACTIONAL_QUEUE}}

app.autodiscover_tasks()
