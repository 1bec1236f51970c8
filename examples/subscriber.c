/* Subscribe to rtpose's pose stream from C, with libzmq and msgpack-c.
 *
 *   cc -O2 -o subscriber subscriber.c $(pkg-config --cflags --libs libzmq msgpack)
 *   ./subscriber tcp://127.0.0.1:5555 [COUNT]
 *
 * (Debian/Ubuntu: apt install libzmq3-dev libmsgpack-dev; msgpack-c 6 names its
 * pkg-config module msgpack-c.) Prints one line per pose: stream, frame,
 * capture-to-receive latency, then x y likelihood of every bodypart. The wire
 * format is described in docs/protocol.md. Assumes a little-endian host (x86,
 * ARM), like the float32 arrays on the wire.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MAX_BODYPARTS 256
#define MAX_NAME 64

static char bodyparts[MAX_BODYPARTS][MAX_NAME]; /* stream 0's names, from the header */
static uint32_t n_bodyparts = 0;
static uint64_t header_id = 0;
static int have_header = 0;

/* Value of `key` in a msgpack map, or NULL. */
static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, key, n) == 0)
            return &kv->val;
    }
    return NULL;
}

/* Integer fields are unsigned on the wire unless negative (latencies can be). */
static int64_t as_int(const msgpack_object *o) {
    if (o == NULL) return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return o->via.i64;
    return 0;
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock rtpose stamps frames with */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_header(const msgpack_object *h) {
    const msgpack_object *streams = get(h, "streams");
    if (streams == NULL || streams->type != MSGPACK_OBJECT_ARRAY || streams->via.array.size == 0) return;
    const msgpack_object *bps = get(&streams->via.array.ptr[0], "bodyparts");
    if (bps == NULL || bps->type != MSGPACK_OBJECT_ARRAY || bps->via.array.size > MAX_BODYPARTS) return;
    n_bodyparts = bps->via.array.size;
    for (uint32_t i = 0; i < n_bodyparts; i++) {
        const msgpack_object_str *s = &bps->via.array.ptr[i].via.str;
        size_t len = s->size < MAX_NAME - 1 ? s->size : MAX_NAME - 1;
        memcpy(bodyparts[i], s->ptr, len);
        bodyparts[i][len] = '\0';
    }
    header_id = (uint64_t)as_int(get(h, "hdr"));
    have_header = 1;
}

/* Returns 1 if a line was printed. */
static int on_pose(const msgpack_object *m, int64_t t_recv_ns) {
    if (!have_header || (uint64_t)as_int(get(m, "hdr")) != header_id) return 0; /* wait for its header */
    if (as_int(get(m, "stream")) != 0) return 0; /* this sketch follows stream 0 only */
    const msgpack_object *pose = get(m, "pose");
    if (pose == NULL || pose->type != MSGPACK_OBJECT_BIN || pose->via.bin.size != n_bodyparts * 12) return 0;
    float xyl[3 * MAX_BODYPARTS];
    memcpy(xyl, pose->via.bin.ptr, pose->via.bin.size); /* float32 little-endian: x, y, likelihood */
    int64_t t_capture_ns = as_int(get(m, "t_capture_ns"));
    printf("stream %lld frame %lld latency_ms %.3f", (long long)as_int(get(m, "stream")),
           (long long)as_int(get(m, "frame")), (t_recv_ns - t_capture_ns) / 1e6);
    for (uint32_t k = 0; k < n_bodyparts; k++)
        printf(" %s %.3f %.3f %.4f", bodyparts[k], xyl[3 * k], xyl[3 * k + 1], xyl[3 * k + 2]);
    printf("\n");
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    const char *address = argc > 1 ? argv[1] : "tcp://127.0.0.1:5555";
    long count = argc > 2 ? atol(argv[2]) : -1;
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "header", 6);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "pose", 4);
    if (zmq_connect(sub, address) != 0) {
        fprintf(stderr, "cannot connect to %s: %s\n", address, zmq_strerror(zmq_errno()));
        return 2;
    }
    static char payload[1 << 20];
    char topic[32];
    long printed = 0;
    while (count < 0 || printed < count) {
        int tn = zmq_recv(sub, topic, sizeof topic, 0); /* frame 1: topic */
        if (tn < 0) break;
        int more = 0;
        size_t more_size = sizeof more;
        zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &more_size);
        if (!more) continue;
        int n = zmq_recv(sub, payload, sizeof payload, 0); /* frame 2: msgpack payload */
        int64_t t_recv_ns = monotonic_ns();
        if (n < 0 || n > (int)sizeof payload) continue; /* error or truncated */
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        if (msgpack_unpack_next(&msg, payload, (size_t)n, NULL) == MSGPACK_UNPACK_SUCCESS &&
            as_int(get(&msg.data, "v")) == 1) {
            if (tn == 6 && memcmp(topic, "header", 6) == 0)
                on_header(&msg.data);
            else if (tn == 4 && memcmp(topic, "pose", 4) == 0)
                printed += on_pose(&msg.data, t_recv_ns);
        }
        msgpack_unpacked_destroy(&msg);
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return 0;
}
