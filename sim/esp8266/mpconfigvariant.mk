# The ESP8266 RAM model (see mpconfigvariant.h). Built by sim/upstream.py with
# CC="gcc -m32" and USER_C_MODULES=<this dir> (flash/, axtls/).
FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py

MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_THREAD = 0
MICROPY_PY_TERMIOS = 0
MICROPY_USE_READLINE = 0
MICROPY_VFS_FAT = 0
MICROPY_VFS_LFS1 = 0
MICROPY_VFS_LFS2 = 0

# TLS as the ESP8266 has it (ports/esp8266/Makefile): axTLS, with the port's
# AXTLS_DEFS_EXTRA (records sent in 1 KB pieces, a 1 + 4 KB receive buffer), and
# every allocation axTLS makes on the GC heap (axtls/axtls_heap.c), as
# ports/esp8266/posix_helpers.c does for the whole firmware on a board: here only
# axTLS's own sources (lib/axtls/ssl, lib/axtls/crypto) are pointed at it.
MICROPY_PY_SSL = 1
MICROPY_SSL_AXTLS = 1
MICROPY_SSL_MBEDTLS = 0
AXTLS_DEFS_EXTRA = -Dabort=abort_ -DRT_MAX_PLAIN_LENGTH=1024 -DRT_EXTRA=4096 \
	-Dmalloc=fireant_axtls_malloc -Dcalloc=fireant_axtls_calloc \
	-Drealloc=fireant_axtls_realloc -Dfree=fireant_axtls_free

# The ROMFS segment comes from flash/romfs_flash.c, not the port's empty one.
LDFLAGS_EXTRA += -Wl,--wrap=mp_vfs_rom_ioctl
