from django.apps import AppConfig
from django.core import checks


class EvolutionConfig(AppConfig):
    name = "evolution"
    verbose_name = "Evolution API"

    def ready(self):
        checks.register(check_rates)


def check_rates(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A rate the pacer cannot read is refused at start (`manage.py check`, every process), not at the first send."""
    from django.conf import settings

    from evolution.throttle import parse_rate

    problems = []
    for name, rate in [("EVOLUTION_RATE_LIMIT", settings.EVOLUTION_RATE_LIMIT),
                       *((f"EVOLUTION_RATE_LIMITS[{k}]", v) for k, v in settings.EVOLUTION_RATE_LIMITS.items())]:
        try:
            parse_rate(rate)
        except ValueError as error:
            problems.append(checks.Error(f"{name}: {error}", id="evolution.E001"))
    return problems
