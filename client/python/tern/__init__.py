"""tern: an asyncio client for the tern publish/subscribe broker.

Pure Python, speaking tern's wire protocol (version 1) directly, with
msgpack as its only dependency::

    import tern

    async with await tern.connect("tern://127.0.0.1:7421", name="worker") as nc:
        async with nc.subscribe("orders.>", queue="workers") as sub:
            await nc.publish("orders.new", b"42")
            async for msg in sub:
                print(msg.topic, msg.data)
                break

Over TLS (mutual TLS with a client certificate)::

    nc = await tern.connect("tls://broker.example:7421", tls_ca_file="ca.pem",
                            tls_cert_file="client.pem", tls_key_file="client.key")

See :func:`connect`, :func:`make_tls_context`, :class:`Connection`,
:class:`Subscription`, :class:`Msg` and :mod:`tern.errors`.
"""

from .client import Connection, Msg, Status, Subscription, connect, make_tls_context
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = ["connect", "make_tls_context", "Connection", "Subscription", "Msg", "Status", "__version__", *_errors_all]
