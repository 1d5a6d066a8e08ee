"""The user-facing acceptor classes: :mod:`~aiodicom.scp.echo` (EchoScp), :mod:`~aiodicom.scp.store`
(StoreScp): options, events, hooks, over the server of :mod:`aiodicom.net` and the services."""
