# The ESP8266 RAM model (see mpconfigvariant.h). Built by sim/upstream.py with
# CC="gcc -m32" and USER_C_MODULES=<this dir>/flash.
FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py

MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_SSL = 0
MICROPY_PY_THREAD = 0
MICROPY_PY_TERMIOS = 0
MICROPY_USE_READLINE = 0
MICROPY_VFS_FAT = 0
MICROPY_VFS_LFS1 = 0
MICROPY_VFS_LFS2 = 0

# The ROMFS segment comes from flash/romfs_flash.c, not the port's empty one.
LDFLAGS_EXTRA += -Wl,--wrap=mp_vfs_rom_ioctl
