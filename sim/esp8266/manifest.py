# What the ESP8266 model has in ROM: asyncio, frozen as on ESP8266 firmware,
# and the simulated board's modules (C in a board's ROM) with the runner.
include("$(MPY_DIR)/extmod/asyncio")
for name in ("simboard", "machine", "network", "dht", "esp"):
    module(name + ".py", base_path="../board")
module("unixrun.py", base_path="..")
