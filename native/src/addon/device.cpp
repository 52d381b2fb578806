// The hardware the kernels run on: the device choice, and the calls that report and set the CPU's
// instruction set and threads (info, setIsa, setThreads, the bandwidth and FMA probes).
#include "device.h"

#include <cstdio>
#include <mutex>
#include <set>

#include "../kernels.h"
#include "args.h"
#include "exports.h"
#ifdef LABORSPACE_WITH_CUDA
#include "../../cuda/cuda_topk.h"
#endif

namespace laborspace::addon {

DeviceRequest device_arg(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value device = info[i];
  const std::string dev = device.IsString() ? device.As<Napi::String>().Utf8Value() : "auto";
  if (dev == "auto") return DeviceRequest::automatic;
  if (dev == "cpu") return DeviceRequest::cpu;
  if (dev == "cuda") return DeviceRequest::cuda;
  fail(ArgError::type_error, "ERR_LABORSPACE_ARG_TYPE", "device must be 'auto', 'cpu' or 'cuda'");
}

Device choose_device(DeviceRequest requested, const CudaFit& fit) {
  if (requested == DeviceRequest::cpu) return Device::cpu;
  const bool demanded = requested == DeviceRequest::cuda;
#ifdef LABORSPACE_WITH_CUDA
  if (cuda::device_count() == 0) {
    if (demanded) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "no CUDA device is available");
    return Device::cpu;
  }
  if (!fit.unsupported.empty()) {
    if (demanded) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", fit.unsupported);
    return Device::cpu;
  }
  if (!demanded && fit.work < fit.min_work) return Device::cpu;
  return Device::cuda;
#else
  if (demanded) fail(ArgError::plain_error, "ERR_LABORSPACE_DEVICE", "this build has no CUDA support");
  (void)fit;
  return Device::cpu;
#endif
}

bool retry_on_cpu(DeviceRequest requested, const Error& err, const char* call) {
  if (err.kind != Error::device || requested != DeviceRequest::automatic) return false;
  static std::mutex said_mutex;
  static std::set<std::string> said;
  const std::lock_guard<std::mutex> lock(said_mutex);
  if (said.insert(call).second)
    std::fprintf(stderr, "laborspace: %s failed on the GPU (%s); it runs on the CPU instead\n", call, err.message.c_str());
  return true;
}

const char* device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

namespace {

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

}  // namespace

void export_device(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, info_object));
  exports.Set("setIsa", Napi::Function::New(env, set_isa));
  exports.Set("setThreads", Napi::Function::New(env, set_threads));
  exports.Set("probeBandwidth", Napi::Function::New(env, probe_bandwidth));
  exports.Set("probeFmaPeak", Napi::Function::New(env, probe_fma));
}

}  // namespace laborspace::addon
