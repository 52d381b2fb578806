// Node-API glue of the whole encoder (encoder.cpp): the NativeEncoder class, whose forward,
// backward and fused loss step run on one tape kept between calls, on the CPU or, in a CUDA build
// on a machine with a GPU, on the GPU (cuda/cuda_encoder.cu).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../encoder.h"
#include "../kernels.h"
#include "../training.h"
#include "args.h"
#include "device.h"
#include "exports.h"
#ifdef LABORSPACE_WITH_CUDA
#include "../../cuda/cuda_encoder.h"
#include "../agreement.h"
#endif

namespace laborspace::addon {
namespace {

// A NativeEncoder holds the sizes, the timing table and the tape of its last forward pass, so a
// training step's forward and backward run on buffers allocated once. Parameters are a flat arena
// (layout()) the caller owns and passes to every call.
class NativeEncoder : public Napi::ObjectWrap<NativeEncoder> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeEncoder",
                       {InstanceMethod("layout", &NativeEncoder::layout), InstanceMethod("forward", &NativeEncoder::forward),
                        InstanceMethod("pooled", &NativeEncoder::pooled), InstanceMethod("device", &NativeEncoder::device),
                        InstanceMethod("backward", &NativeEncoder::backward), InstanceMethod("lossStep", &NativeEncoder::loss_step),
                        InstanceMethod("maskedTokenStep", &NativeEncoder::masked_token_step)});
  }

  // new NativeEncoder({vocab, embed, maxTokens, headOut, lnEps?, layers: [{widthIn, widthOut, heads,
  //   ffn, residualProjection, queryScale}]}, timing, device?)
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
      choose_encoder_device(device_arg(info, 2));
      return info.Env().Undefined();
    });
  }

 private:
  EncoderDims dims_;
  std::vector<float> timing_;
  size_t params_ = 0;
  EncoderTape tape_;
  SparseRows embedding_;
  size_t forward_texts_ = 0;  // the texts of the last forward pass; 0: none whose activations are kept
  bool forward_on_gpu_ = false;  // which device holds the last forward's activations
  std::vector<float> gpu_pooled_;
#ifdef LABORSPACE_WITH_CUDA
  std::unique_ptr<cuda::Encoder> gpu_;
  bool gpu_verified_ = false;  // the first GPU step was checked against the CPU's
  DeviceRequest requested_ = DeviceRequest::automatic;
#endif

#ifdef LABORSPACE_WITH_CUDA
  // After a GPU call returned err: true where the GPU itself failed on 'auto' (retry_on_cpu), and
  // then the encoder leaves it for good: a GPU that failed once is not trusted with the next step.
  bool gpu_failed(const Error& err) {
    if (!retry_on_cpu(requested_, err, "the encoder")) return false;
    gpu_.reset();
    forward_on_gpu_ = false;
    return true;
  }
#endif

  bool on_gpu() const {
#ifdef LABORSPACE_WITH_CUDA
    return gpu_ != nullptr;
#else
    return false;
#endif
  }

  // The GPU where the build and the machine have one ('auto') or where asked ('cuda', else
  // ERR_LABORSPACE_DEVICE); its buffers are set up here, so a GPU that cannot take them is found now.
  void choose_encoder_device(DeviceRequest request) {
    if (choose_device(request, CudaFit{}) == Device::cpu) return;
#ifdef LABORSPACE_WITH_CUDA
    Error err;
    requested_ = request;
    gpu_ = cuda::Encoder::open(dims_, timing_.data(), &err);
    if (!gpu_ && request == DeviceRequest::cuda) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", err.message);
#endif
  }

  // 'cpu' or 'cuda': where forward, backward and lossStep run (adapters and the masked-token step
  // always run on the CPU).
  Napi::Value device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), on_gpu() ? "cuda" : "cpu"); }

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

  // The forward pass on the GPU when there is one and the call allows it (no adapter), else the CPU.
  Napi::Float32Array run_forward(const Napi::CallbackInfo& info, const Napi::Float32Array& params, size_t at,
                                 const Adapter& adapter, bool recompute, size_t* texts, bool gpu_allowed = true) {
    Napi::Int32Array tokens, offsets;
    *texts = batch_args(info, at, &tokens, &offsets);
    Napi::Float32Array e = zeros(info.Env(), *texts * dims_.head_out);
    forward_texts_ = 0;
    forward_on_gpu_ = gpu_allowed && adapter.rank == 0 && on_gpu();
    Error err;
#ifdef LABORSPACE_WITH_CUDA
    if (forward_on_gpu_) {
      err = gpu_->forward(params.Data(), tokens.Data(), offsets.Data(), *texts, e.Data(), gpu_pooled_);
      gpu_failed(err);  // then the CPU below
    }
#endif
    if (!forward_on_gpu_)
      err = encoder_forward(dims_, params.Data(), timing_.data(), adapter, tokens.Data(), offsets.Data(), *texts, recompute, tape_, e.Data());
    if (err) throw from_kernel(err);
    forward_texts_ = *texts;
    return e;
  }

  // Runs the backward pass of the last forward one and returns {embeddingIds, embeddingRows} plus
  // the adapter's gradients; nothing where the GPU failed and was dropped ('auto'), so the caller
  // takes the step on the CPU.
  std::optional<Napi::Object> run_backward(const Napi::CallbackInfo& info, const Napi::Float32Array& params, const float* grad_e,
                                           float weight, size_t grad_at, const Adapter& adapter, size_t adapter_out_at) {
    Napi::Float32Array grad = batch_matrix(info, grad_at, "gradOut", params_, 1);
    std::optional<Napi::Float32Array> gd, gu;
    if (adapter.rank) {
      gd = output(info, adapter_out_at, 0, "gradAdapterDown", adapter.rank * dims_.head_out);
      gu = output(info, adapter_out_at, 1, "gradAdapterUp", dims_.head_out * adapter.rank);
    }
    Error err;
#ifdef LABORSPACE_WITH_CUDA
    if (forward_on_gpu_) {
      if (adapter.rank) fail(ArgError::plain_error, "ERR_LABORSPACE_STATE", "backward has an adapter the forward pass did not");
      err = gpu_->backward(grad_e, weight, grad.Data(), embedding_);
      if (gpu_failed(err)) {
        forward_texts_ = 0;  // the activations were the GPU's
        return std::nullopt;
      }
    }
#endif
    if (!forward_on_gpu_)
      err = encoder_backward(dims_, params.Data(), adapter, tape_, grad_e, weight, grad.Data(), embedding_, gd ? gd->Data() : nullptr,
                             gu ? gu->Data() : nullptr);
    if (err) throw from_kernel(err);
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
      if (!forward_texts_) fail(ArgError::plain_error, "ERR_LABORSPACE_STATE", "pooled needs a forward pass first");
      const std::vector<float>& pooled = forward_on_gpu_ ? gpu_pooled_ : tape_.pooled;
      const size_t n = forward_on_gpu_ ? gpu_pooled_.size() : (tape_.offsets.size() - 1) * dims_.layers.back().width_out;
      Napi::Float32Array out = zeros(info.Env(), n);
      std::copy(pooled.begin(), pooled.begin() + n, out.Data());
      return out;
    });
  }

  // backward(params, gradEmbeddings, gradOut, adapterDown?, adapterUp?, adapterRank?, adapterOut?):
  // gradients of the last forward pass (same params and adapter).
  Napi::Value backward(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const Napi::Float32Array params = params_arg(info, 0);
      if (!forward_texts_) fail(ArgError::plain_error, "ERR_LABORSPACE_STATE", "backward needs a forward pass first");
      const Napi::Float32Array ge = batch_matrix(info, 1, "gradEmbeddings", dims_.head_out, forward_texts_);
      const Adapter adapter = adapter_arg(info, 3, dims_.head_out);
      const std::optional<Napi::Object> o = run_backward(info, params, ge.Data(), 1.f, 2, adapter, 6);
      if (!o) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "the GPU failed in the backward pass; the encoder runs on the CPU from now on: run forward again");
      return *o;
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
      std::optional<Napi::Object> o = run_backward(info, params, ge.data(), lp.weight, 8, adapter, 12);
      if (!o) return loss_step(info);  // the GPU failed: the whole step again, on the CPU
#ifdef LABORSPACE_WITH_CUDA
      if (forward_on_gpu_ && !gpu_verified_) {
        // The first GPU step is checked against the CPU's; where they differ the encoder stays on
        // the CPU, and this step is taken again there.
        gpu_verified_ = true;
        const std::string why = gpu_disagreement(loss, params.Data(), tokens.Data(), offsets.Data(), texts, anchors, lp, e.Data(),
                                                 info[8].As<Napi::Float32Array>().Data());
        if (!why.empty()) {
          std::fprintf(stderr, "laborspace: the GPU's encoder step differs from the CPU's (%s); the encoder runs on the CPU from now on\n",
                       why.c_str());
          gpu_.reset();
          return loss_step(info);
        }
      }
#endif
      o->Set("loss", Napi::Number::New(info.Env(), value));
      o->Set("embeddings", e);
      return *o;
    });
  }

#ifdef LABORSPACE_WITH_CUDA
  // What differs between the GPU step just taken (embeddings e, the arena's gradient grad and
  // embedding_) and the same step on the CPU, or an empty string when they agree to rounding.
  std::string gpu_disagreement(Loss loss, const float* params, const int32_t* tokens, const int32_t* offsets, size_t texts,
                               size_t anchors, const LossParams& lp, const float* e, const float* grad) {
    const size_t H = dims_.head_out;
    std::vector<float> ce(texts * H), cge(texts * H), cgrad(params_);
    SparseRows rows;
    Error err = encoder_forward(dims_, params, timing_.data(), Adapter{}, tokens, offsets, texts, false, tape_, ce.data());
    if (!err) {
      loss_on_sides(loss, ce.data(), anchors, H, lp, cge.data());
      err = encoder_backward(dims_, params, Adapter{}, tape_, cge.data(), lp.weight, cgrad.data(), rows, nullptr, nullptr);
    }
    if (err) return "the CPU's step failed: " + err.message;
    const double worst = worst_row_cosine(ce.data(), e, texts, H);
    if (worst < 0.9999) return "an embedding's cosine to the CPU's is " + std::to_string(worst);
    if (rows.ids != embedding_.ids) return "the embedding gradient has other rows";
    double largest = 0;
    const size_t first = encoder_layout(dims_)[1].offset;
    const double diff = std::max(max_abs_diff(cgrad.data() + first, grad + first, params_ - first, &largest),
                                 max_abs_diff(rows.rows.data(), embedding_.rows.data(), rows.rows.size(), &largest));
    if (!(diff <= 1e-4 + 1e-2 * largest)) return "gradients differ by " + std::to_string(diff) + " (largest " + std::to_string(largest) + ")";
    return "";
  }
#endif

  // maskedTokenStep(params, tokens, offsets, positions, targets, head, gradOut, gradHead, recompute?):
  // forward over the masked batch, the masked-token loss (masked_token_step) and the backward pass
  // to every parameter. head is [proj (width x embed), proj bias (embed), vocabulary bias (vocab)],
  // gradHead the same; gradOut gets the whole arena's gradient, the embedding table's included.
  // {loss}.
  Napi::Value masked_token_step(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const Napi::Float32Array params = params_arg(info, 0);
      const Napi::Int32Array positions = i32(info, 3, "positions"), targets = i32(info, 4, "targets");
      if (positions.ElementLength() != targets.ElementLength())
        fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
             "positions has " + std::to_string(positions.ElementLength()) + " entries, targets " + std::to_string(targets.ElementLength()));
      const size_t P = dims_.layers.back().width_out, E = dims_.embed, V = dims_.vocab, H = P * E + E + V;
      // The output layer: [proj, proj bias, vocabulary bias], and its gradient's array, of H values.
      auto sized_arg = [&](size_t i, const char* name) {
        Napi::Float32Array a = f32(info, i, name);
        if (a.ElementLength() != H)
          fail(ArgError::range_error, "ERR_LABORSPACE_DIMENSION",
               std::string(name) + " has " + std::to_string(a.ElementLength()) + " values, the output layer " + std::to_string(H));
        return a;
      };
      const Napi::Float32Array head = sized_arg(5, "head");
      const size_t bad = first_non_finite(head.Data(), H);
      if (bad < H) fail(ArgError::range_error, "ERR_LABORSPACE_NON_FINITE", "head value " + std::to_string(bad) + " is not finite");
      Napi::Float32Array grad = batch_matrix(info, 6, "gradOut", params_, 1);
      Napi::Float32Array grad_head = sized_arg(7, "gradHead");
      size_t texts = 0;
      run_forward(info, params, 1, Adapter{}, info[8].ToBoolean().Value(), &texts, false);
      const float* h = head.Data();
      float* gh = grad_head.Data();
      double loss = 0;
      if (Error err = laborspace::masked_token_step(dims_, params.Data(), {h, h + P * E, h + P * E + E}, tape_, positions.Data(),
                                                    targets.Data(), positions.ElementLength(), grad.Data(),
                                                    {gh, gh + P * E, gh + P * E + E}, &loss))
        throw from_kernel(err);
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("loss", Napi::Number::New(info.Env(), loss));
      return o;
    });
  }
};

}  // namespace

void export_encoder(Napi::Env env, Napi::Object exports) { exports.Set("NativeEncoder", NativeEncoder::define(env)); }

}  // namespace laborspace::addon
