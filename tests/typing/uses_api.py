"""A user's program against npystream's type hints: tests/test_typing.py
runs mypy --strict on it (it must pass) and on a copy with wrong calls
(each must be reported)."""
import asyncio
from typing import List

import numpy as np
import numpy.typing as npt

import npystream
from npystream import aio


def sync_user(client: npystream.Client) -> float:
    info: npystream.TensorInfo = client.put(np.arange(12.0).reshape(3, 4), name="x", ttl=60)
    whole: npt.NDArray[np.float64] = client.fetch(info.handle)
    part = client.fetch("x", index=np.s_[0, 1:3], dtype=np.float16, progress=lambda d, t: None)
    listed: List[npystream.TensorInfo] = client.list()
    with client.subscribe("demo", ["conv1"], views={"conv1": {"dtype": "<f2"}}) as sub:
        for layer, value in sub:
            print(layer.upper(), value.shape)
            break
    try:
        client.stat("missing")
    except npystream.NotFoundError as err:
        print(err.message, err.code)
    return float(whole.sum() + part.sum()) + len(listed) + int(client.release("x"))


async def async_user(target: str) -> int:
    async with aio.Client(target) as client:
        arrays = await asyncio.gather(*(client.fetch(h, index="0") for h in ["a", "b"]))
        outputs = await client.infer("demo", {"x": np.zeros((1, 1, 28, 28), np.float32)})
        async for layer, value in client.subscribe("demo", ["fc"]):
            print(layer, value.dtype)
            break
        return len(arrays) + len(outputs)
