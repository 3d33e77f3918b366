"""Pyro effect handlers (poutine messengers) of bayesnas, one effect per module."""

from bayesnas.handlers.seeded_arch import SeededArchMessenger, seeded_arch

__all__ = ["SeededArchMessenger", "seeded_arch"]
