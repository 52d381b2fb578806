// The Node-API glue's arguments: each is converted and checked here, since no input may crash the
// process. A bad one throws ArgError, which `guarded` turns into a TypeError or RangeError with a
// `code` property and a message that names the argument.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

#include "../kernels.h"
#include "../training.h"

namespace laborspace::addon {

constexpr size_t kMaxDim = size_t(1) << 20;

// Thrown on bad arguments; converted to a JavaScript error by `guarded`.
struct ArgError {
  enum Kind { type_error, range_error, plain_error } kind;
  std::string code, message;
};

[[noreturn]] void fail(ArgError::Kind kind, const char* code, std::string message);

// The JavaScript error of an ArgError: its class by kind, its code as `code`.
Napi::Error js_error(Napi::Env env, const ArgError& e);

// A kernel's error as the glue reports it.
ArgError from_kernel(const Error& e);

// A Node-API call that failed (node-addon-api threw it as a C++ exception): its exception is
// thrown on to JavaScript, as node-addon-api does, except where the environment is being torn
// down (a worker thread terminated in the middle of a call): there the throw fails as well, and
// node-addon-api's second C++ exception, thrown from its own handler, would end the process.
inline void throw_on(const Napi::Error& e) {
  try {
    e.ThrowAsJavaScriptException();
  } catch (const Napi::Error&) {
    // the environment is going away: there is no one left to tell
  }
}

// Runs an entry point's body, turning ArgError and std::bad_alloc into JavaScript exceptions.
template <class Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const ArgError& e) {
    js_error(info.Env(), e).ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    js_error(info.Env(), {ArgError::range_error, "ERR_LABORSPACE_MEMORY", "out of memory for this input size"}).ThrowAsJavaScriptException();
  } catch (const Napi::Error& e) {
    throw_on(e);
  }
  return info.Env().Undefined();
}

template <class T>
T typed_array(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
              const char* type_name) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string(name) + " must be a " + type_name);
  return v.As<T>();
}

Napi::Float32Array f32(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Int32Array i32(const Napi::CallbackInfo& info, size_t i, const char* name);

// An integer argument from lo to hi.
size_t integer(const Napi::CallbackInfo& info, size_t i, const char* name, size_t lo, size_t hi);

// A finite number argument.
double number_arg(const Napi::CallbackInfo& info, size_t i, const char* name);

// Rows of a flat matrix; its length must be a whole number of rows.
size_t rows_of(const Napi::Float32Array& a, size_t dim, const char* name);

// A matrix argument whose values must all be finite (checked in a pass: for inputs read whole anyway).
Napi::Float32Array finite_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t* rows);

// Matrices of one batch: each has `rows` rows of `dim` values, all finite.
Napi::Float32Array batch_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t rows);

Napi::Float32Array zeros(Napi::Env env, size_t n);

// Output `slot` of a call: the caller's Float32Array from the array at argument i, when it gives
// one (a training loop reuses its buffers instead of allocating megabytes per step), else a new one.
Napi::Float32Array output(const Napi::CallbackInfo& info, size_t i, uint32_t slot, const char* name, size_t n);

// ---- Arguments of the training calls (training.cpp) and NativeEncoder's (encoder.cpp) ----

// The loss by name: 'mnrl', 'triplet', 'cosine_mse' or 'cosent'.
Loss loss_arg(const Napi::CallbackInfo& info, size_t i);

// The optional adapter at arguments i (down, rank x dout), i + 1 (up, dout x rank) and i + 2 (rank):
// none when info[i] is undefined or null.
Adapter adapter_arg(const Napi::CallbackInfo& info, size_t i, size_t dout);

// The optional exclusion mask of an MNRL call at argument i: batch x candidates bytes, 1 where
// candidate j is a known positive of anchor i (not a negative); null when not given.
const uint8_t* mnrl_excluded(const Napi::CallbackInfo& info, size_t i, size_t batch, size_t candidates);

// MNRL with extra negatives after the positives, over `rows` stacked rows (`unit` names them):
// the anchors' count at argument i, where the positives start; at least `least` anchors and two
// candidates each.
size_t mnrl_anchors(const Napi::CallbackInfo& info, size_t i, Loss loss, size_t rows, size_t least, const char* unit);

// The distillation term's weight: finite and not negative.
float distill_weight(const Napi::CallbackInfo& info, size_t i);

}  // namespace laborspace::addon
