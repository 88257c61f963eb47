from messaging.tests.conftest import api, user  # noqa: F401  (an Operators user and its token client)
