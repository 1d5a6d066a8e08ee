"""The asyncio network layer, the only one that touches sockets: transport, association, client, server,
addresses and the association's options (user identity)."""
