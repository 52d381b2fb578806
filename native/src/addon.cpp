// Node-API glue: converts and validates JavaScript values, then calls the plain C++ kernels.
// Every argument is checked here, since no input may crash the process; errors are TypeError or
// RangeError with a `code` property, and the message names the argument.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "encoder.h"
#include "kernels.h"
#include "parallel.h"
#include "training.h"
#ifdef LABORSPACE_WITH_CUDA
#include "../cuda/cuda_topk.h"
#include "../cuda/cuda_training.h"
#endif

namespace laborspace {
namespace {

constexpr size_t kMaxDim = size_t(1) << 20;

// Thrown on bad arguments; converted to a JavaScript error by `guarded`.
struct ArgError {
  enum Kind { type_error, range_error, plain_error } kind;
  std::string code, message;
};

[[noreturn]] void fail(ArgError::Kind kind, const char* code, std::string message) {
  throw ArgError{kind, code, std::move(message)};
}

Napi::Value throw_js(Napi::Env env, const ArgError& e) {
  Napi::Error err = e.kind == ArgError::type_error    ? Napi::TypeError::New(env, e.message)
                    : e.kind == ArgError::range_error ? Napi::RangeError::New(env, e.message)
                                                : Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

ArgError from_kernel(const Error& e) {
  switch (e.kind) {
    case Error::non_finite: return {ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", e.message};
    case Error::overflow: return {ArgError::range_error, "ERR_LABORSPACE_OVERFLOW", e.message};
    case Error::device: return {ArgError::plain_error, "ERR_LABORSPACE_DEVICE", e.message};
    default: return {ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", e.message};
  }
}

template <class Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const ArgError& e) {
    return throw_js(info.Env(), e);
  } catch (const std::bad_alloc&) {
    return throw_js(info.Env(), {ArgError::range_error, "ERR_LABORSPACE_MEMORY", "out of memory for this input size"});
  }
}

template <class T>
T typed_array(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
              const char* type_name) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string(name) + " must be a " + type_name);
  return v.As<T>();
}

Napi::Float32Array f32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return typed_array<Napi::Float32Array>(info, i, name, napi_float32_array, "Float32Array");
}
Napi::Int32Array i32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return typed_array<Napi::Int32Array>(info, i, name, napi_int32_array, "Int32Array");
}

size_t integer(const Napi::CallbackInfo& info, size_t i, const char* name, size_t lo, size_t hi) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string(name) + " must be a number");
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= double(lo) && x <= double(hi)) || std::floor(x) != x)
    fail(ArgError::range_error, "ERR_LABORSPACE_RANGE",
         std::string(name) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
             ", got " + v.ToString().Utf8Value());
  return static_cast<size_t>(x);
}

// Rows of a flat matrix; its length must be a whole number of rows.
size_t rows_of(const Napi::Float32Array& a, size_t dim, const char* name) {
  if (a.ElementLength() % dim != 0)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
         std::string(name) + " has " + std::to_string(a.ElementLength()) + " values, not a multiple of dim " +
             std::to_string(dim));
  return a.ElementLength() / dim;
}

// A matrix argument whose values must all be finite (checked in a pass: for inputs read whole anyway).
Napi::Float32Array finite_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t* rows) {
  Napi::Float32Array x = f32(info, i, name);
  *rows = rows_of(x, dim, name);
  const size_t bad = first_non_finite(x.Data(), *rows * dim);
  if (bad < *rows * dim)
    fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE",
         std::string(name) + " row " + std::to_string(bad / dim) + ", column " + std::to_string(bad % dim) + " is not finite");
  return x;
}

Metric metric_arg(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value v = info[i];
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "dot") return Metric::dot;
  if (s == "cosine") return Metric::cosine;
  fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "metric must be 'dot' or 'cosine'");
}

// 'auto' (the default), 'cpu' or 'cuda'.
std::string device_arg(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value device = info[i];
  const std::string dev = device.IsString() ? device.As<Napi::String>().Utf8Value() : "auto";
  if (dev != "auto" && dev != "cpu" && dev != "cuda")
    fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "device must be 'auto', 'cpu' or 'cuda'");
  return dev;
}

// Whether a CUDA device runs the call: 'cuda' demands one, 'auto' takes one when present.
bool cuda_wanted(const std::string& dev) {
  if (dev == "cpu") return false;
#ifdef LABORSPACE_WITH_CUDA
  if (dev == "cuda" && cuda::device_count() == 0) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "no CUDA device is available");
  return cuda::device_count() > 0;
#else
  if (dev == "cuda") fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "this build has no CUDA support");
  return false;
#endif
}

// ---- Scoring calls, shared by the sync and async entry points ----

// { indices, scores, k, device } from a top-k call's output arrays.
Napi::Object topk_result(Napi::Env env, const std::vector<Napi::Value>& outs, size_t k, const char* device) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("indices", outs[0]);
  o.Set("scores", outs[1]);
  o.Set("k", Napi::Number::New(env, double(k)));
  o.Set("device", Napi::String::New(env, device));
  return o;
}

struct TopkCall {
  Napi::Float32Array queries, database;
  std::optional<Napi::Uint8Array> mask;
  size_t dim, m, n, k_req, k;
  Metric metric;
  bool use_cuda;
  Napi::Int32Array indices;
  Napi::Float32Array scores;

  static TopkCall parse(const Napi::CallbackInfo& info) {
    TopkCall c;
    c.queries = f32(info, 0, "queries");
    c.database = f32(info, 1, "database");
    c.dim = integer(info, 2, "dim", 1, kMaxDim);
    c.m = rows_of(c.queries, c.dim, "queries");
    c.n = rows_of(c.database, c.dim, "database");
    c.k_req = integer(info, 3, "k", 1, INT32_MAX);
    c.metric = metric_arg(info, 4);
    const Napi::Value mask = info[5];
    if (!mask.IsUndefined() && !mask.IsNull()) {
      c.mask = typed_array<Napi::Uint8Array>(info, 5, "mask", napi_uint8_array, "Uint8Array");
      if (c.mask->ElementLength() != c.n)
        fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
             "mask has " + std::to_string(c.mask->ElementLength()) + " entries for " + std::to_string(c.n) +
                 " database rows");
    }
    const std::string dev = device_arg(info, 6);
    c.k = std::min(c.k_req, count_eligible(c.mask_data(), c.n));
    c.use_cuda = choose_cuda(dev, c.m, c.n, c.dim, c.k);
    c.indices = Napi::Int32Array::New(info.Env(), c.m * c.k);
    c.scores = Napi::Float32Array::New(info.Env(), c.m * c.k);
    return c;
  }

  static bool choose_cuda(const std::string& dev, size_t m, size_t n, size_t dim, size_t k) {
    if (dev == "cpu") return false;
#ifdef LABORSPACE_WITH_CUDA
    const bool usable = cuda::device_count() > 0 && k <= cuda::kMaxK;
    if (dev == "cuda" && !usable)
      fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE",
           cuda::device_count() ? "k above " + std::to_string(cuda::kMaxK) + " runs on the CPU only"
                                : std::string("no CUDA device is available"));
    // Transfers cost more than they save on small work.
    return usable && (dev == "cuda" || double(m) * n * dim >= 5e8);
#else
    if (dev == "cuda") fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "this build has no CUDA support");
    (void)m, (void)n, (void)dim, (void)k;
    return false;
#endif
  }

  const uint8_t* mask_data() const { return mask ? mask->Data() : nullptr; }

  Error run() {
    if (k == 0 || m == 0) return {};
#ifdef LABORSPACE_WITH_CUDA
    if (use_cuda) {
      if (first_non_finite(queries.Data(), m * dim) == m * dim)
        return cuda::topk(queries.Data(), m, database.Data(), n, dim, k, metric, mask_data(), indices.Data(),
                          scores.Data());
    }
#endif
    size_t k_out = 0;
    return laborspace::topk(queries.Data(), m, database.Data(), n, dim, k_req, metric, mask_data(), indices.Data(),
                            scores.Data(), &k_out);
  }

  // Output arrays, in the order `result` takes them back (handles do not outlive a call, so the
  // async worker keeps references and passes the values anew).
  std::vector<Napi::Value> outputs() const { return {indices, scores}; }

  Napi::Value result(Napi::Env env, const std::vector<Napi::Value>& outs) const {
    return topk_result(env, outs, k, use_cuda ? "cuda" : "cpu");
  }
};

struct SimilarityCall {
  Napi::Float32Array queries, database, out;
  size_t dim, m, n;
  Metric metric;

  static SimilarityCall parse(const Napi::CallbackInfo& info) {
    SimilarityCall c;
    c.queries = f32(info, 0, "queries");
    c.database = f32(info, 1, "database");
    c.dim = integer(info, 2, "dim", 1, kMaxDim);
    c.m = rows_of(c.queries, c.dim, "queries");
    c.n = rows_of(c.database, c.dim, "database");
    c.metric = metric_arg(info, 3);
    c.out = Napi::Float32Array::New(info.Env(), c.m * c.n);
    return c;
  }
  Error run() { return similarity(queries.Data(), m, database.Data(), n, dim, metric, out.Data()); }
  std::vector<Napi::Value> outputs() const { return {out}; }
  Napi::Value result(Napi::Env, const std::vector<Napi::Value>& outs) const { return outs[0]; }
};

struct QuantizedTopkCall {
  Napi::Float32Array queries, scales, database, scores;
  Napi::Int8Array codes;
  Napi::Int32Array indices;
  size_t dim, m, n, k, kk, candidates, k_out = 0;

  static QuantizedTopkCall parse(const Napi::CallbackInfo& info) {
    QuantizedTopkCall c;
    c.queries = f32(info, 0, "queries");
    c.codes = typed_array<Napi::Int8Array>(info, 1, "codes", napi_int8_array, "Int8Array");
    c.scales = f32(info, 2, "scales");
    c.database = f32(info, 3, "database");
    c.dim = integer(info, 4, "dim", 1, kMaxDim);
    c.m = rows_of(c.queries, c.dim, "queries");
    c.n = rows_of(c.database, c.dim, "database");
    if (c.codes.ElementLength() != c.n * c.dim || c.scales.ElementLength() != c.n)
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "codes and scales must describe the " + std::to_string(c.n) + " database rows (quantize the same database)");
    c.k = integer(info, 5, "k", 1, INT32_MAX);
    c.candidates = integer(info, 6, "candidates", 1, INT32_MAX);
    c.kk = std::min(c.k, c.n);
    c.indices = Napi::Int32Array::New(info.Env(), c.m * c.kk);
    c.scores = Napi::Float32Array::New(info.Env(), c.m * c.kk);
    return c;
  }
  Error run() {
    return topk_quantized(queries.Data(), m, codes.Data(), scales.Data(), database.Data(), n, dim, k, candidates,
                          indices.Data(), scores.Data(), &k_out);
  }
  std::vector<Napi::Value> outputs() const { return {indices, scores}; }
  Napi::Value result(Napi::Env env, const std::vector<Napi::Value>& outs) const {
    return topk_result(env, outs, k_out, "cpu");
  }
};

// Runs a parsed call on the libuv pool and settles a promise; the inputs and outputs are held by
// references so the garbage collector cannot free them while the kernel reads them.
template <class Call>
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Env env, Call call, const std::vector<Napi::Value>& inputs)
      : Napi::AsyncWorker(env), call_(std::move(call)), deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Value& v : call_.outputs()) outputs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    for (const Napi::Value& v : inputs) inputs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    use_own_threads_here();  // libuv's threads run several calls at once
    try {
      error_ = call_.run();
    } catch (const std::bad_alloc&) {
      error_ = {Error::bad_argument, "out of memory for this input size"};
    }
  }
  void OnOK() override {
    if (error_) {
      const ArgError e = from_kernel(error_);
      Napi::Error err = e.kind == ArgError::plain_error ? Napi::Error::New(Env(), e.message)
                                                  : Napi::RangeError::New(Env(), e.message);
      err.Set("code", Napi::String::New(Env(), e.code));
      deferred_.Reject(err.Value());
    } else {
      std::vector<Napi::Value> outs;
      for (const Napi::ObjectReference& r : outputs_) outs.push_back(r.Value());
      deferred_.Resolve(call_.result(Env(), outs));
    }
  }

 private:
  Call call_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> inputs_, outputs_;
  Error error_;
};

template <class Call>
Napi::Value run_sync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Call call = Call::parse(info);
    if (Error e = call.run()) throw from_kernel(e);
    return call.result(info.Env(), call.outputs());
  });
}

template <class Call>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Call call = Call::parse(info);
    std::vector<Napi::Value> keep;
    for (size_t i = 0; i < info.Length(); ++i)
      if (info[i].IsTypedArray()) keep.push_back(info[i]);
    auto* worker = new CallWorker<Call>(info.Env(), std::move(call), keep);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

// ---- Other entry points ----

Napi::Value normalize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t dim = integer(info, 1, "dim", 1, kMaxDim);
    size_t n = 0;
    Napi::Float32Array x = finite_matrix(info, 0, "vectors", dim, &n);
    const bool in_place = info[2].ToBoolean().Value();
    Napi::Float32Array out = in_place ? x : Napi::Float32Array::New(info.Env(), n * dim);
    normalize_rows(x.Data(), n, dim, out.Data());
    return out;
  });
}

Napi::Value combine(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t dim = integer(info, 1, "dim", 1, kMaxDim);
    size_t n = 0;
    Napi::Float32Array x = finite_matrix(info, 0, "vectors", dim, &n);
    Napi::Int32Array indices = i32(info, 2, "indices");
    Napi::Float32Array weights = f32(info, 3, "weights");
    Napi::Int32Array offsets = i32(info, 4, "offsets");
    const size_t terms = indices.ElementLength();
    if (weights.ElementLength() != terms)
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "weights has " + std::to_string(weights.ElementLength()) + " entries for " + std::to_string(terms) +
               " indices");
    if (offsets.ElementLength() < 1 || offsets[0] != 0 || size_t(offsets[offsets.ElementLength() - 1]) != terms)
      fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", "offsets must start at 0 and end at the number of indices");
    const size_t count = offsets.ElementLength() - 1;
    for (size_t c = 0; c < count; ++c)
      if (offsets[c + 1] < offsets[c])
        fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", "offsets must not decrease (at " + std::to_string(c + 1) + ")");
    for (size_t t = 0; t < terms; ++t) {
      if (indices[t] < 0 || size_t(indices[t]) >= n)
        fail(ArgError::range_error, "ERR_LABORSPACE_RANGE",
             "indices[" + std::to_string(t) + "] = " + std::to_string(indices[t]) + " is out of range for " +
                 std::to_string(n) + " rows");
      if (!std::isfinite(weights[t]))
        fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", "weights[" + std::to_string(t) + "] is not finite");
    }
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), count * dim);
    combine_rows(x.Data(), dim, indices.Data(), weights.Data(), offsets.Data(), count, out.Data());
    return out;
  });
}

Napi::Value quantize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t dim = integer(info, 1, "dim", 1, kMaxDim);
    size_t n = 0;
    Napi::Float32Array x = finite_matrix(info, 0, "vectors", dim, &n);
    Napi::Int8Array codes = Napi::Int8Array::New(info.Env(), n * dim);
    Napi::Float32Array scales = Napi::Float32Array::New(info.Env(), n);
    quantize_rows(x.Data(), n, dim, codes.Data(), scales.Data());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("codes", codes);
    o.Set("scales", scales);
    return o;
  });
}

// ---- Training kernels ----

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", std::string(name) + " must be finite");
  return v;
}

// Matrices of one batch: each has `rows` rows of `dim` values, all finite.
Napi::Float32Array batch_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t rows) {
  size_t n = 0;
  Napi::Float32Array x = finite_matrix(info, i, name, dim, &n);
  if (n != rows)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", std::string(name) + " has " + std::to_string(n) + " rows, expected " + std::to_string(rows));
  return x;
}

Napi::Float32Array zeros(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

// Output `slot` of a call: the caller's Float32Array from the array at argument i, when it gives
// one (a training loop reuses its buffers instead of allocating megabytes per step), else a new one.
Napi::Float32Array output(const Napi::CallbackInfo& info, size_t i, uint32_t slot, const char* name, size_t n) {
  if (info[i].IsArray()) {
    const Napi::Value v = info[i].As<Napi::Array>().Get(slot);
    if (!v.IsUndefined()) {
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string("out.") + name + " must be a Float32Array");
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      if (a.ElementLength() != n)
        fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
             std::string("out.") + name + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
      return a;
    }
  }
  return zeros(info.Env(), n);
}

Napi::Object loss_result(Napi::Env env, double loss, std::initializer_list<std::pair<const char*, Napi::Float32Array>> grads) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, loss));
  for (const auto& [name, g] : grads) o.Set(name, g);
  return o;
}

// matmul(a, b, m, n, k, transposeA, transposeB): op(a) op(b) as an m x n Float32Array.
Napi::Value matmul_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t m = integer(info, 2, "m", 1, kMaxDim), n = integer(info, 3, "n", 1, kMaxDim), k = integer(info, 4, "k", 1, kMaxDim);
    const bool ta = info[5].ToBoolean(), tb = info[6].ToBoolean();
    Napi::Float32Array a = batch_matrix(info, 0, "a", ta ? m : k, ta ? k : m);
    Napi::Float32Array b = batch_matrix(info, 1, "b", tb ? k : n, tb ? n : k);
    Napi::Float32Array c = zeros(info.Env(), m * n);
    gemm(ta ? Op::transpose : Op::none, tb ? Op::transpose : Op::none, m, n, k, a.Data(), ta ? m : k, b.Data(), tb ? k : n, c.Data(), n, false);
    return c;
  });
}

// The optional adapter at arguments i (down, rank x dout), i + 1 (up, dout x rank) and i + 2 (rank):
// none when info[i] is undefined or null.
Adapter adapter_arg(const Napi::CallbackInfo& info, size_t i, size_t dout) {
  Adapter adapter;
  if (info[i].IsUndefined() || info[i].IsNull()) return adapter;
  adapter.rank = integer(info, i + 2, "adapter rank", 1, dout);
  adapter.down = batch_matrix(info, i, "adapter down", dout, adapter.rank).Data();
  adapter.up = batch_matrix(info, i + 1, "adapter up", adapter.rank, dout).Data();
  return adapter;
}

Napi::Value head_forward_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t din = integer(info, 1, "dimIn", 1, kMaxDim), dout = integer(info, 4, "dimOut", 1, kMaxDim);
    size_t batch = 0;
    Napi::Float32Array x = finite_matrix(info, 0, "x", din, &batch);
    Napi::Float32Array wt = batch_matrix(info, 2, "weight", din, dout);
    Napi::Float32Array bias = batch_matrix(info, 3, "bias", dout, 1);
    const Adapter adapter = adapter_arg(info, 5, dout);
    Napi::Float32Array h = zeros(info.Env(), batch * dout), e = zeros(info.Env(), batch * dout);
    if (Error err = head_forward(x.Data(), batch, din, wt.Data(), bias.Data(), dout, adapter, h.Data(), e.Data())) throw from_kernel(err);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("hidden", h);
    o.Set("embeddings", e);
    return o;
  });
}

// The gradients a head asks for, as JavaScript arrays and as the kernels' HeadGrads.
// Outputs go into the arrays at argument `out` when the caller gives them.
struct HeadGradArrays {
  std::optional<Napi::Float32Array> wt, bias, down, up;
  HeadGrads grads;
  HeadGradArrays(const Napi::CallbackInfo& info, size_t out, size_t din, size_t dout, const Adapter& adapter, bool dense) {
    if (dense) {
      wt = output(info, out, 0, "gradWeight", dout * din);
      bias = output(info, out, 1, "gradBias", dout);
      grads.wt = wt->Data();
      grads.bias = bias->Data();
    }
    if (adapter.rank) {
      down = output(info, out, 2, "gradAdapterDown", adapter.rank * dout);
      up = output(info, out, 3, "gradAdapterUp", dout * adapter.rank);
      grads.down = down->Data();
      grads.up = up->Data();
    }
  }
  void set_on(Napi::Object o) const {
    if (wt) o.Set("gradWeight", *wt);
    if (bias) o.Set("gradBias", *bias);
    if (down) o.Set("gradAdapterDown", *down);
    if (up) o.Set("gradAdapterUp", *up);
  }
};

Napi::Value head_backward_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t din = integer(info, 4, "dimIn", 1, kMaxDim), dout = integer(info, 5, "dimOut", 1, kMaxDim);
    size_t batch = 0;
    Napi::Float32Array x = finite_matrix(info, 0, "x", din, &batch);
    Napi::Float32Array h = batch_matrix(info, 1, "hidden", dout, batch);
    Napi::Float32Array e = batch_matrix(info, 2, "embeddings", dout, batch);
    Napi::Float32Array ge = batch_matrix(info, 3, "gradEmbeddings", dout, batch);
    const Adapter adapter = adapter_arg(info, 6, dout);
    const HeadGradArrays out(info, 9, din, dout, adapter, true);
    if (Error err = head_backward(x.Data(), nullptr, h.Data(), e.Data(), ge.Data(), batch, din, dout, adapter, 1.f, out.grads)) throw from_kernel(err);
    Napi::Object o = Napi::Object::New(info.Env());
    out.set_on(o);
    return o;
  });
}

// The optional exclusion mask of an MNRL call at argument i: batch x candidates bytes, 1 where
// candidate j is a known positive of anchor i (not a negative); null when not given.
const uint8_t* mnrl_excluded(const Napi::CallbackInfo& info, size_t i, size_t batch, size_t candidates) {
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  Napi::Uint8Array m = typed_array<Napi::Uint8Array>(info, i, "excluded", napi_uint8_array, "Uint8Array");
  if (m.ElementLength() != batch * candidates)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
         "excluded has " + std::to_string(m.ElementLength()) + " values, expected " + std::to_string(batch) + " x " + std::to_string(candidates));
  return m.Data();
}

// MNRL with extra negatives after the positives, over `rows` stacked rows (`unit` names them):
// the anchors' count at argument i, where the positives start; at least `least` anchors and two
// candidates each.
size_t mnrl_anchors(const Napi::CallbackInfo& info, size_t i, Loss loss, size_t rows, size_t least, const char* unit) {
  if (loss != Loss::mnrl) fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "only the MNRL loss takes extra negatives");
  const size_t anchors = integer(info, i, "anchors", least, std::max(least, rows / 2));
  if (2 * anchors > rows)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", std::to_string(rows) + " " + unit + ": fewer than two per anchor");
  return anchors;
}

// Candidates of an MNRL call: the positives, then extra negatives (symmetric needs none).
size_t mnrl_candidates(size_t rows, size_t batch, bool symmetric) {
  if (rows < batch)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
         "positives has " + std::to_string(rows) + " rows, expected at least the " + std::to_string(batch) + " anchors");
  if (symmetric && rows != batch)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "the symmetric loss takes no extra negatives");
  return rows;
}

// mnrlLoss(anchors, candidates, dim, scale, symmetric, out?, excluded?): the candidates are the
// anchors' positives, then any extra negatives.
Napi::Value mnrl_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t d = integer(info, 2, "dim", 1, kMaxDim);
    size_t batch = 0, rows = 0;
    Napi::Float32Array a = finite_matrix(info, 0, "anchors", d, &batch);
    Napi::Float32Array p = finite_matrix(info, 1, "positives", d, &rows);
    const double scale = number_arg(info, 3, "scale");
    const bool symmetric = info[4].ToBoolean().Value();
    const size_t c = mnrl_candidates(rows, batch, symmetric);
    const uint8_t* excluded = mnrl_excluded(info, 6, batch, c);
    Napi::Float32Array ga = output(info, 5, 0, "gradAnchors", batch * d), gp = output(info, 5, 1, "gradPositives", c * d);
    const double loss = mnrl_loss(a.Data(), p.Data(), batch, c, d, float(scale), symmetric, excluded, ga.Data(), gp.Data());
    return loss_result(info.Env(), loss, {{"gradAnchors", ga}, {"gradPositives", gp}});
  });
}

// The distillation term's weight: finite and not negative.
float distill_weight(const Napi::CallbackInfo& info, size_t i) {
  const double w = number_arg(info, i, "distill");
  if (w < 0) fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", "distill must not be negative, got " + std::to_string(w));
  return float(w);
}

// distillLoss(embeddings, teacher, dim, weight, out?): distill_loss with its gradient.
Napi::Value distill_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t d = integer(info, 2, "dim", 1, kMaxDim);
    size_t rows = 0;
    Napi::Float32Array e = finite_matrix(info, 0, "embeddings", d, &rows);
    Napi::Float32Array t = batch_matrix(info, 1, "teacher", d, rows);
    const float weight = distill_weight(info, 3);
    Napi::Float32Array grad = output(info, 4, 0, "grad", rows * d);
    std::fill(grad.Data(), grad.Data() + rows * d, 0.f);
    const double loss = distill_loss(e.Data(), t.Data(), rows, d, weight, grad.Data());
    return loss_result(info.Env(), loss, {{"grad", grad}});
  });
}

Napi::Value triplet_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t d = integer(info, 3, "dim", 1, kMaxDim);
    size_t batch = 0;
    Napi::Float32Array a = finite_matrix(info, 0, "anchors", d, &batch);
    Napi::Float32Array p = batch_matrix(info, 1, "positives", d, batch);
    Napi::Float32Array n = batch_matrix(info, 2, "negatives", d, batch);
    const double margin = number_arg(info, 4, "margin");
    Napi::Float32Array ga = output(info, 6, 0, "gradAnchors", batch * d), gp = output(info, 6, 1, "gradPositives", batch * d);
    Napi::Float32Array gn = output(info, 6, 2, "gradNegatives", batch * d);
    const double loss = triplet_loss(a.Data(), p.Data(), n.Data(), batch, d, float(margin), info[5].ToBoolean().Value(), ga.Data(), gp.Data(), gn.Data());
    return loss_result(info.Env(), loss, {{"gradAnchors", ga}, {"gradPositives", gp}, {"gradNegatives", gn}});
  });
}

// The pair losses' common arguments: left, right, targets, dim; their outputs at argument `out`.
template <class Loss>
Napi::Value pair_loss(const Napi::CallbackInfo& info, size_t out, Loss&& loss_fn) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t d = integer(info, 3, "dim", 1, kMaxDim);
    size_t batch = 0;
    Napi::Float32Array a = finite_matrix(info, 0, "left", d, &batch);
    Napi::Float32Array b = batch_matrix(info, 1, "right", d, batch);
    Napi::Float32Array t = batch_matrix(info, 2, "targets", 1, batch);
    Napi::Float32Array ga = output(info, out, 0, "gradLeft", batch * d), gb = output(info, out, 1, "gradRight", batch * d);
    const double loss = loss_fn(a.Data(), b.Data(), t.Data(), batch, d, ga.Data(), gb.Data());
    return loss_result(info.Env(), loss, {{"gradLeft", ga}, {"gradRight", gb}});
  });
}

Napi::Value cosine_mse_js(const Napi::CallbackInfo& info) { return pair_loss(info, 4, cosine_mse_loss); }

Napi::Value cosent_js(const Napi::CallbackInfo& info) {
  const double scale = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : 20.0;
  return pair_loss(info, 5, [&](const float* a, const float* b, const float* t, size_t n, size_t d, float* ga, float* gb) {
    return cosent_loss(a, b, t, n, d, float(scale), ga, gb);
  });
}

Loss loss_arg(const Napi::CallbackInfo& info, size_t i) {
  const std::string name = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (name == "mnrl") return Loss::mnrl;
  if (name == "triplet") return Loss::triplet;
  if (name == "cosine_mse") return Loss::cosine_mse;
  if (name == "cosent") return Loss::cosent;
  fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "loss must be 'mnrl', 'triplet', 'cosine_mse' or 'cosent'");
}

// headLossStep(loss, x, dimIn, weight, bias, dimOut, scale, margin, targets?, lossWeight, device?,
//              adapterDown?, adapterUp?, adapterRank?, trainDense, out?, anchors?, excluded?)
Napi::Value head_loss_step_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Loss loss = loss_arg(info, 0);
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const size_t din = integer(info, 2, "dimIn", 1, kMaxDim), dout = integer(info, 5, "dimOut", 1, kMaxDim);
    size_t rows = 0;
    Napi::Float32Array x = finite_matrix(info, 1, "x", din, &rows);
    const size_t sides = loss_sides(loss);
    // MNRL may take extra negatives after the positives: `anchors` says where the positives start.
    const bool extra = !info[16].IsUndefined();
    if (!extra && (rows == 0 || rows % sides != 0))
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "x has " + std::to_string(rows) + " rows: the " + name + " loss needs " + std::to_string(sides) + " equal sides of at least one row");
    const size_t batch = extra ? mnrl_anchors(info, 16, loss, rows, 1, "rows of x") : rows / sides;
    Napi::Float32Array wt = batch_matrix(info, 3, "weight", din, dout);
    Napi::Float32Array bias = batch_matrix(info, 4, "bias", dout, 1);
    LossParams params;
    params.scale = float(number_arg(info, 6, "scale"));
    params.margin = float(number_arg(info, 7, "margin"));
    std::optional<Napi::Float32Array> targets;
    if (loss == Loss::cosine_mse || loss == Loss::cosent) {
      if (!info[8].IsTypedArray()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "the " + name + " loss needs targets");
      targets = batch_matrix(info, 8, "targets", 1, batch);
      params.targets = targets->Data();
    }
    params.weight = float(number_arg(info, 9, "lossWeight"));
    if (extra) {
      params.candidates = rows - batch;
      params.excluded = mnrl_excluded(info, 17, batch, params.candidates);
    }
    const std::string device = device_arg(info, 10);
    const Adapter adapter = adapter_arg(info, 11, dout);
    const bool dense = info[14].IsUndefined() || info[14].ToBoolean().Value();
    if (!dense && !adapter.rank)
      fail(ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", "nothing to train: the dense layer is frozen and there is no adapter");
    // The CUDA step's MNRL is in-batch only: extra negatives run on the CPU.
    const bool use_cuda = cuda_wanted(device) && !extra;
    const HeadGradArrays out(info, 15, din, dout, adapter, dense);
    double value = 0;
    Error err;
#ifdef LABORSPACE_WITH_CUDA
    if (use_cuda) err = cuda::head_loss_step(loss, x.Data(), batch, din, wt.Data(), bias.Data(), dout, adapter, params, &value, out.grads);
#endif
    if (!use_cuda) err = head_loss_step(loss, x.Data(), batch, din, wt.Data(), bias.Data(), dout, adapter, params, &value, out.grads);
    if (err) throw from_kernel(err);
    Napi::Object o = loss_result(info.Env(), value, {});
    out.set_on(o);
    o.Set("device", Napi::String::New(info.Env(), use_cuda ? "cuda" : "cpu"));
    return o;
  });
}

Napi::Value adamw_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array param = f32(info, 0, "params");
    const size_t n = param.ElementLength();
    Napi::Float32Array grad = batch_matrix(info, 1, "grads", n ? n : 1, n ? 1 : 0);
    Napi::Float32Array m = f32(info, 2, "m"), v = f32(info, 3, "v");
    if (m.ElementLength() != n || v.ElementLength() != n)
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "m and v must have as many values as params");
    const double lr = number_arg(info, 4, "lr"), b1 = number_arg(info, 5, "beta1"), b2 = number_arg(info, 6, "beta2");
    const double eps = number_arg(info, 7, "eps"), wd = number_arg(info, 8, "weightDecay");
    const size_t step = integer(info, 9, "step", 1, INT32_MAX);
    adamw_step(param.Data(), grad.Data(), m.Data(), v.Data(), n, float(lr), float(b1), float(b2), float(eps), float(wd), int(step));
    return info.Env().Undefined();
  });
}

// ---- The whole encoder ----

// A NativeEncoder holds the sizes, the timing table and the tape of its last forward pass, so a
// training step's forward and backward run on buffers allocated once. Parameters are a flat arena
// (layout()) the caller owns and passes to every call.
class NativeEncoder : public Napi::ObjectWrap<NativeEncoder> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeEncoder",
                       {InstanceMethod("layout", &NativeEncoder::layout), InstanceMethod("forward", &NativeEncoder::forward),
                        InstanceMethod("pooled", &NativeEncoder::pooled),
                        InstanceMethod("backward", &NativeEncoder::backward), InstanceMethod("lossStep", &NativeEncoder::loss_step)});
  }

  // new NativeEncoder({vocab, embed, maxTokens, headOut, lnEps?, layers: [{widthIn, widthOut, heads,
  //   ffn, residualProjection, queryScale}]}, timing)
  explicit NativeEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEncoder>(info) {
    guarded(info, [&]() -> Napi::Value {
      if (!info[0].IsObject()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "dims must be an object");
      const Napi::Object o = info[0].As<Napi::Object>();
      auto size = [&](Napi::Object from, const char* key, const std::string& where) -> size_t {
        const Napi::Value v = from.Get(key);
        const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(x >= 1 && x <= double(kMaxDim)) || std::floor(x) != x)
          fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", where + key + " must be an integer from 1 to " + std::to_string(kMaxDim));
        return size_t(x);
      };
      dims_.vocab = size(o, "vocab", "dims.");
      dims_.embed = size(o, "embed", "dims.");
      dims_.max_tokens = size(o, "maxTokens", "dims.");
      dims_.head_out = size(o, "headOut", "dims.");
      if (o.Get("lnEps").IsNumber()) dims_.ln_eps = o.Get("lnEps").As<Napi::Number>().FloatValue();
      if (!o.Get("layers").IsArray()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "dims.layers must be an array");
      const Napi::Array layers = o.Get("layers").As<Napi::Array>();
      for (uint32_t l = 0; l < layers.Length(); ++l) {
        if (!layers.Get(l).IsObject()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "dims.layers[" + std::to_string(l) + "] must be an object");
        const Napi::Object lo = layers.Get(l).As<Napi::Object>();
        const std::string where = "dims.layers[" + std::to_string(l) + "].";
        EncoderLayerDims d;
        d.width_in = size(lo, "widthIn", where);
        d.width_out = size(lo, "widthOut", where);
        d.heads = size(lo, "heads", where);
        d.ffn = size(lo, "ffn", where);
        d.residual_projection = lo.Get("residualProjection").ToBoolean().Value();
        d.query_scale = lo.Get("queryScale").IsNumber() ? lo.Get("queryScale").As<Napi::Number>().FloatValue() : NAN;
        dims_.layers.push_back(d);
      }
      const std::string problem = check_encoder_dims(dims_);
      if (!problem.empty()) fail(ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", problem);
      const Napi::Float32Array timing = batch_matrix(info, 1, "timing", dims_.embed, dims_.max_tokens);
      timing_.assign(timing.Data(), timing.Data() + timing.ElementLength());
      params_ = encoder_param_count(dims_);
      return info.Env().Undefined();
    });
  }

 private:
  EncoderDims dims_;
  std::vector<float> timing_;
  size_t params_ = 0;
  EncoderTape tape_;
  SparseRows embedding_;
  bool has_forward_ = false;

  // [{name, offset, rows, cols}]
  Napi::Value layout(const Napi::CallbackInfo& info) {
    const std::vector<TensorSpec> specs = encoder_layout(dims_);
    Napi::Array out = Napi::Array::New(info.Env(), specs.size());
    for (uint32_t i = 0; i < specs.size(); ++i) {
      Napi::Object t = Napi::Object::New(info.Env());
      t.Set("name", specs[i].name);
      t.Set("offset", double(specs[i].offset));
      t.Set("rows", double(specs[i].rows));
      t.Set("cols", double(specs[i].cols));
      out.Set(i, t);
    }
    return out;
  }

  // The parameter arena: its length, and finite everywhere (a bad value is named by its tensor).
  Napi::Float32Array params_arg(const Napi::CallbackInfo& info, size_t i) {
    Napi::Float32Array p = f32(info, i, "params");
    if (p.ElementLength() != params_)
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "params has " + std::to_string(p.ElementLength()) + " values, the encoder " + std::to_string(params_));
    const size_t bad = first_non_finite(p.Data(), params_);
    if (bad < params_) {
      const std::vector<TensorSpec> specs = encoder_layout(dims_);
      const auto t = std::find_if(specs.rbegin(), specs.rend(), [&](const TensorSpec& s) { return s.offset <= bad; });
      fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE",
           "params value " + std::to_string(bad) + " (" + t->name + "[" + std::to_string(bad - t->offset) + "]) is not finite");
    }
    return p;
  }

  // The packed batch: tokens (Int32Array) and offsets (Int32Array of texts + 1, from 0 to tokens).
  size_t batch_args(const Napi::CallbackInfo& info, size_t i, Napi::Int32Array* tokens, Napi::Int32Array* offsets) {
    *tokens = i32(info, i, "tokens");
    *offsets = i32(info, i + 1, "offsets");
    if (offsets->ElementLength() < 2) fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "offsets needs at least two entries (one text)");
    const size_t texts = offsets->ElementLength() - 1;
    const int32_t* o = offsets->Data();
    for (size_t s = 0; s < texts; ++s)
      if (o[s + 1] < o[s]) fail(ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", "offsets must not decrease (text " + std::to_string(s) + ")");
    if (o[0] != 0 || size_t(o[texts]) != tokens->ElementLength())
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "offsets must run from 0 to the number of tokens (" + std::to_string(tokens->ElementLength()) + ")");
    return texts;
  }

  Napi::Float32Array run_forward(const Napi::CallbackInfo& info, const Napi::Float32Array& params, size_t at,
                                 const Adapter& adapter, bool recompute, size_t* texts) {
    Napi::Int32Array tokens, offsets;
    *texts = batch_args(info, at, &tokens, &offsets);
    Napi::Float32Array e = zeros(info.Env(), *texts * dims_.head_out);
    has_forward_ = false;
    if (Error err = encoder_forward(dims_, params.Data(), timing_.data(), adapter, tokens.Data(), offsets.Data(), *texts,
                                    recompute, tape_, e.Data()))
      throw from_kernel(err);
    has_forward_ = true;
    return e;
  }

  // Runs the backward pass and returns {embeddingIds, embeddingRows} plus the adapter's gradients.
  Napi::Object run_backward(const Napi::CallbackInfo& info, const Napi::Float32Array& params, const float* grad_e,
                            float weight, size_t grad_at, const Adapter& adapter, size_t adapter_out_at) {
    if (!has_forward_) fail(ArgError::plain_error, "ERR_LABORSPACE_STATE", "backward needs a forward pass first");
    Napi::Float32Array grad = batch_matrix(info, grad_at, "gradOut", params_, 1);
    std::optional<Napi::Float32Array> gd, gu;
    if (adapter.rank) {
      gd = output(info, adapter_out_at, 0, "gradAdapterDown", adapter.rank * dims_.head_out);
      gu = output(info, adapter_out_at, 1, "gradAdapterUp", dims_.head_out * adapter.rank);
    }
    if (Error err = encoder_backward(dims_, params.Data(), adapter, tape_, grad_e, weight, grad.Data(), embedding_,
                                     gd ? gd->Data() : nullptr, gu ? gu->Data() : nullptr))
      throw from_kernel(err);
    Napi::Object o = Napi::Object::New(info.Env());
    Napi::Int32Array ids = Napi::Int32Array::New(info.Env(), embedding_.ids.size());
    std::copy(embedding_.ids.begin(), embedding_.ids.end(), ids.Data());
    Napi::Float32Array rows = zeros(info.Env(), embedding_.rows.size());
    std::copy(embedding_.rows.begin(), embedding_.rows.end(), rows.Data());
    o.Set("embeddingIds", ids);
    o.Set("embeddingRows", rows);
    if (gd) o.Set("gradAdapterDown", *gd);
    if (gu) o.Set("gradAdapterUp", *gu);
    return o;
  }

  // forward(params, tokens, offsets, adapterDown?, adapterUp?, adapterRank?, recompute?): embeddings.
  Napi::Value forward(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const Napi::Float32Array params = params_arg(info, 0);
      const Adapter adapter = adapter_arg(info, 3, dims_.head_out);
      size_t texts = 0;
      return run_forward(info, params, 1, adapter, info[6].ToBoolean().Value(), &texts);
    });
  }

  // The last forward pass's mean-pooled states (texts x the last layer's width): what the head read.
  Napi::Value pooled(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (!has_forward_) fail(ArgError::plain_error, "ERR_LABORSPACE_STATE", "pooled needs a forward pass first");
      const size_t n = (tape_.offsets.size() - 1) * dims_.layers.back().width_out;
      Napi::Float32Array out = zeros(info.Env(), n);
      std::copy(tape_.pooled.begin(), tape_.pooled.begin() + n, out.Data());
      return out;
    });
  }

  // backward(params, gradEmbeddings, gradOut, adapterDown?, adapterUp?, adapterRank?, adapterOut?):
  // gradients of the last forward pass (same params and adapter).
  Napi::Value backward(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const Napi::Float32Array params = params_arg(info, 0);
      const size_t texts = tape_.offsets.empty() ? 0 : tape_.offsets.size() - 1;
      const Napi::Float32Array ge = batch_matrix(info, 1, "gradEmbeddings", dims_.head_out, texts);
      const Adapter adapter = adapter_arg(info, 3, dims_.head_out);
      return run_backward(info, params, ge.Data(), 1.f, 2, adapter, 6);
    });
  }

  // lossStep(loss, params, tokens, offsets, scale, margin, targets?, lossWeight, gradOut,
  //          adapterDown?, adapterUp?, adapterRank?, adapterOut?, recompute?, anchors?, excluded?,
  //          teacher?, distill?):
  // one training step's forward, loss and backward over texts stacked as the loss's sides (MNRL:
  // `anchors` anchors, then their positives, then extra negatives; `excluded` as mnrlLoss's;
  // `teacher`, one row per text, adds distillLoss weighted `distill`).
  // {loss, embeddingIds, ...}.
  Napi::Value loss_step(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const Loss loss = loss_arg(info, 0);
      const Napi::Float32Array params = params_arg(info, 1);
      const Adapter adapter = adapter_arg(info, 9, dims_.head_out);
      LossParams lp;
      lp.scale = float(number_arg(info, 4, "scale"));
      lp.margin = float(number_arg(info, 5, "margin"));
      lp.weight = float(number_arg(info, 7, "lossWeight"));
      Napi::Int32Array tokens, offsets;
      const size_t texts = batch_args(info, 2, &tokens, &offsets), sides = loss_sides(loss);
      // MNRL may take extra negatives after the positives: `anchors` says where the positives start.
      const bool extra = !info[14].IsUndefined();
      if (!extra && (texts % sides != 0 || texts < 2 * sides))
        fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
             std::to_string(texts) + " texts: the loss needs " + std::to_string(sides) + " equal sides of at least two texts");
      const size_t anchors = extra ? mnrl_anchors(info, 14, loss, texts, 2, "texts") : texts / sides;
      std::optional<Napi::Float32Array> targets;
      if (loss == Loss::cosine_mse || loss == Loss::cosent) {
        if (!info[6].IsTypedArray()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "this loss needs targets");
        targets = batch_matrix(info, 6, "targets", 1, texts / sides);
        lp.targets = targets->Data();
      }
      size_t n = 0;
      const Napi::Float32Array e = run_forward(info, params, 2, adapter, info[13].ToBoolean().Value(), &n);
      std::vector<float> ge(e.ElementLength());
      if (extra) {
        lp.candidates = texts - anchors;
        lp.excluded = mnrl_excluded(info, 15, anchors, lp.candidates);
      }
      std::optional<Napi::Float32Array> teacher;
      if (!info[16].IsUndefined()) {
        teacher = batch_matrix(info, 16, "teacher", dims_.head_out, texts);
        lp.teacher = teacher->Data();
        lp.distill = distill_weight(info, 17);
      }
      const double value = loss_on_sides(loss, e.Data(), anchors, dims_.head_out, lp, ge.data());
      Napi::Object o = run_backward(info, params, ge.data(), lp.weight, 8, adapter, 12);
      o.Set("loss", Napi::Number::New(info.Env(), value));
      o.Set("embeddings", e);
      return o;
    });
  }
};

// adamwRows(params, rowWidth, ids, gradRows, m, v, lr, beta1, beta2, eps, weightDecay, step): AdamW
// on the rows `ids` of a row-major table only (the embedding table's sparse gradient).
Napi::Value adamw_rows_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array param = f32(info, 0, "params");
    const size_t width = integer(info, 1, "rowWidth", 1, kMaxDim);
    const size_t rows = rows_of(param, width, "params");
    Napi::Int32Array ids = i32(info, 2, "ids");
    Napi::Float32Array grad = batch_matrix(info, 3, "gradRows", width, ids.ElementLength());
    Napi::Float32Array m = f32(info, 4, "m"), v = f32(info, 5, "v");
    if (m.ElementLength() != param.ElementLength() || v.ElementLength() != param.ElementLength())
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "m and v must have as many values as params");
    for (size_t i = 0; i < ids.ElementLength(); ++i)
      if (ids[i] < 0 || size_t(ids[i]) >= rows)
        fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", "ids[" + std::to_string(i) + "] is not a row of params");
    const double lr = number_arg(info, 6, "lr"), b1 = number_arg(info, 7, "beta1"), b2 = number_arg(info, 8, "beta2");
    const double eps = number_arg(info, 9, "eps"), wd = number_arg(info, 10, "weightDecay");
    const size_t step = integer(info, 11, "step", 1, INT32_MAX);
    for (size_t i = 0; i < ids.ElementLength(); ++i) {
      const size_t at = size_t(ids[i]) * width;
      adamw_step(param.Data() + at, grad.Data() + i * width, m.Data() + at, v.Data() + at, width, float(lr), float(b1),
                 float(b2), float(eps), float(wd), int(step));
    }
    return info.Env().Undefined();
  });
}

Napi::Value info_object(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", isa_name(active_kernels().isa));
  Napi::Array isas = Napi::Array::New(env);
  uint32_t i = 0;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar})
    if (isa_supported(isa)) isas.Set(i++, isa_name(isa));
  o.Set("isas", isas);
  o.Set("threads", Napi::Number::New(env, double(thread_count())));
  Napi::Object cuda = Napi::Object::New(env);
#ifdef LABORSPACE_WITH_CUDA
  cuda.Set("compiled", true);
  cuda.Set("devices", Napi::Number::New(env, cuda::device_count()));
  if (cuda::device_count() > 0) cuda.Set("name", cuda::device_name());
#else
  cuda.Set("compiled", false);
  cuda.Set("devices", Napi::Number::New(env, 0));
#endif
  o.Set("cuda", cuda);
  return o;
}

Napi::Value set_isa(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Isa isa;
    if (!info[0].IsString() || !isa_from_name(info[0].As<Napi::String>().Utf8Value(), &isa))
      fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "isa must be 'avx512', 'avx2' or 'scalar'");
    if (!set_active_isa(isa))
      fail(ArgError::plain_error, "ERR_LABORSPACE_ISA", std::string("this CPU cannot run ") + isa_name(isa));
    return info.Env().Undefined();
  });
}

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    set_thread_count(integer(info, 0, "threads", 1, 1024));
    return info.Env().Undefined();
  });
}

Napi::Value probe_bandwidth(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array x = f32(info, 0, "buffer");
    const size_t threads = integer(info, 1, "threads", 1, 1024);
    return Napi::Number::New(info.Env(), probe_read_bandwidth(x.Data(), x.ElementLength(), threads));
  });
}

Napi::Value probe_fma(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), probe_fma_peak(integer(info, 0, "threads", 1, 1024)));
  });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, info_object));
  exports.Set("setIsa", Napi::Function::New(env, set_isa));
  exports.Set("setThreads", Napi::Function::New(env, set_threads));
  exports.Set("normalize", Napi::Function::New(env, normalize));
  exports.Set("combine", Napi::Function::New(env, combine));
  exports.Set("similarity", Napi::Function::New(env, run_sync<SimilarityCall>));
  exports.Set("similarityAsync", Napi::Function::New(env, run_async<SimilarityCall>));
  exports.Set("topk", Napi::Function::New(env, run_sync<TopkCall>));
  exports.Set("topkAsync", Napi::Function::New(env, run_async<TopkCall>));
  exports.Set("quantize", Napi::Function::New(env, quantize));
  exports.Set("matmul", Napi::Function::New(env, matmul_js));
  exports.Set("headForward", Napi::Function::New(env, head_forward_js));
  exports.Set("headBackward", Napi::Function::New(env, head_backward_js));
  exports.Set("mnrlLoss", Napi::Function::New(env, mnrl_js));
  exports.Set("distillLoss", Napi::Function::New(env, distill_js));
  exports.Set("tripletLoss", Napi::Function::New(env, triplet_js));
  exports.Set("cosineMseLoss", Napi::Function::New(env, cosine_mse_js));
  exports.Set("cosentLoss", Napi::Function::New(env, cosent_js));
  exports.Set("headLossStep", Napi::Function::New(env, head_loss_step_js));
  exports.Set("adamwStep", Napi::Function::New(env, adamw_js));
  exports.Set("adamwRows", Napi::Function::New(env, adamw_rows_js));
  exports.Set("NativeEncoder", NativeEncoder::define(env));
  exports.Set("topkQuantized", Napi::Function::New(env, run_sync<QuantizedTopkCall>));
  exports.Set("topkQuantizedAsync", Napi::Function::New(env, run_async<QuantizedTopkCall>));
  exports.Set("probeBandwidth", Napi::Function::New(env, probe_bandwidth));
  exports.Set("probeFmaPeak", Napi::Function::New(env, probe_fma));
  return exports;
}

}  // namespace
}  // namespace laborspace

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return laborspace::init(env, exports); }
NODE_API_MODULE(laborspace_native, Init)
