from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CallbacksConfig(AppConfig):
    name = "callbacks"
    verbose_name = "Status callbacks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from callbacks import receivers  # noqa: F401  (connects to messaging's message_status_changed)
        from messaging.roles import ensure_roles

        # The roles grant callbacks' permissions, which exist only once this app's post_migrate made them.
        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="callbacks.ensure_roles")
