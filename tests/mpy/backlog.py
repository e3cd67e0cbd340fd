# The backlog on MicroPython's asyncio: the oldest reading is dropped and
# counted when full, never the one being published; oldest() waits.
import asyncio

from app.backlog import Backlog
from app.node import Node


async def main():
    n = Node("t")
    q = Backlog(n, 3)
    for seq in range(1, 6):
        q.put((seq,))
    print("full:", len(q), "dropped", n.dropped, "oldest", await q.oldest())

    n = Node("t")
    q = Backlog(n, 2)
    q.put((1,))
    q.put((2,))
    inflight = await q.oldest()
    q.put((3,))  # pushes (1,) out, but it is on its way
    print("in flight pushed out: dropped", n.dropped)
    q.done(inflight)
    print("after done:", len(q), await q.oldest())
    q.put((4,))
    q.put((5,))  # (3,) really is lost
    print("then: dropped", n.dropped)

    q = Backlog(Node("t"), 4)
    waiter = asyncio.create_task(q.oldest())
    await asyncio.sleep(0.05)
    print("empty oldest() waits:", not waiter.done())
    q.put((7,))
    print("then gets", await asyncio.wait_for(waiter, 1))


asyncio.run(main())
