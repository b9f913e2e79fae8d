"""Suite-wide settings."""

from hypothesis import HealthCheck, settings

# Deterministic examples and no per-example deadline: CI runs on 2 cores next to a live Open WebUI,
# so timing says nothing about correctness there (timing lives in bench/).
settings.register_profile(
    "pack",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("pack")
