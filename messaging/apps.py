from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from messaging.roles import ensure_roles

        # After migrate (and after a test flush) the permissions exist again; make sure the roles do too.
        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="messaging.ensure_roles")
