// Node-API glue of the training kernels (training.cpp, gemm.cpp): matmul, the head's forward and
// backward, the losses, the fused head step (CPU or CUDA) and AdamW, dense and by rows.
#include <algorithm>
#include <optional>
#include <string>

#include "../kernels.h"
#include "../training.h"
#include "args.h"
#include "device.h"
#include "exports.h"
#ifdef LABORSPACE_WITH_CUDA
#include "../../cuda/cuda_training.h"
#endif

namespace laborspace::addon {
namespace {

Napi::Object loss_result(Napi::Env env, double loss, std::initializer_list<std::pair<const char*, Napi::Float32Array>> grads) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, loss));
  for (const auto& [name, g] : grads) o.Set(name, g);
  return o;
}

// matmul(a, b, m, n, k, transposeA, transposeB, out?): op(a) op(b) as an m x n Float32Array, written
// into out[0] when given.
Napi::Value matmul_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t m = integer(info, 2, "m", 1, kMaxDim), n = integer(info, 3, "n", 1, kMaxDim), k = integer(info, 4, "k", 1, kMaxDim);
    const bool ta = info[5].ToBoolean(), tb = info[6].ToBoolean();
    Napi::Float32Array a = batch_matrix(info, 0, "a", ta ? m : k, ta ? k : m);
    Napi::Float32Array b = batch_matrix(info, 1, "b", tb ? k : n, tb ? n : k);
    Napi::Float32Array c = output(info, 7, 0, "product", m * n);
    gemm(ta ? Op::transpose : Op::none, tb ? Op::transpose : Op::none, m, n, k, a.Data(), ta ? m : k, b.Data(), tb ? k : n, c.Data(), n, false);
    return c;
  });
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
    const DeviceRequest requested = device_arg(info, 10);
    const Adapter adapter = adapter_arg(info, 11, dout);
    const bool dense = info[14].IsUndefined() || info[14].ToBoolean().Value();
    if (!dense && !adapter.rank)
      fail(ArgError::range_error, "ERR_LABORSPACE_ARGUMENT", "nothing to train: the dense layer is frozen and there is no adapter");
    // The CUDA step's MNRL is in-batch only: with extra negatives 'auto' runs on the CPU, and a
    // demanded 'cuda' is refused rather than quietly run there.
    CudaFit fit;
    if (extra) fit.unsupported = "the CUDA head step takes in-batch negatives only: extra negatives (anchors) need device 'cpu' or 'auto'";
    Device device = choose_device(requested, fit);
    const HeadGradArrays out(info, 15, din, dout, adapter, dense);
    double value = 0;
    Error err;
#ifdef LABORSPACE_WITH_CUDA
    if (device == Device::cuda) {
      err = cuda::head_loss_step(loss, x.Data(), batch, din, wt.Data(), bias.Data(), dout, adapter, params, &value, out.grads);
      if (retry_on_cpu(requested, err, "the head's training step")) device = Device::cpu;
    }
#endif
    if (device == Device::cpu) err = head_loss_step(loss, x.Data(), batch, din, wt.Data(), bias.Data(), dout, adapter, params, &value, out.grads);
    if (err) throw from_kernel(err);
    Napi::Object o = loss_result(info.Env(), value, {});
    out.set_on(o);
    o.Set("device", Napi::String::New(info.Env(), device_name(device)));
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

}  // namespace

void export_training(Napi::Env env, Napi::Object exports) {
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
}

}  // namespace laborspace::addon
