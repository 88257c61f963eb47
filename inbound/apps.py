from django.apps import AppConfig
from django.db.models.signals import post_migrate


class InboundConfig(AppConfig):
    name = "inbound"
    verbose_name = "Replies and receipts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from inbound import receivers  # noqa: F401  (connects to messaging's message_sent)
        from inbound.keywords import ensure_default_rules

        # After migrate (and a test's flush): the opt-out words exist unless an operator has made rules of their own.
        post_migrate.connect(ensure_default_rules, sender=self, dispatch_uid="inbound.ensure_default_rules")
