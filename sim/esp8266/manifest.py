# What the ESP8266 model has in ROM: asyncio and micropython-lib's ssl (the
# wrapper over the C tls module that mqtt_as imports), frozen as on ESP8266
# firmware (ports/esp8266/boards/manifest.py: bundle-networking), and the
# simulated board's modules (C in a board's ROM) with the runner.
include("$(MPY_DIR)/extmod/asyncio")
require("ssl")
for name in ("simboard", "machine", "simwdt", "network", "dht", "esp"):
    module(name + ".py", base_path="../board")
module("unixrun.py", base_path="..")
module("tlsfirst.py", base_path="..")  # run(..., tls_first=True): sim/tlsfirst.py
