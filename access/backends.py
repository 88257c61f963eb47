"""Admin login lockouts: django-axes' check, for logins that come over HTTP."""
from axes.backends import AxesStandaloneBackend


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuses a username and address locked out by repeated wrong passwords (settings: AXES_*).

    ``authenticate()`` without a request is code, not a visitor (``manage.py shell``, the test client's
    ``login()``): there is no address to lock out, so it is left to the next backend instead of refused.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
