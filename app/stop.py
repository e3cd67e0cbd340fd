"""The goodbye after Ctrl-C (app.run()): loaded only then, when the tasks' RAM is free."""
import asyncio

from .node import log


async def stop(fw):
    """Say goodbye to the broker and switch the LED off. Bounded in time: a
    publish abandoned mid-flight may hold mqtt_as's lock for ever. Survives
    any failure, MemoryError included: every step is tried, the LED first."""
    import gc

    fw.led.set(False)
    gc.collect()  # the cancelled tasks' frames are garbage now: the goodbye needs their room
    try:
        moved = fw.backlog.flush()  # RAM's readings to flash: the next boot sends them
        if moved:
            log("app", "%d readings kept on flash for the next start" % moved)
    except Exception as e:  # MemoryError: the goodbye still goes
        log("app", "could not keep the queued readings on flash (%r)" % e)
    said = True
    if fw.node.broker_up:
        try:
            # QoS 0: after Ctrl-C mqtt_as's reader task is gone, so a PUBACK would
            # never be seen; TCP still delivers this ahead of the DISCONNECT.
            await asyncio.wait_for(fw.client.publish(fw.status.topic, b"offline", True, 0), 2)
        except Exception as e:  # TimeoutError, OSError, MemoryError
            said = False
            log("app", "could not publish offline (%r): the will says it" % e)
    try:
        if not said:
            raise OSError  # a clean DISCONNECT would make the broker discard the will
        await asyncio.wait_for(fw.client.disconnect(), 2)
    except Exception:
        # mqtt_as's documented way out: it closes the socket, the broker then
        # publishes the will. (Its station calls reach wifi.Link: Wi-Fi stays up.)
        fw.client.close()
    try:
        log("app", "stopped:", fw.status.telemetry().decode())
    except MemoryError:
        log("app", "stopped")
