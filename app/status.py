"""Connection follower: availability and counters on every broker (re)connect.

mqtt_as signals each connection on client.up and each loss on client.down; this
task marks the node's broker state and publishes, retained, "online" to the
status topic and the counters to the stats topic. It runs supervised like every
task: restarted after a crash while connected, it says "online" again.
"""
import json

from .node import log
from .publisher import topic


async def run(node, client, backlog, cfg):
    m = cfg["mqtt"]
    status, stats = topic(m["status_topic"], node.device), topic(m["stats_topic"], node.device)
    while True:
        if not node.broker_up:
            await client.up.wait()
            client.up.clear()
            node.broker_up = True
            node.broker_connects += 1
            log("mqtt", "connected; %d readings queued, %d dropped so far" % (len(backlog), node.dropped))
        await client.publish(status, b"online", True, 1)
        await client.publish(stats, json.dumps(node.stats()).encode(), True, 1)
        await client.down.wait()
        client.down.clear()
        node.broker_up = False
        log("mqtt", "connection lost; readings wait in the queue")
