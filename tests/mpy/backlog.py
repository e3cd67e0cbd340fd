# The backlog on MicroPython's asyncio: readings in storage fixed at boot; the
# oldest is dropped and counted when full (one on its way too, restarting the
# publisher's window); wait() waits for a reading.
import asyncio

from app.backlog import Backlog
from app.node import Node


async def main():
    n = Node("t")
    q = Backlog(n, 3)
    for seq in range(1, 6):
        q.put(seq, 1000 * seq, -55 + seq, 450 + seq)
    print("full:", len(q), "dropped", n.dropped, "oldest", q.reading(0))

    n = Node("t")
    q = Backlog(n, 2)
    q.put(1, 1000, 215, 450)
    q.put(2, 2000, 216, 451)
    q.sending = 1
    gen = q.gen
    q.put(3, 3000, 217, 452)  # pushes 1 out while it is on its way
    print("pushed out on its way: dropped", n.dropped, "window restarted", q.gen != gen, "sending", q.sending)
    q.done(1)
    print("after done:", len(q), q.reading(0))

    q = Backlog(Node("t"), 4)
    waiter = asyncio.create_task(q.wait())
    await asyncio.sleep(0.05)
    print("empty wait() waits:", not waiter.done())
    q.put(7, 7000, 215, 450)
    await asyncio.wait_for(waiter, 1)
    print("then", q.available(), q.reading(0))


asyncio.run(main())
