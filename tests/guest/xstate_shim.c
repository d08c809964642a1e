/*
 * Loaded into linux.uml with LD_PRELOAD (tests/guest/uml.py builds it).
 *
 * The 6.1 UML kernel saves and restores each guest task's FPU state with
 * PTRACE_GETREGSET/PTRACE_SETREGSET(NT_X86_XSTATE) and a buffer of sizeof(struct _xstate):
 * x87, SSE and AVX, 832 bytes. Since Linux 5.14 the host refuses (EFAULT) a SETREGSET whose
 * buffer is not the full size of its own xstate, which is larger on a CPU with AVX-512 or AMX,
 * and UML then kills the guest's init. Restoring only the first 832 bytes would not do either:
 * glibc's string functions use the AVX-512 registers, and threads of one guest process share
 * one host process, so their AVX-512 state would leak into each other.
 *
 * So this wrapper keeps the full xstate beside each of UML's buffers: a short GETREGSET reads
 * the full state and remembers it under the buffer's address; a short SETREGSET lays UML's
 * bytes over the full state remembered for that buffer (or over the task's current one) and
 * writes it whole.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define XSTATE_MAX (64 * 1024)
#define XFEATURES_OFFSET 512 /* the xsave header follows the 512-byte legacy area */
#define UML_FEATURES 0x7ULL  /* x87, SSE, AVX: the features UML's buffer holds */
#define SLOTS 8192           /* UML buffers remembered at once (one per guest task, mostly) */

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

struct saved {
    const void *buffer; /* UML's buffer */
    size_t size;        /* bytes of state */
    unsigned char *state;
};

static ptrace_fn real;
static struct saved slots[SLOTS];
static unsigned char scratch[XSTATE_MAX];

/* The slot for buffer: its own, or a free one, or (the table being full) NULL. */
static struct saved *slot_for(const void *buffer, int make)
{
    size_t start = ((uintptr_t)buffer >> 4) % SLOTS;

    for (size_t i = 0; i < SLOTS; i++) {
        struct saved *s = &slots[(start + i) % SLOTS];
        if (s->buffer == buffer)
            return s;
        if (!s->buffer)
            return make ? s : NULL;
    }
    return NULL;
}

static long get_xstate(pid_t pid, void *addr, struct iovec *given)
{
    struct iovec whole = {scratch, sizeof(scratch)};
    long ret = real(PTRACE_GETREGSET, pid, addr, &whole);
    struct saved *s;

    if (ret != 0 || whole.iov_len <= given->iov_len)
        return real(PTRACE_GETREGSET, pid, addr, given);
    s = slot_for(given->iov_base, 1);
    if (s && (s->state || (s->state = malloc(XSTATE_MAX)))) {
        s->buffer = given->iov_base;
        s->size = whole.iov_len;
        memcpy(s->state, scratch, whole.iov_len);
    }
    memcpy(given->iov_base, scratch, given->iov_len);
    return 0;
}

static long set_xstate(pid_t pid, void *addr, struct iovec *given)
{
    struct iovec whole = {scratch, sizeof(scratch)};
    struct saved *s = slot_for(given->iov_base, 0);
    uint64_t mine, theirs;

    if (s && s->state && s->size > given->iov_len) {
        memcpy(scratch, s->state, s->size);
        whole.iov_len = s->size;
    } else if (real(PTRACE_GETREGSET, pid, addr, &whole) != 0 || whole.iov_len <= given->iov_len) {
        return real(PTRACE_SETREGSET, pid, addr, given);
    }
    if (given->iov_len < XFEATURES_OFFSET + sizeof(uint64_t))
        return real(PTRACE_SETREGSET, pid, addr, given);
    memcpy(&theirs, scratch + XFEATURES_OFFSET, sizeof(theirs));
    memcpy(scratch, given->iov_base, given->iov_len);
    memcpy(&mine, scratch + XFEATURES_OFFSET, sizeof(mine));
    mine = (mine & UML_FEATURES) | (theirs & ~UML_FEATURES);
    memcpy(scratch + XFEATURES_OFFSET, &mine, sizeof(mine));
    return real(PTRACE_SETREGSET, pid, addr, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    pid_t pid;
    void *addr, *data;

    va_start(ap, request);
    pid = va_arg(ap, pid_t);
    addr = va_arg(ap, void *);
    data = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if ((uintptr_t)addr == NT_X86_XSTATE && request == PTRACE_GETREGSET)
        return get_xstate(pid, addr, data);
    if ((uintptr_t)addr == NT_X86_XSTATE && request == PTRACE_SETREGSET)
        return set_xstate(pid, addr, data);
    return real(request, pid, addr, data);
}
