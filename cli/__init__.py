"""cli: the ``verde`` command. Parses arguments and calls the layers below; nothing more."""
