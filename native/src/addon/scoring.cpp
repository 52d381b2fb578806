// Node-API glue of the scoring kernels (scoring.cpp): normalize, similarity, top-k (CPU, CUDA and
// int8), combine, quantize. The calls with async variants parse into a Call struct that both the
// sync entry point and the libuv worker run.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../parallel.h"
#include "args.h"
#include "device.h"
#include "exports.h"
#ifdef LABORSPACE_WITH_CUDA
#include "../../cuda/cuda_topk.h"
#endif

namespace laborspace::addon {
namespace {

Metric metric_arg(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value v = info[i];
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "dot") return Metric::dot;
  if (s == "cosine") return Metric::cosine;
  fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "metric must be 'dot' or 'cosine'");
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
  DeviceRequest requested;
  Device device;
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
    c.requested = device_arg(info, 6);
    c.k = std::min(c.k_req, count_eligible(c.mask_data(), c.n));
    CudaFit fit;
    fit.work = double(c.m) * c.n * c.dim;
    fit.min_work = 5e8;  // transfers cost more than they save on small work
#ifdef LABORSPACE_WITH_CUDA
    if (c.k > cuda::kMaxK) fit.unsupported = "k above " + std::to_string(cuda::kMaxK) + " runs on the CPU only";
#endif
    c.device = choose_device(c.requested, fit);
    c.indices = Napi::Int32Array::New(info.Env(), c.m * c.k);
    c.scores = Napi::Float32Array::New(info.Env(), c.m * c.k);
    return c;
  }

  const uint8_t* mask_data() const { return mask ? mask->Data() : nullptr; }

  Error run() {
    if (k == 0 || m == 0) return {};
#ifdef LABORSPACE_WITH_CUDA
    // Non-finite queries go to the CPU kernel, which names their row and column.
    if (device == Device::cuda && first_non_finite(queries.Data(), m * dim) == m * dim) {
      const Error err = cuda::topk(queries.Data(), m, database.Data(), n, dim, k, metric, mask_data(), indices.Data(), scores.Data());
      if (!retry_on_cpu(requested, err, "top-k")) return err;
      device = Device::cpu;
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
    return topk_result(env, outs, k, device_name(device));
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
  Napi::Float32Array queries, scales, database, scores, projection;
  Napi::Int8Array codes;
  Napi::Int32Array indices;
  size_t dim, rank, m, n, k, kk, candidates, k_out = 0;

  static QuantizedTopkCall parse(const Napi::CallbackInfo& info) {
    QuantizedTopkCall c;
    c.queries = f32(info, 0, "queries");
    c.codes = typed_array<Napi::Int8Array>(info, 1, "codes", napi_int8_array, "Int8Array");
    c.scales = f32(info, 2, "scales");
    c.database = f32(info, 3, "database");
    c.dim = integer(info, 4, "dim", 1, kMaxDim);
    c.m = rows_of(c.queries, c.dim, "queries");
    c.n = rows_of(c.database, c.dim, "database");
    c.rank = c.dim;
    if (info.Length() > 7 && !info[7].IsUndefined()) {
      c.projection = finite_matrix(info, 7, "projection", c.dim, &c.rank);
      if (c.rank < 1 || c.rank > c.dim)
        fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
             "projection must have from 1 to " + std::to_string(c.dim) + " rows of " + std::to_string(c.dim) + ", got " + std::to_string(c.rank));
    }
    if (c.codes.ElementLength() != c.n * c.rank || c.scales.ElementLength() != c.n)
      fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
           "codes and scales must describe the " + std::to_string(c.n) + " database rows in " + std::to_string(c.rank) +
               " dimensions (quantize the same database, projected as the query is)");
    c.k = integer(info, 5, "k", 1, INT32_MAX);
    c.candidates = integer(info, 6, "candidates", 1, INT32_MAX);
    c.kk = std::min(c.k, c.n);
    c.indices = Napi::Int32Array::New(info.Env(), c.m * c.kk);
    c.scores = Napi::Float32Array::New(info.Env(), c.m * c.kk);
    return c;
  }
  Error run() {
    return topk_quantized(queries.Data(), m, projection.IsEmpty() ? nullptr : projection.Data(), rank, codes.Data(), scales.Data(),
                          database.Data(), n, dim, k, candidates, indices.Data(), scores.Data(), &k_out);
  }
  std::vector<Napi::Value> outputs() const { return {indices, scores}; }
  Napi::Value result(Napi::Env env, const std::vector<Napi::Value>& outs) const {
    return topk_result(env, outs, k_out, device_name(Device::cpu));
  }
};

// A call's kernel, an allocation failure turned into an error (on whichever thread it runs).
template <class Call>
Error run_call(Call& call) {
  try {
    return call.run();
  } catch (const std::bad_alloc&) {
    return {Error::bad_argument, "out of memory for this input size"};
  }
}

// Settles a call's promise with its result or its kernel's error (on the JavaScript thread).
template <class Call>
void settle(Napi::Env env, const Napi::Promise::Deferred& deferred, const Call& call, const Error& error,
            const std::vector<Napi::Value>& outputs) {
  if (error) deferred.Reject(js_error(env, from_kernel(error)).Value());
  else deferred.Resolve(call.result(env, outputs));
}

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
    error_ = run_call(call_);
  }
  void OnOK() override {
    try {
      std::vector<Napi::Value> outs;
      for (const Napi::ObjectReference& r : outputs_) outs.push_back(r.Value());
      settle(Env(), deferred_, call_, error_, outs);
    } catch (const Napi::Error& e) {
      throw_on(e);
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

// Set on a thread by keepKernelsOnThisThread: its async calls run on it (see there).
thread_local bool kernels_here = false;

template <class Call>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Call call = Call::parse(info);
    if (kernels_here) {
      Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(info.Env());
      settle(info.Env(), deferred, call, run_call(call), call.outputs());
      return deferred.Promise();
    }
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

// From now on, the calling thread's async calls run on it (settling their promises at once) and
// their parallel parts on threads it starts, instead of on libuv's pool. For a worker thread whose
// priority is lowered (the server's analysis threads): on the pool, shared by the whole process,
// its kernels would take that priority along, or share the pool's with the queries it must give
// way to. (Linux sets niceness per thread, and started threads inherit it.)
Napi::Value keep_kernels_on_this_thread(const Napi::CallbackInfo& info) {
  kernels_here = true;
  use_own_threads_here();
  return info.Env().Undefined();
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

}  // namespace

void export_scoring(Napi::Env env, Napi::Object exports) {
  exports.Set("normalize", Napi::Function::New(env, normalize));
  exports.Set("combine", Napi::Function::New(env, combine));
  exports.Set("similarity", Napi::Function::New(env, run_sync<SimilarityCall>));
  exports.Set("similarityAsync", Napi::Function::New(env, run_async<SimilarityCall>));
  exports.Set("topk", Napi::Function::New(env, run_sync<TopkCall>));
  exports.Set("topkAsync", Napi::Function::New(env, run_async<TopkCall>));
  exports.Set("quantize", Napi::Function::New(env, quantize));
  exports.Set("keepKernelsOnThisThread", Napi::Function::New(env, keep_kernels_on_this_thread));
  exports.Set("topkQuantized", Napi::Function::New(env, run_sync<QuantizedTopkCall>));
  exports.Set("topkQuantizedAsync", Napi::Function::New(env, run_async<QuantizedTopkCall>));
}

}  // namespace laborspace::addon
