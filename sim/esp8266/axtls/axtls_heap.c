// axTLS's memory on the GC heap, as on an ESP8266.
//
// The ESP8266 port gives every malloc/calloc/realloc/free in its firmware to
// the GC heap, so a TLS connection's buffers (the SSL object with its ~5 KB
// record buffer, the RSA and bigint state of the handshake, the certificate
// being parsed) are taken from the same 38 KB as Python's objects. The model
// cannot replace malloc for the whole process: the unix port and libc allocate
// with it before the GC heap exists, and the GC heap itself comes from it. So
// only axTLS is pointed here: sim/esp8266/mpconfigvariant.mk compiles
// lib/axtls/ssl/*.c and crypto/*.c with -Dmalloc=fireant_axtls_malloc and so on
// (AXTLS_DEFS_EXTRA). extmod/modtls_axtls.c allocates its objects with
// m_new/mp_obj_malloc, on the GC heap already.
//
// A block handed out here is found by the collector the way it is on a board:
// through the SSLSocket object (which points at axTLS's SSL_CTX and SSL) and
// from there, conservatively, through every pointer those blocks hold.
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "py/gc.h"

void *fireant_axtls_malloc(size_t size);
void *fireant_axtls_calloc(size_t count, size_t size);
void *fireant_axtls_realloc(void *ptr, size_t size);
void fireant_axtls_free(void *ptr);

void *fireant_axtls_malloc(size_t size) {
    void *p = gc_alloc(size, 0);
    if (p == NULL) {
        errno = ENOMEM; // as malloc() says it; axTLS checks for NULL (or not)
    }
    return p;
}

void *fireant_axtls_calloc(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = fireant_axtls_malloc(count * size);
    if (p != NULL) {
        memset(p, 0, count * size); // gc_alloc clears too; calloc promises it
    }
    return p;
}

void *fireant_axtls_realloc(void *ptr, size_t size) {
    void *p = gc_realloc(ptr, size, true);
    if (p == NULL && size != 0) {
        errno = ENOMEM;
    }
    return p;
}

void fireant_axtls_free(void *ptr) {
    gc_free(ptr); // NULL and a locked heap (a finaliser closing a socket) are no-ops there
}
