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


def pytest_collection_modifyitems(config, items):
    """The browser tier runs last: Playwright's sync API keeps an event loop running in the main
    thread while its session lasts, and tests that start their own loop (asyncio.run) cannot run
    under it."""
    items.sort(key=lambda item: "/tests/browser/" in str(item.path).replace("\\", "/"))
