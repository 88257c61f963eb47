"""Campaign tasks: thin, they take ids and call a service. Beat's schedule is in config/celery.py."""
from celery import shared_task

from campaigns import contact_import, services


@shared_task(name="start_due_campaign_runs")
def start_due_campaign_runs(campaign_id: int | None = None) -> dict:
    """Beat's due-check (every few seconds, and each campaign's recurrence): start due runs, finish done ones."""
    started = services.start_due_runs(campaign_id=campaign_id)
    return {"started": [run.pk for run in started], "finished": services.finish_runs()}


@shared_task(name="prepare_campaign_run")
def prepare_campaign_run(run_id: int) -> dict:
    run = services.prepare_run(run_id=run_id)
    return {"run": run.pk, "messages": run.created, "skipped": run.skipped}


@shared_task(name="import_contacts")
def import_contacts(import_id: int) -> dict:
    upload = contact_import.import_contacts(import_id=import_id)
    return {"import": import_id, "accepted": upload.accepted if upload else None}
