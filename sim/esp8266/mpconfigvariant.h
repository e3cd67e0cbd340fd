// The ESP8266 RAM model: the unix port configured like ports/esp8266, so that
// a -X heapsize=38K run allocates what an ESP8266's 38 KB heap would. Built
// 32-bit (gcc -m32) by sim/upstream.py; what differs from a board is listed in
// docs/esp8266.md.

// The ESP8266's object model: 32-bit words, floats inside the object word (no
// heap allocation per float), single precision, the same feature level.
#define MICROPY_CONFIG_ROM_LEVEL       (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_OBJ_REPR               (MICROPY_OBJ_REPR_C)
#define MICROPY_FLOAT_IMPL             (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_LONGINT_IMPL           (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_GC_STACK_ENTRY_TYPE    uint16_t
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)  // size 0, as the port: none unless allocated
#define MICROPY_PERSISTENT_CODE_LOAD   (1)
#define MICROPY_ERROR_REPORTING        (MICROPY_ERROR_REPORTING_NORMAL)
#define MICROPY_WARNINGS               (1)

// What the ESP8266 port switches off to save RAM (ports/esp8266/mpconfigport.h).
#define MICROPY_COMP_MODULE_CONST      (0)
#define MICROPY_COMP_TRIPLE_TUPLE_ASSIGN (0)
#define MICROPY_COMP_RETURN_IF_EXPR    (0)
#define MICROPY_OPT_LOAD_ATTR_FAST_PATH (0)
#define MICROPY_OPT_MAP_LOOKUP_CACHE   (0)
#define MICROPY_PY_BUILTINS_COMPLEX    (0)
#define MICROPY_MODULE___FILE__        (0)
#define MICROPY_OPT_MPZ_BITWISE        (0)
#define MICROPY_OPT_MATH_FACTORIAL     (0)
#define MICROPY_REPL_EMACS_KEYS        (0)
#define MICROPY_PY_DELATTR_SETATTR     (0)
#define MICROPY_PY_BUILTINS_STR_CENTER (0)
#define MICROPY_PY_BUILTINS_STR_PARTITION (0)
#define MICROPY_PY_BUILTINS_STR_SPLITLINES (0)
#define MICROPY_PY_BUILTINS_SLICE_INDICES (0)
#define MICROPY_PY_BUILTINS_EXECFILE   (0)
#define MICROPY_PY_BUILTINS_NOTIMPLEMENTED (0)
#define MICROPY_PY_BUILTINS_POW3       (0)
#define MICROPY_PY_MATH_CONSTANTS      (0)
#define MICROPY_PY_MATH_SPECIAL_FUNCTIONS (0)
#define MICROPY_PY_MATH_FACTORIAL      (0)
#define MICROPY_PY_MATH_ISCLOSE        (0)
#define MICROPY_PY_SYS_PS1_PS2         (0)
#define MICROPY_PY_BINASCII_CRC32      (0)
#define MICROPY_PY_RANDOM_EXTRA_FUNCS  (0)
#define MICROPY_FLOAT_FORMAT_IMPL      (MICROPY_FLOAT_FORMAT_IMPL_BASIC)
#define MICROPY_PY_STR_BYTES_CMP_WARN  (1)
#define MICROPY_ALLOC_LEXER_INDENT_INIT (8)
#define MICROPY_ALLOC_PARSE_RULE_INIT  (48)
#define MICROPY_ALLOC_PARSE_RULE_INC   (8)
#define MICROPY_ALLOC_PARSE_RESULT_INC (8)
#define MICROPY_ALLOC_PARSE_CHUNK_INIT (64)
// Kept, unlike the port: compile(), which the board emulator's REPL (sim/boardvm.py)
// runs requests with; a board's raw REPL does that in C.
#define MICROPY_PY_HASHLIB_MD5         (0)
#define MICROPY_PY_HASHLIB_SHA1        (MICROPY_PY_SSL && MICROPY_SSL_AXTLS)

// mqtt_as and app/ take their ESP8266 branches.
#define MICROPY_PY_SYS_PLATFORM        "esp8266"

// Host needs: files, environment, the clock, sockets, a Ctrl-C, -v.
#define MICROPY_ASYNC_KBD_INTR         (1)
#define MICROPY_DEBUG_PRINTERS         (1)
#define MICROPY_STREAMS_POSIX_API      (1)
#define MICROPY_PY_OS_INCLUDEFILE      "ports/unix/modos.c"
#define MICROPY_PY_OS_ERRNO            (1)
#define MICROPY_PY_OS_GETENV_PUTENV_UNSETENV (1)
#define MICROPY_PY_OS_URANDOM          (1)
#define MICROPY_PY_TIME                (1)
#define MICROPY_PY_TIME_TIME_TIME_NS   (1)
#define MICROPY_PY_TIME_CUSTOM_SLEEP   (1)
#define MICROPY_PY_TIME_INCLUDEFILE    "ports/unix/modtime.c"
#define MICROPY_PY_SELECT_POSIX_OPTIMISATIONS (1)
#define MICROPY_PY_SELECT_SELECT       (0)
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC (mp_random_seed_init())
#define MICROPY_PY_MACHINE             (0)

// ROMFS as on the FLASH_2M_ROMFS firmware: mounted at /rom at start-up, its
// .mpy files executed in place. The image is a file mapped outside the GC heap
// (flash/romfs_flash.c); MICROPY_VFS_ROM_IOCTL is (re)defined there.
#define MICROPY_VFS_ROM                (1)
#define MICROPY_VFS_ROM_IOCTL          (1)
