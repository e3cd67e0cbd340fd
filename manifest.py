# fireant frozen into a MicroPython firmware: its bytecode then runs from flash
# and its names live in ROM, leaving the heap to the tasks (an ESP8266 needs this
# or ROMFS; docs/boards.md). From a MicroPython checkout, with lib/ filled
# (./fireant upstream or python deploy.py deps --host):
#
#   make -C ports/esp8266 BOARD=ESP8266_GENERIC FROZEN_MANIFEST=/path/to/fireant/manifest.py
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/fireant/manifest.py
#
# Then flash the firmware and put main.py, boot.py and the settings on the
# filesystem (python deploy.py sees app frozen in; --layout frozen insists); app/
# must not be there as well (deploy.py deletes it): the filesystem comes first on
# sys.path and would shadow the frozen copy.
options.defaults(base=True, lib="lib")

if options.base:
    include("$(PORT_DIR)/boards/manifest.py")  # the port's own set: _boot, dht, networking
    include("$(MPY_DIR)/extmod/asyncio")  # in ESP32's base set; ESP8266 boards add it themselves

metadata(description="fireant: a DHT22/DHT11 node that keeps sensing whatever the network does",
         version="0.1.0")
package("app")
# The libraries as deploy.py installs them (package.json pins the commits).
package("mqtt_as", files=["__init__.py"], base_path=options.lib)
package("primitives", files=["__init__.py", "ringbuf_queue.py"], base_path=options.lib)
module("microdot.py", base_path=options.lib)  # the provisioning portal's web server (app/portal.py)
