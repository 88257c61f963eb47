from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from campaigns import receivers  # noqa: F401  (connects to inbound's contact_opted_out)
        from messaging.roles import ensure_roles

        # The campaign permissions exist only once this app has migrated, after messaging's own post_migrate.
        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="campaigns.ensure_roles")
