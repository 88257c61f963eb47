"""Records the console shows but never lets anyone write by hand: send attempts, Celery's task results."""


class ReadOnly:
    """Mixed into a ModelAdmin or an inline before Django's class: no add, change or delete, for anyone."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
