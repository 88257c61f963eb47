"""The operator console, in Django's admin.

- site.py: the site's titles, the console's pages first in the app list, Celery's results read-only;
- messages.py: the messages admin (changelist, message page, compose, actions and buttons);
- forms.py: the compose form and the read-only message form; filters.py: the changelist's filters.
The dashboard the messages admin serves lives in messaging/dashboard/.
"""
from messaging.admin import messages, site  # noqa: F401  (importing them registers them)
