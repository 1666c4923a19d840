"""Typed errors of the tern client.

Every error the client raises is a :class:`TernError`. Errors the broker
reports in an ERR frame map to one class per wire code (``code`` holds the
wire code, ``str(err)`` the broker's message); errors the client detects on
its own (a closed connection, a timeout, a full buffer) have their own
classes with ``code`` 0.
"""

from __future__ import annotations

__all__ = [
    "TernError",
    "ProtocolError",
    "AuthError",
    "PermissionDeniedError",
    "InvalidTopicError",
    "FrameTooLargeError",
    "SlowConsumerError",
    "ConnectTimeoutError",
    "UnknownSidError",
    "DuplicateSidError",
    "TooManySubscriptionsError",
    "TooManyConnectionsError",
    "StaleConnectionError",
    "PayloadTooLargeError",
    "ServerError",
    "ConnectionClosedError",
    "DisconnectedError",
    "GoAwayError",
    "TernTimeoutError",
    "PublishTimeoutError",
    "NoRespondersError",
    "OutboundBufferFullError",
    "CircuitOpenError",
    "TLSError",
    "error_from_wire",
    "FATAL_CODES",
]


class TernError(Exception):
    """Base class of every error raised by the tern client.

    ``code`` is the protocol's ERR code when the broker reported the error,
    0 when the client detected it.
    """

    code: int = 0

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or "")
        if code is not None:
            self.code = code


class ProtocolError(TernError):
    """Protocol error: a malformed frame, an unknown type or a bad field
    (ERR 1 from the broker, or a frame from the server the client could not
    accept)."""

    code = 1


class AuthError(TernError):
    """Authentication failed (ERR 2)."""

    code = 2


class PermissionDeniedError(TernError):
    """Permission denied, e.g. a publish to a ``$`` topic (ERR 3)."""

    code = 3


class InvalidTopicError(TernError, ValueError):
    """Invalid topic or pattern (ERR 4, or refused by the client before
    sending)."""

    code = 4


class FrameTooLargeError(TernError):
    """Frame too large (ERR 5)."""

    code = 5


class SlowConsumerError(TernError):
    """The broker closed this connection as a slow consumer (ERR 6)."""

    code = 6


class ConnectTimeoutError(TernError, TimeoutError):
    """The handshake did not finish in time (ERR 7 from the broker, or the
    client's connect_timeout)."""

    code = 7


class UnknownSidError(TernError):
    """Unknown subscription id (ERR 8)."""

    code = 8


class DuplicateSidError(TernError):
    """Duplicate subscription id (ERR 9)."""

    code = 9


class TooManySubscriptionsError(TernError):
    """Too many subscriptions on this connection (ERR 10)."""

    code = 10


class TooManyConnectionsError(TernError):
    """The broker has too many connections (ERR 11)."""

    code = 11


class StaleConnectionError(TernError):
    """Stale connection: heartbeats missed (ERR 12 from the broker, or the
    client heard nothing from the broker for two heartbeat periods)."""

    code = 12


class PayloadTooLargeError(TernError, ValueError):
    """Payload above the broker's max_payload (ERR 13, or refused by the
    client before sending)."""

    code = 13


class ServerError(TernError):
    """An ERR code this client does not know."""


class ConnectionClosedError(TernError):
    """The connection is closed (by close(), or lost for good)."""


class DisconnectedError(TernError):
    """The connection was lost while the operation was in flight; the client
    is reconnecting and the operation may be retried."""


class GoAwayError(TernError):
    """The server is shutting down (GOAWAY)."""


class TernTimeoutError(TernError, TimeoutError):
    """An operation timed out (flush, ack, request)."""


class PublishTimeoutError(TernTimeoutError):
    """publish() waited longer than its timeout for room in the outbound
    buffer: the broker is holding this publisher back (a full ``block``
    subscription) or the network is not draining."""


class NoRespondersError(TernError):
    """Nobody is subscribed to the request's topic."""


class OutboundBufferFullError(TernError):
    """The offline buffer (publishes made while disconnected) is full."""


class CircuitOpenError(TernError):
    """The request topic's circuit breaker is open: requests fail at once
    until its cool-down ends."""


class TLSError(TernError):
    """TLS failed: the configuration (a CA, certificate or key file that
    cannot be read), or the handshake. ``str(err)`` names the reason the
    way libtern does: "TLS handshake: certificate verify failed: ..." when
    this client refused the server's certificate (unknown CA, name
    mismatch, expired), the broker's alert when the broker refused this
    client's certificate ("tlsv1 alert unknown ca", "sslv3 alert
    certificate expired", "tlsv13 alert certificate required"), "not TLS"
    when a tls:// server answered in plaintext. The ``ssl`` exception, when
    there was one, is the ``__cause__``."""


_BY_CODE: dict[int, type[TernError]] = {
    1: ProtocolError,
    2: AuthError,
    3: PermissionDeniedError,
    4: InvalidTopicError,
    5: FrameTooLargeError,
    6: SlowConsumerError,
    7: ConnectTimeoutError,
    8: UnknownSidError,
    9: DuplicateSidError,
    10: TooManySubscriptionsError,
    11: TooManyConnectionsError,
    12: StaleConnectionError,
    13: PayloadTooLargeError,
}

#: ERR codes after which the broker closes the connection.
FATAL_CODES = frozenset({1, 2, 5, 6, 7, 11, 12})


def error_from_wire(code: int, message: str) -> TernError:
    """The exception for an ERR frame ``[10, code, message]``."""
    cls = _BY_CODE.get(code, ServerError)
    return cls(message, code)
