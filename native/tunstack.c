/*
 * tunstack's native shim: the few Linux system calls a userspace stack needs to use a real
 * TUN/TAP device, exposed to JavaScript over Node-API (NAPI_VERSION 8).
 *
 * Conventions:
 * - Every call that reaches the kernel returns a number: >= 0 on success, -errno on failure. The
 *   TypeScript side (src/host/native.ts) turns -errno into a TunstackError with the errno name.
 *   Only wrong argument types from JavaScript throw (TypeError), since those are bugs.
 * - No libuv thread pool: every call is a non-blocking system call on the caller's thread, and
 *   packet readiness comes from a uv_poll_t on the loop. A poller in batch mode reads packets until
 *   EAGAIN (or until its buffer is full) into one JS-owned buffer and calls JavaScript once per batch
 *   with the packet count; the offsets and lengths are in a JS-owned Int32Array.
 * - Interface configuration uses SIOC* ioctls on a throwaway AF_INET datagram socket, and
 *   rtnetlink (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR) for addresses of either family. All of it
 *   applies to the network namespace the process is in.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#ifndef TUNSETVNETHDRSZ
#define TUNSETVNETHDRSZ _IOW('T', 216, int)
#endif
#ifndef TUNGETVNETHDRSZ
#define TUNGETVNETHDRSZ _IOR('T', 215, int)
#endif
#ifndef TUNSETQUEUE
#define TUNSETQUEUE _IOW('T', 217, int)
#endif
#ifndef IFA_F_NODAD
#define IFA_F_NODAD 0x02
#endif

/* ------------------------------------------------------------------ argument helpers */

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "tunstack native: " #call " failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return -1;
  }
  return 0;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return -1;
  }
  return 0;
}

/* A string into `buf` (NUL-terminated). Returns its byte length, -1 (thrown) if not a string,
 * or -2 when it does not fit `size - 1` bytes. */
static ssize_t get_str(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return -1;
  }
  if (len >= size) return -2;
  napi_get_value_string_utf8(env, v, buf, size, &len);
  return (ssize_t)len;
}

/* A Uint8Array (or other TypedArray) as bytes. */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array");
    return -1;
  }
  napi_typedarray_type type;
  size_t count;
  void *p;
  napi_value ab;
  size_t boff;
  if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &boff) != napi_ok) return -1;
  size_t elem = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  *data = (uint8_t *)p;
  *len = count * elem;
  return 0;
}

/* ------------------------------------------------------------------ tun file */

/* open(path) -> fd | -errno. O_RDWR | O_NONBLOCK | O_CLOEXEC. */
static napi_value t_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  ssize_t n = get_str(env, argv[0], path, sizeof path);
  if (n == -1) return NULL;
  if (n == -2) return num(env, -ENAMETOOLONG);
  int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  return num(env, fd < 0 ? -errno : fd);
}

/* close(fd) -> 0 | -errno */
static napi_value t_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  return num(env, close(fd) < 0 ? -errno : 0);
}

/* setIff(fd, name, flags) -> [name, flags] | -errno. The kernel fills in the name for "" or "%d". */
static napi_value t_setiff(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, flags;
  if (get_i32(env, argv[0], &fd)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ssize_t n = get_str(env, argv[1], ifr.ifr_name, IFNAMSIZ);
  if (n == -1) return NULL;
  if (n == -2) return num(env, -EINVAL);
  if (get_i32(env, argv[2], &flags)) return NULL;
  ifr.ifr_flags = (short)flags;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return num(env, -errno);
  napi_value out, s, f;
  CHECK(napi_create_array_with_length(env, 2, &out));
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &s));
  f = num(env, (uint16_t)ifr.ifr_flags);
  napi_set_element(env, out, 0, s);
  napi_set_element(env, out, 1, f);
  return out;
}

/* getIff(fd) -> [name, flags] | -errno (TUNGETIFF). */
static napi_value t_getiff(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) return num(env, -errno);
  napi_value out, s;
  CHECK(napi_create_array_with_length(env, 2, &out));
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &s));
  napi_set_element(env, out, 0, s);
  napi_set_element(env, out, 1, num(env, (uint16_t)ifr.ifr_flags));
  return out;
}

/* Linux 4.8..5.2 tun requests, for older headers. */
#ifndef TUNSETVNETLE
#define TUNSETVNETLE _IOW('T', 220, int)
#define TUNGETVNETLE _IOR('T', 221, int)
#endif
#ifndef TUNSETVNETBE
#define TUNSETVNETBE _IOW('T', 222, int)
#define TUNGETVNETBE _IOR('T', 223, int)
#endif
#ifndef TUNSETSTEERINGEBPF
#define TUNSETSTEERINGEBPF _IOR('T', 224, int)
#endif
#ifndef TUNSETFILTEREBPF
#define TUNSETFILTEREBPF _IOR('T', 225, int)
#endif
#ifndef TUNSETCARRIER
#define TUNSETCARRIER _IOW('T', 226, int)
#endif
#ifndef TUNSETIFINDEX
#define TUNSETIFINDEX _IOW('T', 218, unsigned int)
#endif

/*
 * tunIoctl(fd, request, arg) -> value | -errno, for the tun requests that take or return one
 * integer. Requests that pass the integer by value, by pointer, or inside an ifreq are told apart
 * here. A 'T' request number not known here (above TUNGETDEVNETNS, or a gap) goes to the kernel
 * with a zeroed scratch buffer of its encoded size (at most 64 bytes), so the kernel's own answer
 * to an unknown request (EBADFD / EINVAL) comes back; any other number is refused with -ENOTTY
 * (no arbitrary pointers from JS).
 */
static napi_value t_ioctl(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t req;
  int32_t arg = 0;
  if (get_i32(env, argv[0], &fd)) return NULL;
  if (get_u32(env, argv[1], &req)) return NULL;
  if (argc > 2) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_number && get_i32(env, argv[2], &arg)) return NULL;
  }
  int r;
  switch (req) {
    case TUNSETPERSIST:
    case TUNSETOWNER:
    case TUNSETGROUP:
    case TUNSETOFFLOAD:
      r = ioctl(fd, req, (unsigned long)(uint32_t)arg);
      return num(env, r < 0 ? -errno : 0);
    case TUNSETVNETHDRSZ:
    case TUNSETSNDBUF:
    case TUNSETCARRIER:
    case TUNSETVNETLE:
    case TUNSETVNETBE:
    case TUNSETIFINDEX:
    case TUNSETSTEERINGEBPF:
    case TUNSETFILTEREBPF: {
      int v = arg;
      r = ioctl(fd, req, &v);
      return num(env, r < 0 ? -errno : 0);
    }
    case TUNGETFEATURES: {
      unsigned int v = 0;
      r = ioctl(fd, req, &v);
      return num(env, r < 0 ? -errno : (double)v);
    }
    case TUNGETVNETHDRSZ:
    case TUNGETSNDBUF:
    case TUNGETVNETLE:
    case TUNGETVNETBE: {
      int v = 0;
      r = ioctl(fd, req, &v);
      return num(env, r < 0 ? -errno : (double)v);
    }
    case TUNSETQUEUE: {
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      ifr.ifr_flags = (short)arg;
      r = ioctl(fd, req, &ifr);
      return num(env, r < 0 ? -errno : 0);
    }
    case TUNSETNOCSUM:
    case TUNSETDEBUG:
    case TUNSETLINK:
      r = ioctl(fd, req, (unsigned long)(uint32_t)arg);
      return num(env, r < 0 ? -errno : 0);
    default: {
      unsigned nr = _IOC_NR(req);
      /* Known requests that take structures (filters, TUNGETDEVNETNS's new fd) stay refused. */
      int known = nr >= 200 && nr <= 227;
      if (_IOC_TYPE(req) != 'T' || known || _IOC_SIZE(req) > 64) return num(env, -ENOTTY);
      unsigned char scratch[64];
      memset(scratch, 0, sizeof scratch);
      r = ioctl(fd, req, scratch);
      return num(env, r < 0 ? -errno : r);
    }
  }
}

/* ------------------------------------------------------------------ packet I/O */

/*
 * The (fd, buf, off, len) arguments at argv[0..3]: *p points at buf + off. 1 when a JS exception
 * is pending, -1 when the range is outside buf, else 0.
 */
static int get_fd_range(napi_env env, napi_value *argv, int32_t *fd, uint8_t **p, uint32_t *len) {
  uint32_t off;
  size_t blen;
  if (get_i32(env, argv[0], fd) || get_bytes(env, argv[1], p, &blen)) return 1;
  if (get_u32(env, argv[2], &off) || get_u32(env, argv[3], len)) return 1;
  if ((size_t)off > blen || (size_t)*len > blen - off) return -1;
  *p += off;
  return 0;
}

/* read/write(fd, buf, off, len) -> bytes | -errno: one body, the syscall chosen by `writing`. */
static napi_value fd_io(napi_env env, napi_callback_info info, int writing) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t len;
  uint8_t *p;
  int bad = get_fd_range(env, argv, &fd, &p, &len);
  if (bad) return bad > 0 ? NULL : num(env, -EFAULT);
  ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
  return num(env, n < 0 ? -errno : (double)n);
}

static napi_value t_read(napi_env env, napi_callback_info info) { return fd_io(env, info, 0); }

static napi_value t_write(napi_env env, napi_callback_info info) { return fd_io(env, info, 1); }

/* Most iovecs per packet: header, head view, scatter-gather fragments. */
#define WB_MAX_IOV 64

/*
 * writeBatch(fd, hdr, hdrLen, views, starts, ends, count, result[, frags]) -> packets handled | -errno
 *
 * Writes packet i as one writev(2): `hdrLen` bytes of `hdr` at i * hdrLen (the per-packet
 * virtio_net_hdr, or nothing when hdrLen is 0) followed by views[i][starts[i], ends[i]), then,
 * when `frags` is an array whose element i is an array of Uint8Arrays, each of those whole (a
 * packet's scatter-gather fragments; at most WB_MAX_IOV - 2, more is EFAULT). No packet bytes
 * are copied. Stops at the first EAGAIN (those packets are not handled); any other error
 * counts the packet as handled-but-failed. result (Int32Array(3)): [written, failed, last errno].
 * Returns the number handled; -errno when the very first write failed with EAGAIN or EBADF.
 */
static napi_value t_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t *hdr = NULL, *sp, *ep, *rp;
  size_t hdrBytes = 0, sl, el, rl;
  uint32_t hdrLen, count;
  if (get_i32(env, argv[0], &fd)) return NULL;
  napi_valuetype ht;
  napi_typeof(env, argv[1], &ht);
  if (ht != napi_null && ht != napi_undefined && get_bytes(env, argv[1], &hdr, &hdrBytes)) return NULL;
  if (get_u32(env, argv[2], &hdrLen)) return NULL;
  if (get_bytes(env, argv[4], &sp, &sl) || get_bytes(env, argv[5], &ep, &el)) return NULL;
  if (get_u32(env, argv[6], &count) || get_bytes(env, argv[7], &rp, &rl)) return NULL;
  if (rl < 12 || sl < (size_t)count * 4 || el < (size_t)count * 4) return num(env, -EFAULT);
  if (hdrLen > 0 && (hdr == NULL || hdrBytes < (size_t)hdrLen * count)) return num(env, -EFAULT);
  bool haveFrags = false;
  if (argc >= 9) {
    napi_valuetype ft;
    napi_typeof(env, argv[8], &ft);
    if (ft == napi_object) napi_is_array(env, argv[8], &haveFrags);
  }
  uint32_t *starts = (uint32_t *)sp, *ends = (uint32_t *)ep;
  int32_t *res = (int32_t *)rp;
  int32_t written = 0, failed = 0, lastErr = 0;
  uint32_t i;
  for (i = 0; i < count; i++) {
    napi_value v;
    uint8_t *data;
    size_t dlen;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || get_bytes(env, v, &data, &dlen)) return NULL;
    uint32_t s = starts[i], e = ends[i];
    if (s > e || (size_t)e > dlen) {
      failed++;
      lastErr = EFAULT;
      continue;
    }
    struct iovec iov[WB_MAX_IOV];
    int n = 0;
    if (hdrLen > 0) {
      iov[n].iov_base = hdr + (size_t)i * hdrLen;
      iov[n].iov_len = hdrLen;
      n++;
    }
    iov[n].iov_base = data + s;
    iov[n].iov_len = e - s;
    n++;
    if (haveFrags) {
      napi_value fl;
      bool isArr = false;
      if (napi_get_element(env, argv[8], i, &fl) != napi_ok) return NULL;
      napi_is_array(env, fl, &isArr);
      if (isArr) {
        uint32_t nf = 0;
        napi_get_array_length(env, fl, &nf);
        if (nf > WB_MAX_IOV - 2) {
          failed++;
          lastErr = EFAULT;
          continue;
        }
        for (uint32_t f = 0; f < nf; f++) {
          napi_value fv;
          uint8_t *fp;
          size_t flen;
          if (napi_get_element(env, fl, f, &fv) != napi_ok || get_bytes(env, fv, &fp, &flen)) return NULL;
          iov[n].iov_base = fp;
          iov[n].iov_len = flen;
          n++;
        }
      }
    }
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      int er = errno;
      if (er == EINTR) {
        i--;
        continue;
      }
      if (er == EAGAIN || er == EBADF) {
        if (i == 0) {
          res[0] = 0;
          res[1] = 0;
          res[2] = er;
          return num(env, -er);
        }
        lastErr = er;
        break;
      }
      failed++;
      lastErr = er;
      continue;
    }
    written++;
  }
  res[0] = written;
  res[1] = failed;
  res[2] = lastErr;
  return num(env, (double)i);
}

/* poll(fd, events) -> revents | -errno (zero timeout) */
static napi_value t_poll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, events;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &events)) return NULL;
  struct pollfd p = {.fd = fd, .events = (short)events, .revents = 0};
  int r = poll(&p, 1, 0);
  if (r < 0) return num(env, -errno);
  return num(env, r == 0 ? 0 : p.revents);
}

/* ------------------------------------------------------------------ poller */

/*
 * A uv_poll_t on one fd. Mode 0 (notify): on readiness call cb(-1, revents), JS reads. Mode 1
 * (batch): read packets into `buf` one after another until EAGAIN, `maxPackets`, or less than
 * `maxPacket` bytes of room, recording [offset, length] pairs in `meta`, then cb(count, errno)
 * once (errno: what stopped the batch if not EAGAIN/full, else 0). One batch per readiness
 * event: the poll is level-triggered, so packets left behind raise the next event.
 *
 * Hand-over (batch mode with an `own` array): each packet is read into a malloc'd spare of
 * `maxPacket` bytes; one longer than `ownMin` (a TSO super-packet) is not copied anywhere: the
 * spare is shrunk to its length and handed to JS as an external ArrayBuffer in own[i] (freed
 * when JS drops it), meta[2i] = -1; shorter ones are copied into `buf` as above. A batch then
 * also ends once it handed over `bufLen` bytes.
 */
typedef struct poller {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_ref bufRef;
  napi_ref metaRef;
  napi_ref ownRef; /* JS array for handed-over buffers (NULL: no hand-over) */
  napi_async_context actx;
  uint8_t *spare;  /* hand-over: the next read's memory */
  void *spareHint; /* its finalizer hint (HO_ARENA_HINT: an arena chunk) */
  uint32_t ownMin;
  uint8_t *buf;
  size_t bufLen;
  int32_t *meta;
  size_t metaLen; /* in int32 elements */
  uint32_t maxPacket;
  uint32_t maxPackets;
  int fd;
  int mode;
  int active;
  int closing;
  int refed;
} poller_t;

static void poller_call_in_scope(poller_t *p, double a, double b) {
  napi_env env = p->env;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv);
    argv[0] = num(env, a);
    argv[1] = num(env, b);
    napi_status st = napi_make_callback(env, p->actx, recv, cb, 2, argv, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
}

static void poller_call(poller_t *p, double a, double b) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  poller_call_in_scope(p, a, b);
  napi_close_handle_scope(p->env, scope);
}

/*
 * Memory for handed-over packets: chunks of HO_STRIDE bytes carved from arenas of HO_ARENA_CHUNKS
 * that are mmap'd, not malloc'd, for two reasons measured here. Fresh memory faults and is zeroed
 * page by page on the first read into it (~30-45 us per 64 KiB), which costs more than the
 * packet's whole processing; and once Node has forked a child (child_process), every page of the
 * heap is write-protected for copy-on-write, so each read into a reused malloc'd chunk faults
 * again (180-300 us per 64 KiB). An arena is mapped with MAP_POPULATE (faulted in once, when
 * mapped) and marked MADV_DONTFORK (a child does not inherit it, so a fork leaves it writable).
 *
 * A chunk goes back to its arena when JS drops the packet (the ArrayBuffer's finalizer). V8
 * collects dead ArrayBuffers in bulk (after ~64 MiB of them), so up to HO_ARENAS_MAX arenas may be
 * mapped at once; past that, chunks come from malloc. Bounded the other way too: an arena whose
 * chunks have all been idle for a whole second is unmapped (HO_ARENAS_KEEP stay).
 */
#define HO_CHUNK 65664  /* >= 64 KiB IP packet + Ethernet/VLAN + PI + vnet header */
#define HO_STRIDE 69632 /* HO_CHUNK rounded up to whole 4 KiB pages */
#define HO_ARENA_CHUNKS 32
#define HO_ARENA_ALL 0xffffffffu
#define HO_ARENAS_MAX 64
#define HO_ARENAS_KEEP 1
typedef struct ho_arena {
  uint8_t *base;
  uint32_t idle;      /* bit i: chunk i is not in use */
  uint64_t idleSince; /* uv_hrtime() when its last chunk came back */
} ho_arena_t;
static ho_arena_t ho_arenas[HO_ARENAS_MAX];
static size_t ho_narenas;
static uint64_t ho_trimmed_at;
static uv_mutex_t ho_lock;
static uv_once_t ho_once = UV_ONCE_INIT;
static void ho_init(void) { uv_mutex_init(&ho_lock); }

/*
 * Counters: chunks taken from a mapped arena, taken from malloc (arenas all full or mmap failed),
 * given back, freed (malloc'd ones, and arena chunks unmapped); arenas mapped and unmapped.
 */
static double ho_from_arena, ho_from_malloc, ho_returned, ho_freed, ho_mapped, ho_unmapped;

static size_t ho_idle_chunks(void) {
  size_t n = 0;
  for (size_t i = 0; i < ho_narenas; i++) n += (size_t)__builtin_popcount(ho_arenas[i].idle);
  return n;
}

/* Maps one more arena (ho_lock held); returns its index or -1. */
static int ho_map_arena(void) {
  if (ho_narenas >= HO_ARENAS_MAX) return -1;
  size_t len = (size_t)HO_STRIDE * HO_ARENA_CHUNKS;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_POPULATE
  flags |= MAP_POPULATE;
#endif
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (m == MAP_FAILED) return -1;
#ifdef MADV_DONTFORK
  madvise(m, len, MADV_DONTFORK);
#endif
  ho_arena_t *a = &ho_arenas[ho_narenas];
  a->base = (uint8_t *)m;
  a->idle = HO_ARENA_ALL;
  a->idleSince = uv_hrtime();
  ho_mapped++;
  return (int)ho_narenas++;
}

/* Once a second (ho_lock held): arenas idle for the whole second are unmapped, beyond the first few. */
static void ho_trim(uint64_t now) {
  if (now - ho_trimmed_at < 1000000000ull) return;
  ho_trimmed_at = now;
  size_t i = 0, kept = 0;
  while (i < ho_narenas) {
    ho_arena_t *a = &ho_arenas[i];
    if (a->idle == HO_ARENA_ALL && now - a->idleSince >= 1000000000ull && kept >= HO_ARENAS_KEEP) {
      munmap(a->base, (size_t)HO_STRIDE * HO_ARENA_CHUNKS);
      ho_unmapped++;
      ho_freed += HO_ARENA_CHUNKS;
      ho_arenas[i] = ho_arenas[--ho_narenas];
      continue;
    }
    if (a->idle == HO_ARENA_ALL) kept++;
    i++;
  }
}

/* A chunk of at least `size` bytes; *fromArena tells the finalizer where it goes back. */
static uint8_t *ho_get(size_t size, bool *fromArena) {
  *fromArena = false;
  if (size > HO_CHUNK) return (uint8_t *)malloc(size);
  uv_once(&ho_once, ho_init);
  uint8_t *m = NULL;
  uv_mutex_lock(&ho_lock);
  ho_trim(uv_hrtime());
  /* The busiest arena with a free chunk: the others then fall idle and can be unmapped. */
  int best = -1;
  int bestIdle = HO_ARENA_CHUNKS + 1;
  for (size_t i = 0; i < ho_narenas; i++) {
    int n = __builtin_popcount(ho_arenas[i].idle);
    if (n > 0 && n < bestIdle) {
      best = (int)i;
      bestIdle = n;
    }
  }
  if (best < 0) best = ho_map_arena();
  if (best >= 0) {
    ho_arena_t *a = &ho_arenas[best];
    int c = __builtin_ctz(a->idle);
    a->idle &= ~(1u << c);
    m = a->base + (size_t)c * HO_STRIDE;
    ho_from_arena++;
    *fromArena = true;
  } else {
    ho_from_malloc++;
  }
  uv_mutex_unlock(&ho_lock);
  return m != NULL ? m : (uint8_t *)malloc(HO_CHUNK);
}

/* handOverStats() -> [from arenas, from malloc, returned, freed, idle now, arenas mapped now, mapped ever, unmapped ever] */
static napi_value t_ho_stats(napi_env env, napi_callback_info info) {
  (void)info;
  uv_once(&ho_once, ho_init);
  napi_value arr;
  napi_create_array_with_length(env, 8, &arr);
  uv_mutex_lock(&ho_lock);
  double v[8] = {ho_from_arena, ho_from_malloc, ho_returned, ho_freed, (double)ho_idle_chunks(), (double)ho_narenas, ho_mapped, ho_unmapped};
  uv_mutex_unlock(&ho_lock);
  for (uint32_t i = 0; i < 8; i++) napi_set_element(env, arr, i, num(env, v[i]));
  return arr;
}

/* Gives a chunk back: to its arena when it came from one (hint non-NULL), else to malloc. */
static void free_handed_over(napi_env env, void *data, void *hint) {
  (void)env;
  if (hint == NULL) {
    free(data);
    uv_once(&ho_once, ho_init);
    uv_mutex_lock(&ho_lock);
    ho_freed++;
    uv_mutex_unlock(&ho_lock);
    return;
  }
  uv_mutex_lock(&ho_lock);
  uint8_t *d = (uint8_t *)data;
  for (size_t i = 0; i < ho_narenas; i++) {
    ho_arena_t *a = &ho_arenas[i];
    if (d >= a->base && d < a->base + (size_t)HO_STRIDE * HO_ARENA_CHUNKS) {
      a->idle |= 1u << ((d - a->base) / HO_STRIDE);
      if (a->idle == HO_ARENA_ALL) a->idleSince = uv_hrtime();
      ho_returned++;
      break;
    }
  }
  uv_mutex_unlock(&ho_lock);
}

#define HO_ARENA_HINT ((void *)1)

/*
 * One batch (see the comment on poller_t) into the poller's buffers, the handed-over packets into
 * `own` (NULL: no hand-over). Returns the packet count; *stop is the errno that ended it (0 for
 * EAGAIN or a full batch).
 */
static uint32_t poller_fill(poller_t *p, napi_value own, int *stop) {
  napi_env env = p->env;
  size_t pos = 0, handed = 0;
  uint32_t count = 0;
  *stop = 0;
  uint32_t maxCount = p->maxPackets;
  if ((size_t)maxCount * 2 > p->metaLen) maxCount = (uint32_t)(p->metaLen / 2);
  if (own == NULL) {
    while (count < maxCount && p->bufLen - pos >= p->maxPacket) {
      ssize_t n = read(p->fd, p->buf + pos, p->maxPacket);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) *stop = errno;
        break;
      }
      p->meta[count * 2] = (int32_t)pos;
      p->meta[count * 2 + 1] = (int32_t)n;
      count++;
      pos += ((size_t)n + 7) & ~(size_t)7;
    }
    return count;
  }
  while (count < maxCount && p->bufLen - pos >= (size_t)p->ownMin + 8 && handed < p->bufLen) {
    if (p->spare == NULL) {
      bool fromArena;
      p->spare = ho_get(p->maxPacket, &fromArena);
      p->spareHint = fromArena ? HO_ARENA_HINT : NULL;
      if (p->spare == NULL) {
        *stop = ENOMEM;
        break;
      }
    }
    ssize_t n = read(p->fd, p->spare, p->maxPacket);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) *stop = errno;
      break;
    }
    if ((size_t)n <= p->ownMin) {
      memcpy(p->buf + pos, p->spare, (size_t)n);
      p->meta[count * 2] = (int32_t)pos;
      p->meta[count * 2 + 1] = (int32_t)n;
      count++;
      pos += ((size_t)n + 7) & ~(size_t)7;
      continue;
    }
    uint8_t *mem = p->spare;
    void *hint = p->spareHint;
    p->spare = NULL;
    napi_value ab;
    napi_status st = napi_create_external_arraybuffer(env, mem, (size_t)n, free_handed_over, hint, &ab);
    if (st != napi_ok) {
      /* No external buffers here (a sandboxed V8): one copy into V8's own memory. */
      void *data = NULL;
      st = napi_create_arraybuffer(env, (size_t)n, &data, &ab);
      if (st == napi_ok) memcpy(data, mem, (size_t)n);
      free_handed_over(env, mem, hint);
      if (st != napi_ok) {
        *stop = ENOMEM;
        break;
      }
    }
    napi_set_element(env, own, count, ab);
    p->meta[count * 2] = -1;
    p->meta[count * 2 + 1] = (int32_t)n;
    count++;
    handed += (size_t)n;
  }
  return count;
}

/* The poller's `own` array (NULL when it has none or it is gone); call inside a handle scope. */
static napi_value poller_own(poller_t *p) {
  napi_value own = NULL;
  if (p->ownRef == NULL) return NULL;
  if (napi_get_reference_value(p->env, p->ownRef, &own) != napi_ok) return NULL;
  return own;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller_t *p = (poller_t *)h->data;
  if (p->closing) return;
  if (status < 0) {
    poller_call(p, -2, -status);
    return;
  }
  if (p->mode == 0) {
    poller_call(p, -1, events);
    return;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  napi_value own = poller_own(p);
  if (p->ownRef == NULL || own != NULL) {
    int stop = 0;
    uint32_t count = poller_fill(p, own, &stop);
    if (count > 0 || stop != 0) poller_call_in_scope(p, count, stop);
  }
  napi_close_handle_scope(p->env, scope);
}

static void poller_free_refs(poller_t *p) {
  if (p->cb) napi_delete_reference(p->env, p->cb);
  if (p->bufRef) napi_delete_reference(p->env, p->bufRef);
  if (p->metaRef) napi_delete_reference(p->env, p->metaRef);
  if (p->ownRef) napi_delete_reference(p->env, p->ownRef);
  if (p->actx) napi_async_destroy(p->env, p->actx);
  p->cb = p->bufRef = p->metaRef = p->ownRef = NULL;
  p->actx = NULL;
}

static void on_close(uv_handle_t *h) {
  poller_t *p = (poller_t *)h->data;
  if (p->spare != NULL) free_handed_over(NULL, p->spare, p->spareHint);
  free(p);
}

static void poller_close(poller_t *p) {
  if (p->closing) return;
  p->closing = 1;
  if (p->active) uv_poll_stop(&p->handle);
  p->active = 0;
  poller_free_refs(p);
  uv_close((uv_handle_t *)&p->handle, on_close);
}

static void cleanup_hook(void *arg) {
  poller_t *p = (poller_t *)arg;
  if (!p->closing) {
    p->closing = 1;
    if (p->active) uv_poll_stop(&p->handle);
    p->active = 0;
    /* The environment is going away: references die with it. */
    uv_close((uv_handle_t *)&p->handle, on_close);
  }
}

static void finalize_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

/* pollerCreate(fd, mode, cb, buf, meta, maxPacket, maxPackets[, own, ownMin]) -> handle | -errno */
static napi_value t_poller_create(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, mode;
  uint32_t maxPacket = 0, maxPackets = 0;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &mode)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_function) {
    napi_throw_type_error(env, NULL, "expected a function");
    return NULL;
  }
  uint8_t *buf = NULL, *meta = NULL;
  size_t bufLen = 0, metaLen = 0;
  if (mode == 1) {
    if (get_bytes(env, argv[3], &buf, &bufLen) || get_bytes(env, argv[4], &meta, &metaLen)) return NULL;
    if (get_u32(env, argv[5], &maxPacket) || get_u32(env, argv[6], &maxPackets)) return NULL;
    if (maxPacket == 0 || bufLen < maxPacket || metaLen < 8) return num(env, -EINVAL);
  }
  bool haveOwn = false;
  uint32_t ownMin = 0;
  if (mode == 1 && argc >= 9) {
    napi_valuetype ot;
    napi_typeof(env, argv[7], &ot);
    if (ot == napi_object) napi_is_array(env, argv[7], &haveOwn);
    if (haveOwn && get_u32(env, argv[8], &ownMin)) return NULL;
    if (haveOwn && (size_t)ownMin + 8 > bufLen) return num(env, -EINVAL);
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = (poller_t *)calloc(1, sizeof *p);
  if (p == NULL) return num(env, -ENOMEM);
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r < 0) {
    free(p);
    return num(env, r);
  }
  p->handle.data = p;
  p->env = env;
  p->fd = fd;
  p->mode = mode;
  p->buf = buf;
  p->bufLen = bufLen;
  p->meta = (int32_t *)meta;
  p->metaLen = metaLen / 4;
  p->maxPacket = maxPacket;
  p->maxPackets = maxPackets;
  p->refed = 1;
  napi_create_reference(env, argv[2], 1, &p->cb);
  if (mode == 1) {
    napi_create_reference(env, argv[3], 1, &p->bufRef);
    napi_create_reference(env, argv[4], 1, &p->metaRef);
    if (haveOwn) {
      napi_create_reference(env, argv[7], 1, &p->ownRef);
      p->ownMin = ownMin;
    }
  }
  napi_value name;
  napi_create_string_utf8(env, "tunstack:TapPoll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->actx);
  napi_add_env_cleanup_hook(env, cleanup_hook, p);
  napi_value ext;
  CHECK(napi_create_external(env, p, finalize_external, NULL, &ext));
  return ext;
}

static poller_t *get_poller(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "expected a poller handle");
    return NULL;
  }
  return (poller_t *)data;
}

/* The arguments of a poller call (up to *argc into argv, then how many came), the first a handle; NULL when thrown. */
static poller_t *poller_args(napi_env env, napi_callback_info info, napi_value *argv, size_t *argc) {
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "tunstack native: napi_get_cb_info failed");
    return NULL;
  }
  return get_poller(env, argv[0]);
}

/* pollerStart(h, events) -> 0 | -errno; events: 1 readable, 4 writable */
static napi_value t_poller_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  poller_t *p = poller_args(env, info, argv, &argc);
  int32_t events = UV_READABLE;
  if (p == NULL) return NULL;
  if (argc > 1 && get_i32(env, argv[1], &events)) return NULL;
  if (p->closing) return num(env, -EBADF);
  int uvev = ((events & 1) ? UV_READABLE : 0) | ((events & 4) ? UV_WRITABLE : 0);
  int r = uv_poll_start(&p->handle, uvev, on_poll);
  if (r < 0) return num(env, r);
  p->active = 1;
  return num(env, 0);
}

static napi_value t_poller_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller_t *p = poller_args(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (!p->closing && p->active) uv_poll_stop(&p->handle);
  p->active = 0;
  return num(env, 0);
}

/* pollerRef(h, on): keep (or stop keeping) the event loop alive while polling. */
static napi_value t_poller_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  poller_t *p = poller_args(env, info, argv, &argc);
  if (p == NULL) return NULL;
  bool on = true;
  napi_get_value_bool(env, argv[1], &on);
  if (p->closing) return num(env, 0);
  if (on) uv_ref((uv_handle_t *)&p->handle);
  else uv_unref((uv_handle_t *)&p->handle);
  p->refed = on;
  return num(env, 0);
}

/*
 * pollerRead(handle) -> count | -errno: one batch now, as the poller reads on readiness, but
 * returned instead of passed to the callback (for a caller that has just written and expects an
 * answer queued already). The packets are in the poller's buf/meta/own as for a callback. 0 when
 * nothing was waiting; an error after some packets is left for the next read to meet.
 */
static napi_value t_poller_read(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller_t *p = poller_args(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (p->closing || p->mode != 1) return num(env, -EBADF);
  napi_value own = poller_own(p);
  if (p->ownRef != NULL && own == NULL) return num(env, -EBADF);
  int stop = 0;
  uint32_t count = poller_fill(p, own, &stop);
  return num(env, count > 0 || stop == 0 ? (double)count : -(double)stop);
}

static napi_value t_poller_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller_t *p = poller_args(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (!p->closing) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, p);
    poller_close(p);
  }
  return num(env, 0);
}

/* ------------------------------------------------------------------ interface configuration */

static int ctl_socket(void) {
  return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/* ifreq ioctl on a control socket; returns 0 or -errno. */
static int ifr_ioctl(unsigned long req, struct ifreq *ifr) {
  int s = ctl_socket();
  if (s < 0) return -errno;
  int r = ioctl(s, req, ifr);
  int e = errno;
  close(s);
  return r < 0 ? -e : 0;
}

/* Fills ifr.ifr_name from argv; returns 0, or -EINVAL for a name too long, -1 when thrown. */
static int set_ifname(napi_env env, napi_value v, struct ifreq *ifr) {
  memset(ifr, 0, sizeof *ifr);
  ssize_t n = get_str(env, v, ifr->ifr_name, IFNAMSIZ);
  if (n == -1) return -1;
  if (n == -2 || n == 0) return -EINVAL;
  return 0;
}

/*
 * ifGet(name, what) -> value | -errno, what: 0 mtu, 1 flags, 2 txqueuelen, 3 ifindex.
 * ifSet(name, what, value) -> 0 | -errno, what: 0 mtu, 1 flags, 2 txqueuelen.
 */
static napi_value t_if_get(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ifreq ifr;
  int r = set_ifname(env, argv[0], &ifr);
  if (r == -1) return NULL;
  if (r < 0) return num(env, r);
  int32_t what;
  if (get_i32(env, argv[1], &what)) return NULL;
  switch (what) {
    case 0:
      r = ifr_ioctl(SIOCGIFMTU, &ifr);
      return num(env, r < 0 ? r : ifr.ifr_mtu);
    case 1:
      r = ifr_ioctl(SIOCGIFFLAGS, &ifr);
      return num(env, r < 0 ? r : (uint16_t)ifr.ifr_flags);
    case 2:
      r = ifr_ioctl(SIOCGIFTXQLEN, &ifr);
      return num(env, r < 0 ? r : ifr.ifr_qlen);
    case 3:
      r = ifr_ioctl(SIOCGIFINDEX, &ifr);
      return num(env, r < 0 ? r : ifr.ifr_ifindex);
    default:
      return num(env, -EINVAL);
  }
}

static napi_value t_if_set(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ifreq ifr;
  int r = set_ifname(env, argv[0], &ifr);
  if (r == -1) return NULL;
  if (r < 0) return num(env, r);
  int32_t what, value;
  if (get_i32(env, argv[1], &what) || get_i32(env, argv[2], &value)) return NULL;
  switch (what) {
    case 0:
      ifr.ifr_mtu = value;
      return num(env, ifr_ioctl(SIOCSIFMTU, &ifr));
    case 1:
      ifr.ifr_flags = (short)value;
      return num(env, ifr_ioctl(SIOCSIFFLAGS, &ifr));
    case 2:
      ifr.ifr_qlen = value;
      return num(env, ifr_ioctl(SIOCSIFTXQLEN, &ifr));
    default:
      return num(env, -EINVAL);
  }
}

/* ifGetMac(name, out6) -> 0 | -errno ; ifSetMac(name, mac6) -> 0 | -errno */
static napi_value t_if_get_mac(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ifreq ifr;
  int r = set_ifname(env, argv[0], &ifr);
  if (r == -1) return NULL;
  if (r < 0) return num(env, r);
  uint8_t *out;
  size_t len;
  if (get_bytes(env, argv[1], &out, &len)) return NULL;
  if (len < 6) return num(env, -EFAULT);
  r = ifr_ioctl(SIOCGIFHWADDR, &ifr);
  if (r < 0) return num(env, r);
  memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
  return num(env, ifr.ifr_hwaddr.sa_family);
}

static napi_value t_if_set_mac(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ifreq ifr;
  int r = set_ifname(env, argv[0], &ifr);
  if (r == -1) return NULL;
  if (r < 0) return num(env, r);
  uint8_t *mac;
  size_t len;
  if (get_bytes(env, argv[1], &mac, &len)) return NULL;
  if (len != 6) return num(env, -EINVAL);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
  return num(env, ifr_ioctl(SIOCSIFHWADDR, &ifr));
}

/* ifRename(old, new) -> 0 | -errno (the interface must be down) */
static napi_value t_if_rename(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ifreq ifr;
  int r = set_ifname(env, argv[0], &ifr);
  if (r == -1) return NULL;
  if (r < 0) return num(env, r);
  ssize_t n = get_str(env, argv[1], ifr.ifr_newname, IFNAMSIZ);
  if (n == -1) return NULL;
  if (n == -2 || n == 0) return num(env, -EINVAL);
  return num(env, ifr_ioctl(SIOCSIFNAME, &ifr));
}

/* ---- rtnetlink */

struct nlreq {
  struct nlmsghdr nh;
  struct ifaddrmsg ifa;
  char attrs[128];
};

static void add_attr(struct nlmsghdr *nh, unsigned short type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static int nl_open(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -errno;
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(s);
    return -e;
  }
  /* Replies come at once; never hang the loop on a lost one. */
  struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

/* Send one request with NLM_F_ACK and wait for its ack: 0 or -errno. */
static int nl_transact(struct nlmsghdr *nh) {
  int s = nl_open();
  if (s < 0) return s;
  static uint32_t seq = 1;
  nh->nlmsg_seq = ++seq;
  nh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  struct sockaddr_nl to;
  memset(&to, 0, sizeof to);
  to.nl_family = AF_NETLINK;
  if (sendto(s, nh, nh->nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
    int e = errno;
    close(s);
    return -e;
  }
  char buf[8192];
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      close(s);
      return -(e == EAGAIN ? ETIMEDOUT : e);
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != nh->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(h);
        close(s);
        return e->error; /* 0 (ack) or -errno */
      }
    }
  }
}

/*
 * addrChange(ifindex, add, addrBytes (4 or 16), prefixLength, flags) -> 0 | -errno.
 * RTM_NEWADDR (NLM_F_CREATE | NLM_F_EXCL) or RTM_DELADDR. flags: IFA_F_* (e.g. NODAD).
 * IPv4 addresses get the subnet's broadcast address, as `ip addr add ... brd +` does.
 */
static napi_value t_addr_change(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t ifindex, prefix, flags;
  bool add;
  uint8_t *addr;
  size_t alen;
  if (get_i32(env, argv[0], &ifindex)) return NULL;
  if (napi_get_value_bool(env, argv[1], &add) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a boolean");
    return NULL;
  }
  if (get_bytes(env, argv[2], &addr, &alen)) return NULL;
  if (get_i32(env, argv[3], &prefix) || get_i32(env, argv[4], &flags)) return NULL;
  if (alen != 4 && alen != 16) return num(env, -EINVAL);
  if (prefix < 0 || prefix > (int)(alen * 8)) return num(env, -EINVAL);
  struct nlreq req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  req.nh.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
  req.nh.nlmsg_flags = add ? (NLM_F_CREATE | NLM_F_EXCL) : 0;
  req.ifa.ifa_family = alen == 4 ? AF_INET : AF_INET6;
  req.ifa.ifa_prefixlen = (unsigned char)prefix;
  req.ifa.ifa_flags = (unsigned char)(flags & 0xff);
  req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  req.ifa.ifa_index = (unsigned)ifindex;
  add_attr(&req.nh, IFA_LOCAL, addr, alen);
  add_attr(&req.nh, IFA_ADDRESS, addr, alen);
  if (alen == 4 && add && prefix < 31) {
    uint32_t a;
    memcpy(&a, addr, 4);
    uint32_t mask = prefix == 0 ? 0 : htonl(~((1u << (32 - prefix)) - 1));
    uint32_t brd = a | ~mask;
    add_attr(&req.nh, IFA_BROADCAST, &brd, 4);
  }
  if (flags > 0xff) {
    uint32_t f = (uint32_t)flags;
    add_attr(&req.nh, IFA_FLAGS, &f, 4);
  }
  return num(env, nl_transact(&req.nh));
}

/*
 * addrList(ifindex) -> [[familyBytes(Uint8Array), prefixLength, flags], ...] | -errno
 * (RTM_GETADDR dump filtered to one interface).
 */
static napi_value t_addr_list(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t ifindex;
  if (get_i32(env, argv[0], &ifindex)) return NULL;
  int s = nl_open();
  if (s < 0) return num(env, s);
  struct {
    struct nlmsghdr nh;
    struct ifaddrmsg ifa;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  req.nh.nlmsg_type = RTM_GETADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.ifa.ifa_family = AF_UNSPEC;
  if (send(s, &req, req.nh.nlmsg_len, 0) < 0) {
    int e = errno;
    close(s);
    return num(env, -e);
  }
  napi_value out;
  CHECK(napi_create_array(env, &out));
  uint32_t idx = 0;
  char buf[16384];
  int done = 0;
  while (!done) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      close(s);
      return num(env, -(e == EAGAIN ? ETIMEDOUT : e));
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(h);
        close(s);
        return num(env, e->error);
      }
      if (h->nlmsg_type != RTM_NEWADDR) continue;
      struct ifaddrmsg *ifa = (struct ifaddrmsg *)NLMSG_DATA(h);
      if ((int)ifa->ifa_index != ifindex) continue;
      int rlen = (int)IFA_PAYLOAD(h);
      const void *local = NULL, *address = NULL;
      uint32_t flags = ifa->ifa_flags;
      for (struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen)) {
        if (rta->rta_type == IFA_LOCAL) local = RTA_DATA(rta);
        else if (rta->rta_type == IFA_ADDRESS) address = RTA_DATA(rta);
        else if (rta->rta_type == IFA_FLAGS) memcpy(&flags, RTA_DATA(rta), 4);
      }
      const void *a = local != NULL ? local : address;
      size_t alen = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
      if (a == NULL || alen == 0) continue;
      napi_value entry, ab, bytes;
      void *dst;
      napi_create_array_with_length(env, 3, &entry);
      napi_create_arraybuffer(env, alen, &dst, &ab);
      memcpy(dst, a, alen);
      napi_create_typedarray(env, napi_uint8_array, alen, ab, 0, &bytes);
      napi_set_element(env, entry, 0, bytes);
      napi_set_element(env, entry, 1, num(env, ifa->ifa_prefixlen));
      napi_set_element(env, entry, 2, num(env, flags));
      napi_set_element(env, out, idx++, entry);
    }
  }
  close(s);
  return out;
}

/* ------------------------------------------------------------------ module */

/* ------------------------------------------------------------------ unix datagram sockets */

/* A unix socket path from a JS string into `a`: its length, or -ENAMETOOLONG / -EINVAL. */
static int get_unix_path(napi_env env, napi_value v, struct sockaddr_un *a) {
  size_t n = 0;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, a->sun_path, sizeof a->sun_path, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return -EINVAL;
  }
  if (n == 0) return -EINVAL;
  if (n >= sizeof a->sun_path - 1) return -ENAMETOOLONG; /* possibly truncated */
  return (int)n;
}

/*
 * unixDgram(path) -> fd | -errno: an AF_UNIX SOCK_DGRAM socket, non-blocking and close-on-exec,
 * bound to path (a socket file already there is removed first), 1 MiB buffers each way.
 */
static napi_value t_unix_dgram(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un a;
  int n = get_unix_path(env, argv[0], &a);
  if (n < 0) return num(env, n);
  struct stat st;
  if (lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(a.sun_path);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  int size = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  return num(env, fd);
}

/*
 * recvFrom(fd, buf, off, len) -> [bytes, senderPath] | -errno. bytes is the datagram's real
 * length (MSG_TRUNC), which is more than len when it did not fit; senderPath is '' for an
 * unbound or abstract sender.
 */
static napi_value t_recv_from(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t len;
  uint8_t *p;
  int bad = get_fd_range(env, argv, &fd, &p, &len);
  if (bad) return bad > 0 ? NULL : num(env, -EFAULT);
  struct sockaddr_un a;
  socklen_t al = sizeof a;
  memset(&a, 0, sizeof a);
  ssize_t n = recvfrom(fd, p, len, MSG_TRUNC, (struct sockaddr *)&a, &al);
  if (n < 0) return num(env, -errno);
  size_t base = offsetof(struct sockaddr_un, sun_path);
  size_t plen = al > base ? strnlen(a.sun_path, al - base) : 0;
  napi_value out, path;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_string_utf8(env, a.sun_path, plen, &path));
  CHECK(napi_set_element(env, out, 0, num(env, (double)n)));
  CHECK(napi_set_element(env, out, 1, path));
  return out;
}

/* sendTo(fd, buf, off, len, path) -> bytes | -errno: one datagram to the unix socket at path. */
static napi_value t_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t len;
  uint8_t *p;
  int bad = get_fd_range(env, argv, &fd, &p, &len);
  if (bad) return bad > 0 ? NULL : num(env, -EFAULT);
  struct sockaddr_un a;
  int n = get_unix_path(env, argv[4], &a);
  if (n < 0) return num(env, n);
  ssize_t r = sendto(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof a);
  return num(env, r < 0 ? -errno : (double)r);
}

/* ------------------------------------------------------------------ TCP connect */

/* addr (4 or 16 bytes) and port as a sockaddr; its length, or 0 when addr is neither size. */
static socklen_t to_sockaddr(const uint8_t *a, size_t alen, uint32_t port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (alen == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    memcpy(&s4->sin_addr, a, 4);
    return sizeof *s4;
  }
  if (alen == 16) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    memcpy(&s6->sin6_addr, a, 16);
    return sizeof *s6;
  }
  return 0;
}

/*
 * tcpConnect(addr, port, src, out) -> fd | -errno: a non-blocking, close-on-exec TCP socket with
 * TCP_NODELAY, bound to src (an address of addr's size, port 0) when src is not null, connecting
 * to addr:port. out (an Int32Array) gets out[0] = 1 when the connection is established already
 * (a connect to a local address completes inside connect(2): the kernel has answered the SYN
 * before the call returns), 0 when it is in progress (wait until the fd is writable, then ask
 * tcpConnectResult). A connect that has failed already (refused by a local port) returns -errno
 * with the socket closed, so the caller learns a local outcome in the same call.
 */
static napi_value t_tcp_connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *addr, *src = NULL, *outb;
  size_t alen, slen = 0, olen;
  uint32_t port;
  if (get_bytes(env, argv[0], &addr, &alen) || get_u32(env, argv[1], &port)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && t != napi_undefined && get_bytes(env, argv[2], &src, &slen)) return NULL;
  if (get_bytes(env, argv[3], &outb, &olen)) return NULL;
  if (olen < 4 || port > 65535) return num(env, -EINVAL);
  struct sockaddr_storage dst, from;
  socklen_t dl = to_sockaddr(addr, alen, port, &dst);
  if (dl == 0 || (src != NULL && slen != alen)) return num(env, -EINVAL);
  int32_t *out = (int32_t *)outb;
  int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return num(env, -errno);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src != NULL) {
    socklen_t fl = to_sockaddr(src, slen, 0, &from);
    if (bind(fd, (struct sockaddr *)&from, fl) < 0) {
      int e = errno;
      close(fd);
      return num(env, -e);
    }
  }
  if (connect(fd, (struct sockaddr *)&dst, dl) == 0) {
    out[0] = 1;
    return num(env, fd);
  }
  if (errno != EINPROGRESS && errno != EINTR) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
  if (poll(&p, 1, 0) == 1) {
    /* Writable with no error: connected (no SO_ERROR to ask, one system call less a connect). */
    if ((p.revents & (POLLERR | POLLHUP)) == 0 && (p.revents & POLLOUT) != 0) {
      out[0] = 1;
      return num(env, fd);
    }
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
    if (err != 0) {
      close(fd);
      return num(env, -err);
    }
    out[0] = 1;
    return num(env, fd);
  }
  out[0] = 0;
  return num(env, fd);
}

/* tcpConnectResult(fd) -> 0 when the connect in progress on fd succeeded, else -errno (SO_ERROR; the fd stays open). */
static napi_value t_tcp_connect_result(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  int err = 0;
  socklen_t l = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) return num(env, -errno);
  if (err != 0) return num(env, -err);
  struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
  return num(env, poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) ? 0 : -EINPROGRESS);
}

/*
 * peekEnd(fd) -> 1 when the next thing to read from the stream socket fd is the peer's FIN (no
 * data before it), 0 when data or nothing is waiting, -errno on an error (a reset, say). Reads
 * nothing (MSG_PEEK): lets a reader that just took a short read learn that the end follows
 * without waiting for the next poll.
 */
static napi_value t_peek_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return num(env, 1);
  if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK) return num(env, 0);
  return num(env, -errno);
}

/* ------------------------------------------------------------------ relayed stream sockets */

/*
 * Host stream sockets relayed without a Node socket each: one epoll set for all of them (its fd
 * watched by one poller in mode 0), so a flow costs the kernel's epoll item and no native
 * allocation. JavaScript reads, writes and shuts the fds down with the calls below.
 */

/* epollCreate() -> epoll fd (close-on-exec) | -errno */
static napi_value t_epoll_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = epoll_create1(EPOLL_CLOEXEC);
  return num(env, fd < 0 ? -errno : fd);
}

/*
 * epollCtl(ep, op, fd, events) -> 0 | -errno: op 1 add, 2 delete, 3 modify (EPOLL_CTL_*);
 * events the epoll bits (1 readable, 4 writable), level-triggered; the event reports fd.
 */
static napi_value t_epoll_ctl(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t ep, op, fd;
  uint32_t events;
  if (get_i32(env, argv[0], &ep) || get_i32(env, argv[1], &op) || get_i32(env, argv[2], &fd) || get_u32(env, argv[3], &events)) return NULL;
  if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_DEL && op != EPOLL_CTL_MOD) return num(env, -EINVAL);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  ev.data.fd = fd;
  return num(env, epoll_ctl(ep, op, fd, &ev) < 0 ? -errno : 0);
}

/* epollWait(ep, out) -> events waiting now (no wait), out (Int32Array) = [fd, events] pairs | -errno */
static napi_value t_epoll_wait(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t ep;
  uint8_t *outb;
  size_t olen;
  if (get_i32(env, argv[0], &ep) || get_bytes(env, argv[1], &outb, &olen)) return NULL;
  struct epoll_event evs[256];
  int max = (int)(olen / 8);
  if (max > 256) max = 256;
  if (max < 1) return num(env, -EINVAL);
  int n;
  do n = epoll_wait(ep, evs, max, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return num(env, -errno);
  int32_t *out = (int32_t *)outb;
  for (int i = 0; i < n; i++) {
    out[2 * i] = evs[i].data.fd;
    out[2 * i + 1] = (int32_t)evs[i].events;
  }
  return num(env, n);
}

/* Most buffers one writev call takes. */
#define WV_MAX_IOV 64

/* writev(fd, views, count) -> bytes written | -errno: views[0, count) (Uint8Arrays, at most 64) in one writev(2). */
static napi_value t_writev(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t count;
  if (get_i32(env, argv[0], &fd) || get_u32(env, argv[2], &count)) return NULL;
  if (count > WV_MAX_IOV) count = WV_MAX_IOV;
  struct iovec iov[WV_MAX_IOV];
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok) return NULL;
    uint8_t *p;
    size_t len;
    if (get_bytes(env, v, &p, &len)) return NULL;
    iov[i].iov_base = p;
    iov[i].iov_len = len;
  }
  ssize_t n;
  do n = writev(fd, iov, (int)count);
  while (n < 0 && errno == EINTR);
  return num(env, n < 0 ? -errno : (double)n);
}

/* shutdown(fd, how) -> 0 | -errno (how: 0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR). */
static napi_value t_shutdown(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, how;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &how)) return NULL;
  return num(env, shutdown(fd, how) < 0 ? -errno : 0);
}

/* abortClose(fd) -> 0 | -errno: SO_LINGER {1, 0} then close(2), so that the peer gets a RST. */
static napi_value t_abort_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  return num(env, close(fd) < 0 ? -errno : 0);
}

/* ------------------------------------------------------------------ a TAP in another namespace */

/*
 * What the child of tapInNamespace tells its parent: 0 and the interface's name and flags (with
 * the fd as SCM_RIGHTS), or the step that failed and its errno.
 */
typedef struct {
  int32_t err;   /* 0 or errno */
  int32_t stage; /* the step that failed (TAPNS_* below) */
  char name[IFNAMSIZ];
  int32_t flags;
} tapns_msg_t;

enum { TAPNS_OPEN_USERNS = 1, TAPNS_SETNS_USER, TAPNS_OPEN_NETNS, TAPNS_SETNS_NET, TAPNS_OPEN_TUN, TAPNS_SETIFF, TAPNS_MTU };

/* The forked child: only system calls from here on (the parent has other threads). Never returns. */
static void tapns_child(int sock, const char *userns, const char *netns, const char *tun, const char *name, int flags, int mtu) {
  tapns_msg_t m;
  memset(&m, 0, sizeof m);
  int fd = -1;
  if (userns[0] != '\0') {
    int u = open(userns, O_RDONLY | O_CLOEXEC);
    if (u < 0) { m.err = errno; m.stage = TAPNS_OPEN_USERNS; goto reply; }
    struct stat a, b;
    /* Already in it (setns would fail with EINVAL): nothing to enter. */
    int same = fstat(u, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    if (!same && setns(u, CLONE_NEWUSER) < 0) { m.err = errno; m.stage = TAPNS_SETNS_USER; goto reply; }
  }
  int n = open(netns, O_RDONLY | O_CLOEXEC);
  if (n < 0) { m.err = errno; m.stage = TAPNS_OPEN_NETNS; goto reply; }
  if (setns(n, CLONE_NEWNET) < 0) { m.err = errno; m.stage = TAPNS_SETNS_NET; goto reply; }
  fd = open(tun, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { m.err = errno; m.stage = TAPNS_OPEN_TUN; goto reply; }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = (short)flags;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) { m.err = errno; m.stage = TAPNS_SETIFF; goto reply; }
  memcpy(m.name, ifr.ifr_name, IFNAMSIZ);
  m.name[IFNAMSIZ - 1] = '\0';
  m.flags = (uint16_t)ifr.ifr_flags;
  if (mtu > 0) {
    /* (SIOCSIFTXQLEN would need CAP_NET_ADMIN in the initial namespace: the queue length is set
     * over rtnetlink by the caller.) */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq q;
    memset(&q, 0, sizeof q);
    memcpy(q.ifr_name, m.name, IFNAMSIZ);
    q.ifr_mtu = mtu;
    if (s < 0 || ioctl(s, SIOCSIFMTU, &q) < 0) { m.err = errno; m.stage = TAPNS_MTU; goto reply; }
  }
reply:;
  struct iovec iov = {&m, sizeof m};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } c;
  memset(&c, 0, sizeof c);
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (m.err == 0) {
    mh.msg_control = c.buf;
    mh.msg_controllen = sizeof c.buf;
    struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
    ch->cmsg_level = SOL_SOCKET;
    ch->cmsg_type = SCM_RIGHTS;
    ch->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(ch), &fd, sizeof(int));
  }
  _exit(sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? 1 : 0);
}

/*
 * tapInNamespace(userns, netns, tunPath, name, flags, mtu) -> [fd, name, flags, 0] |
 * [-errno, '', 0, stage] | -errno.
 *
 * Opens a TUN/TAP inside network namespace `netns` (a namespace file, e.g. /proc/PID/ns/net),
 * entering user namespace `userns` first when it is not '' (the one that owns netns, which lets an
 * unprivileged owner make the interface), sets its MTU there when > 0, and
 * returns its fd to this process, which stays in its own namespaces. Node's process has threads,
 * and setns(CLONE_NEWUSER) needs a single-threaded caller, so a forked child does the work and
 * passes the fd back over a socketpair (SCM_RIGHTS). The fd is non-blocking and close-on-exec.
 * The child result says which step failed (stage) and why, for a message that names the cause.
 */
static napi_value t_tap_in_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char userns[PATH_MAX], netns[PATH_MAX], tun[PATH_MAX], name[IFNAMSIZ];
  int32_t flags, mtu;
  ssize_t lens[4] = {get_str(env, argv[0], userns, sizeof userns), get_str(env, argv[1], netns, sizeof netns),
                     get_str(env, argv[2], tun, sizeof tun), get_str(env, argv[3], name, sizeof name)};
  for (int i = 0; i < 4; i++) {
    if (lens[i] == -1) return NULL;
    if (lens[i] < 0) return num(env, -ENAMETOOLONG);
  }
  if (get_i32(env, argv[4], &flags) || get_i32(env, argv[5], &mtu)) return NULL;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) return num(env, -errno);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(sv[0]);
    close(sv[1]);
    return num(env, -e);
  }
  if (pid == 0) {
    close(sv[0]);
    tapns_child(sv[1], userns, netns, tun, name, flags, mtu);
  }
  close(sv[1]);
  tapns_msg_t m;
  memset(&m, 0, sizeof m);
  struct iovec iov = {&m, sizeof m};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } c;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = c.buf;
  mh.msg_controllen = sizeof c.buf;
  ssize_t got;
  do got = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
  while (got < 0 && errno == EINTR);
  int re = got < 0 ? errno : 0;
  close(sv[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  int fd = -1;
  for (struct cmsghdr *ch = got > 0 ? CMSG_FIRSTHDR(&mh) : NULL; ch != NULL; ch = CMSG_NXTHDR(&mh, ch)) {
    if (ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS && ch->cmsg_len >= CMSG_LEN(sizeof(int))) memcpy(&fd, CMSG_DATA(ch), sizeof(int));
  }
  if (got < 0) return num(env, -re);
  if (got != (ssize_t)sizeof m) {
    if (fd >= 0) close(fd);
    return num(env, -EPROTO);
  }
  napi_value out, s;
  CHECK(napi_create_array_with_length(env, 4, &out));
  if (m.err != 0 || fd < 0) {
    if (fd >= 0) close(fd);
    CHECK(napi_create_string_utf8(env, "", 0, &s));
    CHECK(napi_set_element(env, out, 0, num(env, m.err != 0 ? -m.err : -EPROTO)));
    CHECK(napi_set_element(env, out, 1, s));
    CHECK(napi_set_element(env, out, 2, num(env, 0)));
    CHECK(napi_set_element(env, out, 3, num(env, m.stage)));
    return out;
  }
  m.name[IFNAMSIZ - 1] = '\0';
  CHECK(napi_create_string_utf8(env, m.name, NAPI_AUTO_LENGTH, &s));
  CHECK(napi_set_element(env, out, 0, num(env, fd)));
  CHECK(napi_set_element(env, out, 1, s));
  CHECK(napi_set_element(env, out, 2, num(env, m.flags)));
  CHECK(napi_set_element(env, out, 3, num(env, 0)));
  return out;
}

/*
 * seccomp: a deny-list filter on every thread of this process (SECCOMP_FILTER_FLAG_TSYNC), for
 * `tunstack sandbox --enable-seccomp`. The listed system calls fail with EPERM; everything else is
 * allowed, because the process keeps running Node (V8, libuv) and spawns helpers (ip, ping, sh)
 * that need mount/setns/unshare/execve. System calls of another ABI than this build's (i386 on
 * x86_64, x32) are refused as a whole. Without CAP_SYS_ADMIN the kernel requires no_new_privs
 * first; it is set only then, so a root tunstack's setuid/file-capability helpers keep working.
 */
#if defined(__x86_64__)
#define TS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define DENY(n) {#n, __NR_##n}
struct ts_denied { const char *name; int nr; };
static const struct ts_denied ts_deny_list[] = {
#ifdef __NR_ptrace
    DENY(ptrace),
#endif
#ifdef __NR_process_vm_readv
    DENY(process_vm_readv),
#endif
#ifdef __NR_process_vm_writev
    DENY(process_vm_writev),
#endif
#ifdef __NR_kexec_load
    DENY(kexec_load),
#endif
#ifdef __NR_kexec_file_load
    DENY(kexec_file_load),
#endif
#ifdef __NR_init_module
    DENY(init_module),
#endif
#ifdef __NR_finit_module
    DENY(finit_module),
#endif
#ifdef __NR_delete_module
    DENY(delete_module),
#endif
#ifdef __NR_bpf
    DENY(bpf),
#endif
#ifdef __NR_keyctl
    DENY(keyctl),
#endif
#ifdef __NR_add_key
    DENY(add_key),
#endif
#ifdef __NR_request_key
    DENY(request_key),
#endif
#ifdef __NR_userfaultfd
    DENY(userfaultfd),
#endif
#ifdef __NR_perf_event_open
    DENY(perf_event_open),
#endif
#ifdef __NR_reboot
    DENY(reboot),
#endif
#ifdef __NR_swapon
    DENY(swapon),
#endif
#ifdef __NR_swapoff
    DENY(swapoff),
#endif
#ifdef __NR_iopl
    DENY(iopl),
#endif
#ifdef __NR_ioperm
    DENY(ioperm),
#endif
#ifdef __NR_acct
    DENY(acct),
#endif
#ifdef __NR_settimeofday
    DENY(settimeofday),
#endif
#ifdef __NR_clock_settime
    DENY(clock_settime),
#endif
#ifdef __NR_clock_adjtime
    DENY(clock_adjtime),
#endif
#ifdef __NR_adjtimex
    DENY(adjtimex),
#endif
#ifdef __NR_open_by_handle_at
    DENY(open_by_handle_at),
#endif
#ifdef __NR_name_to_handle_at
    DENY(name_to_handle_at),
#endif
#ifdef __NR_quotactl
    DENY(quotactl),
#endif
#ifdef __NR_syslog
    DENY(syslog),
#endif
#ifdef __NR_lookup_dcookie
    DENY(lookup_dcookie),
#endif
#ifdef __NR_fanotify_init
    DENY(fanotify_init),
#endif
#ifdef __NR_pivot_root
    DENY(pivot_root),
#endif
#ifdef __NR_chroot
    DENY(chroot),
#endif
#ifdef __NR_uselib
    DENY(uselib),
#endif
#ifdef __NR_vhangup
    DENY(vhangup),
#endif
#ifdef __NR_sethostname
    DENY(sethostname),
#endif
#ifdef __NR_setdomainname
    DENY(setdomainname),
#endif
};
#define TS_NDENY (sizeof ts_deny_list / sizeof ts_deny_list[0])

/* seccompDeny(): [0, names denied] on success, [-errno, []] on failure. */
static napi_value t_seccomp_deny(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, names, s;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_array(env, &names));
  int rc = 0;
#ifndef TS_AUDIT_ARCH
  rc = -ENOSYS;
#else
  /* arch check (3) + x32 check (2) + one compare and one return per denied call + allow. */
  struct sock_filter prog[5 + 2 * TS_NDENY + 1];
  size_t n = 0;
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TS_AUDIT_ARCH, 1, 0);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  /* x32 system calls (x86_64 only) carry bit 30; refused, as another ABI: the jump skips the
   * 2N - 1 instructions before the last deny return. */
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, (uint8_t)(2 * TS_NDENY - 1), 0);
  for (size_t i = 0; i < TS_NDENY; i++) {
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ts_deny_list[i].nr, 0, 1);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
  }
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog fprog = {(unsigned short)n, prog};
  long r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
  if (r < 0 && errno == EACCES) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      rc = -errno;
    } else {
      r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
    }
  }
  if (rc == 0) {
    if (r < 0) rc = -errno;
    else if (r > 0) rc = -ESRCH; /* TSYNC: thread r could not be synchronized */
  }
  if (rc == 0) {
    for (size_t i = 0; i < TS_NDENY; i++) {
      CHECK(napi_create_string_utf8(env, ts_deny_list[i].name, NAPI_AUTO_LENGTH, &s));
      CHECK(napi_set_element(env, names, (uint32_t)i, s));
    }
  }
#endif
  CHECK(napi_set_element(env, out, 0, num(env, rc)));
  CHECK(napi_set_element(env, out, 1, names));
  return out;
}

#define EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT("open", t_open),
      EXPORT("close", t_close),
      EXPORT("setIff", t_setiff),
      EXPORT("getIff", t_getiff),
      EXPORT("tunIoctl", t_ioctl),
      EXPORT("read", t_read),
      EXPORT("write", t_write),
      EXPORT("writeBatch", t_write_batch),
      EXPORT("poll", t_poll),
      EXPORT("pollerCreate", t_poller_create),
      EXPORT("pollerStart", t_poller_start),
      EXPORT("pollerStop", t_poller_stop),
      EXPORT("pollerRef", t_poller_ref),
      EXPORT("pollerClose", t_poller_close),
      EXPORT("pollerRead", t_poller_read),
      EXPORT("handOverStats", t_ho_stats),
      EXPORT("ifGet", t_if_get),
      EXPORT("ifSet", t_if_set),
      EXPORT("ifGetMac", t_if_get_mac),
      EXPORT("ifSetMac", t_if_set_mac),
      EXPORT("ifRename", t_if_rename),
      EXPORT("addrChange", t_addr_change),
      EXPORT("addrList", t_addr_list),
      EXPORT("unixDgram", t_unix_dgram),
      EXPORT("recvFrom", t_recv_from),
      EXPORT("sendTo", t_send_to),
      EXPORT("tapInNamespace", t_tap_in_namespace),
      EXPORT("seccompDeny", t_seccomp_deny),
      EXPORT("tcpConnect", t_tcp_connect),
      EXPORT("tcpConnectResult", t_tcp_connect_result),
      EXPORT("peekEnd", t_peek_end),
      EXPORT("epollCreate", t_epoll_create),
      EXPORT("epollCtl", t_epoll_ctl),
      EXPORT("epollWait", t_epoll_wait),
      EXPORT("writev", t_writev),
      EXPORT("shutdown", t_shutdown),
      EXPORT("abortClose", t_abort_close),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value v;
  napi_create_uint32(env, 1, &v);
  napi_set_named_property(env, exports, "version", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
