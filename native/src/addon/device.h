// Which device runs a call that has a CUDA kernel: decided by choose_device alone, for every such call.
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

#include "../kernels.h"

namespace laborspace::addon {

enum class Device { cpu, cuda };

// What the caller asked for.
enum class DeviceRequest { automatic, cpu, cuda };

// The device argument: 'auto' (also when it is not a string), 'cpu' or 'cuda'.
DeviceRequest device_arg(const Napi::CallbackInfo& info, size_t i);

// What the GPU makes of one call.
struct CudaFit {
  // The call's size; 'auto' keeps it on the CPU below min_work, where the transfers cost more than
  // the GPU saves.
  double work = 0, min_work = 0;
  // Why the CUDA kernel cannot take these arguments: asking for 'cuda' fails with it.
  std::string unsupported;
};

// 'cpu': the CPU. 'cuda': the GPU, or ERR_LABORSPACE_DEVICE where the build or the machine has none
// or the kernel cannot take the call. 'auto': the GPU where there is one, the kernel takes the call
// and its work is large enough; else the CPU.
Device choose_device(DeviceRequest requested, const CudaFit& fit);

// After a call on the GPU returned `err`: true where the caller should take the call again on the
// CPU, that is where the GPU itself failed (Error::device) and the caller asked for 'auto'. The
// first such failure of each call is said once on stderr. On 'cuda' the failure is the caller's.
bool retry_on_cpu(DeviceRequest requested, const Error& err, const char* call);

// 'cpu' or 'cuda', as results report it.
const char* device_name(Device device);

}  // namespace laborspace::addon
