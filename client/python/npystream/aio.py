"""npystream for asyncio::

    from npystream import aio
    async with aio.Client("127.0.0.1:50051") as client:
        arr = await client.fetch("x", index="0, 2:8")
        async for layer, value in client.subscribe("demo", ["conv1"]):
            ...

The same methods as npystream.Client, as coroutines (subscribe: an async
iterator), and the same npystream.Error subclasses.
"""
from ._aio_client import Client, Subscription

__all__ = ["Client", "Subscription"]
