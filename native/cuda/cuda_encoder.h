// The whole encoder on the first GPU: forward and backward with the contract of encoder_forward and
// encoder_backward (encoder.h), for the relation loss's step (no adapter, no per-token gradient:
// those run on the CPU). Activations are always kept: recomputation is for the CPU's memory.
// Built with LABORSPACE_WITH_CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../src/encoder.h"

namespace laborspace::cuda {

struct EncoderBuffers;  // device memory kept between steps (cuda_encoder.cu)

class Encoder {
 public:
  // Null, with *err saying why, where the GPU cannot take the timing table.
  static std::unique_ptr<Encoder> open(const EncoderDims& dims, const float* timing, Error* err);
  ~Encoder();
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // e (texts x head_out) for the batch; params is the host arena (encoder_layout), uploaded here.
  // pooled (texts x the last layer's width) receives the mean-pooled states.
  Error forward(const float* params, const int32_t* tokens, const int32_t* offsets, size_t texts, float* e,
                std::vector<float>& pooled);
  // Gradients of the last forward given dL/de times `weight`: every tensor of the host arena `grad`
  // but the embeddings, which go to `embedding` (encoder_backward's contract).
  Error backward(const float* grad_e, float weight, float* grad, SparseRows& embedding);

 private:
  explicit Encoder(const EncoderDims& dims);
  EncoderDims dims_;
  std::unique_ptr<EncoderBuffers> d_;
};

}  // namespace laborspace::cuda
