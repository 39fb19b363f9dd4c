/* ThreadSanitizer annotations for GLib and GStreamer synchronisation.
 *
 * Debian's GLib and GStreamer are not built with TSan: their GMutex/GCond use futexes
 * directly, reference counts and GstBus/GstBufferPool queues use atomics, and TSan sees
 * none of it, so every hand-over of data between GStreamer threads looks like a race.
 * This library is preloaded into the tests (scripts/sanitize.sh tsan) and wraps the
 * exported entry points with happens-before annotations:
 *   - g_mutex/g_rec_mutex/g_rw_lock lock, trylock, unlock: acquire after taking the lock,
 *     release before giving it back; g_cond_wait*: release, wait, acquire (the mutex)
 *   - g_async_queue push/pop, gst_bus post/pop: release on push, acquire after pop
 *   - gst_mini_object_unref, g_object_unref: release and acquire on the object, as an
 *     atomic reference count does (the last unref frees what every earlier owner used)
 *   - gst_buffer_pool_acquire_buffer: acquire on the buffer (its last unref released it)
 *   - g_thread_pool_push: release on the data; the worker acquires it before the pool's
 *     function runs (the function is wrapped at g_thread_pool_new*)
 * Only calls that cross a library boundary (e.g. GStreamer -> GLib, tlsframe -> GLib)
 * are seen; what is left is in tests/sanitizers/tsan.supp.
 * No effect without TSan: build it only for `scripts/sanitize.sh tsan`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

/* Weak: in a process without TSan (e.g. /bin/sh started by a test, which inherits
 * LD_PRELOAD) the wrappers only pass the calls on. */
void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));
#define __tsan_acquire(a) (__tsan_acquire ? __tsan_acquire(a) : (void)0)
#define __tsan_release(a) (__tsan_release ? __tsan_release(a) : (void)0)

typedef int gboolean;
typedef void *gpointer;
typedef void (*GFunc)(gpointer data, gpointer user_data);

#define REAL(name, ret, params)                                   \
  static ret(*real_##name) params;                                \
  static void init_##name(void) {                                 \
    if (!real_##name) *(void **)&real_##name = dlsym(RTLD_NEXT, #name); \
    if (!real_##name) abort();                                    \
  }

#define LOCK(name)                                                \
  REAL(name, void, (void *))                                      \
  void name(void *m) { init_##name(); real_##name(m); __tsan_acquire(m); }
#define TRYLOCK(name)                                             \
  REAL(name, gboolean, (void *))                                  \
  gboolean name(void *m) {                                        \
    init_##name();                                                \
    gboolean ok = real_##name(m);                                 \
    if (ok) __tsan_acquire(m);                                    \
    return ok;                                                    \
  }
#define UNLOCK(name)                                              \
  REAL(name, void, (void *))                                      \
  void name(void *m) { init_##name(); __tsan_release(m); real_##name(m); }

LOCK(g_mutex_lock)
TRYLOCK(g_mutex_trylock)
UNLOCK(g_mutex_unlock)
LOCK(g_rec_mutex_lock)
TRYLOCK(g_rec_mutex_trylock)
UNLOCK(g_rec_mutex_unlock)
LOCK(g_rw_lock_writer_lock)
TRYLOCK(g_rw_lock_writer_trylock)
UNLOCK(g_rw_lock_writer_unlock)
LOCK(g_rw_lock_reader_lock)
TRYLOCK(g_rw_lock_reader_trylock)
UNLOCK(g_rw_lock_reader_unlock)

REAL(g_cond_wait, void, (void *, void *))
void g_cond_wait(void *c, void *m) {
  init_g_cond_wait();
  __tsan_release(m);
  real_g_cond_wait(c, m);
  __tsan_acquire(m);
}
REAL(g_cond_wait_until, gboolean, (void *, void *, int64_t))
gboolean g_cond_wait_until(void *c, void *m, int64_t end) {
  init_g_cond_wait_until();
  __tsan_release(m);
  gboolean r = real_g_cond_wait_until(c, m, end);
  __tsan_acquire(m);
  return r;
}

/* push(queue, data): release on the queue; pop(queue...): acquire on it. */
#define PUSH(name, params, args)                                  \
  REAL(name, void, params)                                        \
  void name params { init_##name(); __tsan_release(q); real_##name args; }
#define POP(name, params, args)                                   \
  REAL(name, gpointer, params)                                    \
  gpointer name params {                                          \
    init_##name();                                                \
    gpointer r = real_##name args;                                \
    if (r) __tsan_acquire(q);                                     \
    return r;                                                     \
  }
PUSH(g_async_queue_push, (void *q, gpointer d), (q, d))
PUSH(g_async_queue_push_unlocked, (void *q, gpointer d), (q, d))
PUSH(g_async_queue_push_front, (void *q, gpointer d), (q, d))
POP(g_async_queue_pop, (void *q), (q))
POP(g_async_queue_pop_unlocked, (void *q), (q))
POP(g_async_queue_try_pop, (void *q), (q))
POP(g_async_queue_try_pop_unlocked, (void *q), (q))
POP(g_async_queue_timeout_pop, (void *q, uint64_t t), (q, t))
POP(g_async_queue_timeout_pop_unlocked, (void *q, uint64_t t), (q, t))

REAL(gst_bus_post, gboolean, (void *, void *))
gboolean gst_bus_post(void *q, void *msg) {
  init_gst_bus_post();
  __tsan_release(q);
  return real_gst_bus_post(q, msg);
}
POP(gst_bus_pop, (void *q), (q))
POP(gst_bus_pop_filtered, (void *q, int types), (q, types))
POP(gst_bus_timed_pop, (void *q, uint64_t t), (q, t))
POP(gst_bus_timed_pop_filtered, (void *q, uint64_t t, int types), (q, t, types))
POP(gst_bus_poll, (void *q, int types, int64_t t), (q, types, t))

#define UNREF(name)                                               \
  REAL(name, void, (void *))                                      \
  void name(void *o) {                                            \
    init_##name();                                                \
    if (o) {                                                      \
      __tsan_release(o);                                          \
      __tsan_acquire(o);                                          \
    }                                                             \
    real_##name(o);                                               \
  }
UNREF(gst_mini_object_unref)
UNREF(g_object_unref)

REAL(gst_buffer_pool_acquire_buffer, int, (void *, void **, void *))
int gst_buffer_pool_acquire_buffer(void *pool, void **buffer, void *params) {
  init_gst_buffer_pool_acquire_buffer();
  int r = real_gst_buffer_pool_acquire_buffer(pool, buffer, params);
  if (buffer && *buffer) __tsan_acquire(*buffer);
  return r;
}

/* Thread pools: the worker acquires what g_thread_pool_push released. */
struct pool_func {
  GFunc func;
  gpointer user_data;
};
static void pool_trampoline(gpointer data, gpointer wrapped) {
  struct pool_func *pf = wrapped;
  if (data) __tsan_acquire(data);
  pf->func(data, pf->user_data);
}
/* The wrapper lives as long as the process: pools here are few (GstTaskPool, GLib's). */
REAL(g_thread_pool_new, void *, (GFunc, gpointer, int, gboolean, void *))
void *g_thread_pool_new(GFunc func, gpointer user_data, int max, gboolean excl, void *err) {
  init_g_thread_pool_new();
  struct pool_func *pf = malloc(sizeof *pf);
  if (!pf) abort();
  pf->func = func;
  pf->user_data = user_data;
  return real_g_thread_pool_new(pool_trampoline, pf, max, excl, err);
}
REAL(g_thread_pool_new_full, void *, (GFunc, gpointer, void *, int, gboolean, void *))
void *g_thread_pool_new_full(GFunc func, gpointer user_data, void *free_func, int max,
                             gboolean excl, void *err) {
  init_g_thread_pool_new_full();
  struct pool_func *pf = malloc(sizeof *pf);
  if (!pf) abort();
  pf->func = func;
  pf->user_data = user_data;
  return real_g_thread_pool_new_full(pool_trampoline, pf, free_func, max, excl, err);
}
REAL(g_thread_pool_push, gboolean, (void *, gpointer, void *))
gboolean g_thread_pool_push(void *pool, gpointer data, void *err) {
  init_g_thread_pool_push();
  if (data) __tsan_release(data);
  return real_g_thread_pool_push(pool, data, err);
}

/* GQuark and interned strings: GLib serialises them with a lock of its own (internal
 * calls, not seen above); one address stands for it. */
static char quark_lock;
#define QUARK(name, ret, type)                                    \
  REAL(name, ret, (type))                                         \
  ret name(type s) {                                              \
    init_##name();                                                \
    __tsan_acquire(&quark_lock);                                  \
    ret r = real_##name(s);                                       \
    __tsan_release(&quark_lock);                                  \
    return r;                                                     \
  }
QUARK(g_quark_from_string, uint32_t, const char *)
QUARK(g_quark_from_static_string, uint32_t, const char *)
QUARK(g_quark_try_string, uint32_t, const char *)
QUARK(g_quark_to_string, const char *, uint32_t)
QUARK(g_intern_string, const char *, const char *)
QUARK(g_intern_static_string, const char *, const char *)
