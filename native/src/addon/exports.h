// Each area's entry points, set on the module's exports by module.cpp.
#pragma once
#include <napi.h>

namespace laborspace::addon {

void export_device(Napi::Env env, Napi::Object exports);    // info, setIsa, setThreads, probes
void export_scoring(Napi::Env env, Napi::Object exports);   // normalize, similarity, top-k, combine, quantize
void export_training(Napi::Env env, Napi::Object exports);  // matmul, the head, the losses, AdamW
void export_encoder(Napi::Env env, Napi::Object exports);   // NativeEncoder

}  // namespace laborspace::addon
