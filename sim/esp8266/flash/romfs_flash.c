// The ESP8266 model's ROMFS partition: a file mapped into memory outside the
// GC heap, as the FLASH_2M_ROMFS firmware maps its flash partition. The file is
// named by FIREANT_ROMFS; its size is the partition's. Writes (mpremote romfs
// deploy) go to the file, so an image survives a "reset" like flash does.
//
// Linked with -Wl,--wrap=mp_vfs_rom_ioctl: the port's own (an empty image)
// stays unused, and mp_init() mounts this one at /rom as a board's does.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "py/mperrno.h"
#include "py/objarray.h"
#include "py/runtime.h"
#include "extmod/vfs.h"

static uint8_t *flash;
static size_t flash_size;
static mp_obj_array_t flash_view;

static int flash_map(void) {
    if (flash != NULL) {
        return 0;
    }
    const char *path = getenv("FIREANT_ROMFS");
    int fd = path == NULL ? -1 : open(path, O_RDWR);
    if (fd < 0) {
        return -MP_ENODEV;
    }
    struct stat st;
    void *p = fstat(fd, &st) == 0 && st.st_size > 0
        ? mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (p == MAP_FAILED) {
        return -MP_ENODEV;
    }
    flash = p;
    flash_size = st.st_size;
    mp_obj_memoryview_init(&flash_view, 'B', 0, flash_size, flash);
    return 0;
}

mp_obj_t __wrap_mp_vfs_rom_ioctl(size_t n_args, const mp_obj_t *args) {
    int err = flash_map();
    if (err) {
        return MP_OBJ_NEW_SMALL_INT(mp_obj_get_int(args[0]) == MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS ? 0 : err);
    }
    switch (mp_obj_get_int(args[0])) {
        case MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS:
            return MP_OBJ_NEW_SMALL_INT(1);
        case MP_VFS_ROM_IOCTL_GET_SEGMENT:
            return MP_OBJ_FROM_PTR(&flash_view);
        case MP_VFS_ROM_IOCTL_WRITE_PREPARE: // erase, as flash is erased before it is written
            memset(flash, 0xff, flash_size);
            return MP_OBJ_NEW_SMALL_INT(4); // minimum write size, as the ESP8266's
        case MP_VFS_ROM_IOCTL_WRITE: {
            mp_int_t offset = mp_obj_get_int(args[2]);
            mp_buffer_info_t buf;
            mp_get_buffer_raise(args[3], &buf, MP_BUFFER_READ);
            if (offset < 0 || (size_t)offset + buf.len > flash_size) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            memcpy(flash + offset, buf.buf, buf.len);
            return MP_OBJ_NEW_SMALL_INT(0);
        }
        case MP_VFS_ROM_IOCTL_WRITE_COMPLETE:
            msync(flash, flash_size, MS_SYNC);
            return MP_OBJ_NEW_SMALL_INT(0);
    }
    return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
}
