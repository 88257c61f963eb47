"""Create the first admin user and an API token, and say how to use them. Safe to run again."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create an admin user (if missing) with an API token, and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin", help="Used only when the user is created.")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, username, password, base_url, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True, "email": f"{username}@localhost"}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        token, _ = Token.objects.get_or_create(user=user)
        password_note = password if created else "(unchanged; set it with: python manage.py changepassword %s)" % username
        self.stdout.write(
            f"\nConsole ready.\n"
            f"  Admin:    {base_url}/admin/   user {username}, password {password_note}\n"
            f"  API docs: {base_url}/docs\n"
            f"  Token:    {token.key}\n"
            f"  Try:      curl -s -X POST {base_url}/messages -H 'Authorization: Token {token.key}' "
            f"-H 'Content-Type: application/json' -d '{{\"phone\": \"+55 11 98765-4321\", \"message\": \"Hola Carlos\"}}'\n"
            f"  Evolution API: {settings.EVOLUTION_API_URL} (instance {settings.EVOLUTION_INSTANCE_NAME})\n"
        )
