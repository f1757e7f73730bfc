"""Shared pytest set-up: only what every test module can rely on."""

import hypothesis

# Jitted code compiles on a hypothesis example's first call, which would
# trip hypothesis' per-example deadline on a loaded machine.
hypothesis.settings.register_profile("optaxswap", deadline=None)
hypothesis.settings.load_profile("optaxswap")
