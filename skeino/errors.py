"""Domain errors raised below the routers; the API maps each to one HTTP status."""


class SkeinoError(Exception):
    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(SkeinoError):
    status_code = 404


class Conflict(SkeinoError):
    status_code = 409


class Invalid(SkeinoError):
    """A request that parsed but makes no sense (e.g. input and command together)."""

    status_code = 422


class BadRequest(SkeinoError):
    status_code = 400


class NotSupported(SkeinoError):
    """A documented option skeino does not implement yet: refused, never silently ignored."""

    status_code = 501


class Unavailable(SkeinoError):
    """The server cannot serve now (e.g. storage does not answer); the client may retry."""

    status_code = 503
