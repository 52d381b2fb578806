// The argument helpers of args.h.
#include "args.h"

#include <algorithm>
#include <cmath>

namespace laborspace::addon {

void fail(ArgError::Kind kind, const char* code, std::string message) {
  throw ArgError{kind, code, std::move(message)};
}

Napi::Error js_error(Napi::Env env, const ArgError& e) {
  Napi::Error err = e.kind == ArgError::type_error    ? Napi::TypeError::New(env, e.message)
                    : e.kind == ArgError::range_error ? Napi::RangeError::New(env, e.message)
                                                      : Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  return err;
}

ArgError from_kernel(const Error& e) {
  switch (e.kind) {
    case Error::non_finite: return {ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", e.message};
    case Error::overflow: return {ArgError::range_error, "ERR_LABORSPACE_OVERFLOW", e.message};
    case Error::device: return {ArgError::plain_error, "ERR_LABORSPACE_DEVICE", e.message};
    default: return {ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", e.message};
  }
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

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", std::string(name) + " must be finite");
  return v;
}

size_t rows_of(const Napi::Float32Array& a, size_t dim, const char* name) {
  if (a.ElementLength() % dim != 0)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
         std::string(name) + " has " + std::to_string(a.ElementLength()) + " values, not a multiple of dim " +
             std::to_string(dim));
  return a.ElementLength() / dim;
}

Napi::Float32Array finite_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t* rows) {
  Napi::Float32Array x = f32(info, i, name);
  *rows = rows_of(x, dim, name);
  const size_t bad = first_non_finite(x.Data(), *rows * dim);
  if (bad < *rows * dim)
    fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE",
         std::string(name) + " row " + std::to_string(bad / dim) + ", column " + std::to_string(bad % dim) + " is not finite");
  return x;
}

Napi::Float32Array batch_matrix(const Napi::CallbackInfo& info, size_t i, const char* name, size_t dim, size_t rows) {
  size_t n = 0;
  Napi::Float32Array x = finite_matrix(info, i, name, dim, &n);
  if (n != rows)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", std::string(name) + " has " + std::to_string(n) + " rows, expected " + std::to_string(rows));
  return x;
}

Napi::Float32Array zeros(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

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

Loss loss_arg(const Napi::CallbackInfo& info, size_t i) {
  const std::string name = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (name == "mnrl") return Loss::mnrl;
  if (name == "triplet") return Loss::triplet;
  if (name == "cosine_mse") return Loss::cosine_mse;
  if (name == "cosent") return Loss::cosent;
  fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "loss must be 'mnrl', 'triplet', 'cosine_mse' or 'cosent'");
}

Adapter adapter_arg(const Napi::CallbackInfo& info, size_t i, size_t dout) {
  Adapter adapter;
  if (info[i].IsUndefined() || info[i].IsNull()) return adapter;
  adapter.rank = integer(info, i + 2, "adapter rank", 1, dout);
  adapter.down = batch_matrix(info, i, "adapter down", dout, adapter.rank).Data();
  adapter.up = batch_matrix(info, i + 1, "adapter up", adapter.rank, dout).Data();
  return adapter;
}

const uint8_t* mnrl_excluded(const Napi::CallbackInfo& info, size_t i, size_t batch, size_t candidates) {
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  Napi::Uint8Array m = typed_array<Napi::Uint8Array>(info, i, "excluded", napi_uint8_array, "Uint8Array");
  if (m.ElementLength() != batch * candidates)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
         "excluded has " + std::to_string(m.ElementLength()) + " values, expected " + std::to_string(batch) + " x " + std::to_string(candidates));
  return m.Data();
}

size_t mnrl_anchors(const Napi::CallbackInfo& info, size_t i, Loss loss, size_t rows, size_t least, const char* unit) {
  if (loss != Loss::mnrl) fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", "only the MNRL loss takes extra negatives");
  const size_t anchors = integer(info, i, "anchors", least, std::max(least, rows / 2));
  if (2 * anchors > rows)
    fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION", std::to_string(rows) + " " + unit + ": fewer than two per anchor");
  return anchors;
}

float distill_weight(const Napi::CallbackInfo& info, size_t i) {
  const double w = number_arg(info, i, "distill");
  if (w < 0) fail(ArgError::range_error, "ERR_LABORSPACE_RANGE", "distill must not be negative, got " + std::to_string(w));
  return float(w);
}

}  // namespace laborspace::addon
