"""The whole of snnx's author kit for this package: one line."""

pytest_plugins = ["snnx.testing"]
