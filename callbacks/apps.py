from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "callbacks"
    verbose_name = "Status callbacks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from callbacks import receivers  # noqa: F401  (connects to messaging's message_status_changed)
