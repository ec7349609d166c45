"""Built-in interop profiles, one module per framework (each registers one :class:`Profile`)."""

BUILTIN_PROFILES: tuple[str, ...] = ("snntorch", "norse", "spikingjelly", "sinabs", "rockpool")
