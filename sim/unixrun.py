# Runs inside the MicroPython unix port for sim/unixport.py: main.py's entry point
# plus, when FIREANT_HEAP_MS is set, a task that logs the heap in use after a
# collection ("[ticks] heap: <live> live <free> free"). Kept off the board: a
# device that wants this figure reads it from the REPL or the stats message.
# FIREANT_TLS_FIRST (ESP8266 model): mqtt_as gets sim/tlsfirst.py as its ssl.
# FIREANT_SIM_WEATHER: the sim's air loaded first (sim/unixport.py says why).
import gc
import os

import asyncio
from time import ticks_ms

if os.getenv("FIREANT_SIM_WEATHER"):  # sim/unixport.py: the run will use it; loaded before the firmware
    import simweather  # noqa: F401

import app


async def _heap(period_ms):
    while True:
        gc.collect()
        print("[%9d] heap: %d live %d free" % (ticks_ms(), gc.mem_alloc(), gc.mem_free()))
        await asyncio.sleep_ms(period_ms)


_period = int(os.getenv("FIREANT_HEAP_MS") or 0)
if _period:
    asyncio.create_task(_heap(_period))  # asyncio.run() in app.run() runs it too
if os.getenv("FIREANT_TLS_FIRST"):  # the ESP8266 model only (sim/tlsfirst.py)
    import tlsfirst

    tlsfirst.install()
    del tlsfirst
app.run()
gc.collect()
print("[%9d] heap: %d live %d free" % (ticks_ms(), gc.mem_alloc(), gc.mem_free()))
import machine  # noqa: E402  (the sim board's: what the pins were left at)

print("[%9d] unixrun: app.run() returned; pin levels %r" % (ticks_ms(), sorted(machine.Pin.levels.items())))
