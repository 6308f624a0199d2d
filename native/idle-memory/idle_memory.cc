/*
 * What an idle zgrid server calls to give back the memory a burst of work left behind (src/gc.ts):
 *
 * - lowMemory(): V8's LowMemoryNotification on the calling thread's isolate: full collections that
 *   compact the old space and shrink the young generation (grown to 32 MiB under load, and kept at that
 *   size by an ordinary full collection).
 * - memoryPressure(): V8's MemoryPressureNotification(kModerate): V8 gives back the pages of its heap
 *   it holds empty (grown for a burst of submissions) after a full collection, without the repeated
 *   collections of lowMemory(), so that a heap of many live records pauses for tens of milliseconds,
 *   not a second.
 * - trim(): glibc's malloc_trim(0), which gives back to the system the free pages of every malloc arena,
 *   not only the top of each heap as free() does. Returns true when memory was released. Where the C
 *   library is not glibc (macOS, musl) it is not exported: there is no such call.
 */
#include <node_api.h>
#include <v8.h>
#include <stdlib.h> /* defines __GLIBC__ where the C library is glibc */
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value LowMemory(napi_env env, napi_callback_info info) {
  (void)info;
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

static napi_value MemoryPressure(napi_env env, napi_callback_info info) {
  (void)info;
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

#if defined(__GLIBC__)
static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) != 0, &result);
  return result;
}
#endif

static bool Export(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!Export(env, exports, "lowMemory", LowMemory)) return nullptr;
  if (!Export(env, exports, "memoryPressure", MemoryPressure)) return nullptr;
#if defined(__GLIBC__)
  if (!Export(env, exports, "trim", Trim)) return nullptr;
#endif
  return exports;
}
