# Power-on autorun: start the firmware. Ctrl-C at the REPL stops it cleanly.
import app

app.run()
