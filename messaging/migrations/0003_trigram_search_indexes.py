"""Trigram indexes so the admin's "contains" searches (phone digits, words of the text) use an index on
millions of rows. PostgreSQL only: on SQLite (embedded mode) this migration does nothing and searches scan."""
from django.db import migrations

INDEXES = {
    # `phone LIKE '%987654321%'`: a person typed part of a number.
    "msg_phone_trgm": "messaging_outboundmessage USING gin (phone gin_trgm_ops)",
    # Django's icontains is `UPPER(text::text) LIKE UPPER('%word%')`; the index is on the same expression.
    "msg_text_upper_trgm": "messaging_outboundmessage USING gin (UPPER(text) gin_trgm_ops)",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0002_admin_permissions_and_filter_indexes")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
