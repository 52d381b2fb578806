// CUDA exact top-k: the same contract as laborspace::topk (kernels.h), on the first GPU.
// Built only when CMake finds a CUDA toolkit (LABORSPACE_WITH_CUDA); the glue falls back to the
// CPU when no device answers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../src/kernels.h"

namespace laborspace::cuda {

// Largest k the selection kernel keeps per thread; larger k runs on the CPU.
constexpr size_t kMaxK = 128;

// Number of usable GPUs: 0 without a driver or device.
int device_count();
std::string device_name();

// k must already be min(k, eligible rows) and at most kMaxK; q is validated finite by the caller.
Error topk(const float* q, size_t m, const float* x, size_t n, size_t d, size_t k, Metric metric,
           const uint8_t* mask, int32_t* out_idx, float* out_scores);

}  // namespace laborspace::cuda
