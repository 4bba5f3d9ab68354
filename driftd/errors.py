"""Error hierarchy. Only ``cli.py`` turns these into exit codes."""

from __future__ import annotations


class DriftdError(Exception):
    """Root of every error driftd raises on purpose."""


class ConfigError(DriftdError):
    """Bad configuration or usage. ``key`` names the offending setting (dotted path)."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


class ConfigErrors(ConfigError):
    """Several configuration problems at once (reported together, each naming its key)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.key, first.problem)
        self.args = ("\n".join(str(e) for e in errors),)


def raise_all(errors: list[ConfigError]) -> None:
    """Raise nothing, the one error, or all of them as :class:`ConfigErrors`."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)


class SourceError(DriftdError):
    """The event source failed in a way the loop cannot absorb."""


class StateError(DriftdError):
    """State directory or checkpoint problem."""


class ActionDeliveryError(DriftdError):
    """A webhook delivery attempt failed; ``retry_after_s`` is set when the receiver asked."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, final: bool = False
    ) -> None:
        self.retry_after_s = retry_after_s
        self.final = final
        super().__init__(message)
