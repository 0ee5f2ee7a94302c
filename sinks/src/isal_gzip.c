/* The sink's gzip through ISA-L's igzip (libisal, Debian libisal-dev): one stateless call
 * compresses a whole bulk body into a caller's buffer. Compiled by build.rs against the system
 * header, so the Rust side never mirrors ISA-L's struct layout: it only allocates the stream
 * and level buffer with the sizes asked here and keeps them per thread. */
#include <isa-l/igzip_lib.h>
#include <stddef.h>
#include <stdint.h>

/* The Rust side allocates the stream as u64 words. */
_Static_assert(_Alignof(struct isal_zstream) <= 8, "isal_zstream needs more than 8-byte alignment");

size_t runnel_isal_stream_size(void) { return sizeof(struct isal_zstream); }

size_t runnel_isal_level_buf_size(void) { return ISAL_DEF_LVL1_DEFAULT; }

/* Returns 0 and the output length in *out_len, 1 when out_cap was too small, or ISA-L's
 * (negative) error code; -100 when a length does not fit ISA-L's 32-bit counters. */
int runnel_isal_gzip(void *stream, uint8_t *level_buf, size_t level_buf_len, const uint8_t *in,
                     size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len) {
    struct isal_zstream *s = stream;
    int rc;
    if (in_len > UINT32_MAX || out_cap > UINT32_MAX || level_buf_len > UINT32_MAX)
        return -100;
    isal_deflate_stateless_init(s);
    s->level = 1;
    s->level_buf = level_buf;
    s->level_buf_size = (uint32_t)level_buf_len;
    s->gzip_flag = IGZIP_GZIP;
    s->end_of_stream = 1;
    s->flush = NO_FLUSH;
    s->next_in = (uint8_t *)in;
    s->avail_in = (uint32_t)in_len;
    s->next_out = out;
    s->avail_out = (uint32_t)out_cap;
    rc = isal_deflate_stateless(s);
    if (rc == STATELESS_OVERFLOW)
        return 1;
    if (rc != COMP_OK)
        return rc;
    *out_len = s->total_out;
    return 0;
}
