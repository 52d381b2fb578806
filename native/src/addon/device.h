// The device argument of the calls that have a CUDA kernel.
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

namespace laborspace::addon {

// 'auto' (the default), 'cpu' or 'cuda'.
std::string device_arg(const Napi::CallbackInfo& info, size_t i);

// Whether a CUDA device runs the call: 'cuda' demands one, 'auto' takes one when present.
bool cuda_wanted(const std::string& dev);

}  // namespace laborspace::addon
