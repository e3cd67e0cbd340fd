# The backlog on MicroPython's asyncio: readings in storage fixed at boot; the
# oldest is dropped and counted when full, never the one being published;
# oldest() waits for a reading.
import asyncio

from app.backlog import Backlog
from app.node import Node


async def main():
    n = Node("t")
    q = Backlog(n, 3)
    for seq in range(1, 6):
        q.put(seq, 1000 * seq, -55 + seq, 450 + seq)
    print("full:", len(q), "dropped", n.dropped, "oldest", await q.oldest())

    n = Node("t")
    q = Backlog(n, 2)
    q.put(1, 1000, 215, 450)
    q.put(2, 2000, 216, 451)
    inflight = await q.oldest()
    q.put(3, 3000, 217, 452)  # pushes 1 out, but it is on its way
    print("in flight", inflight, "pushed out: dropped", n.dropped)
    q.done(inflight[0])
    print("after done:", len(q), await q.oldest())
    q.put(4, 4000, 218, 453)
    q.put(5, 5000, 219, 454)  # 3 really is lost
    print("then: dropped", n.dropped, "oldest", await q.oldest())

    q = Backlog(Node("t"), 4)
    waiter = asyncio.create_task(q.oldest())
    await asyncio.sleep(0.05)
    print("empty oldest() waits:", not waiter.done())
    q.put(7, 7000, 215, 450)
    print("then gets", await asyncio.wait_for(waiter, 1))


asyncio.run(main())
