// CUDA training step: the head and a loss, forward and backward, with the same contract as
// laborspace::head_loss_step (training.h), on the first GPU. Built with LABORSPACE_WITH_CUDA.
#pragma once
#include <cstddef>

#include "../src/training.h"

namespace laborspace::cuda {

Error head_loss_step(Loss loss, const float* x, size_t batch, size_t din, const float* wt, const float* bias,
                     size_t dout, const Adapter& adapter, const LossParams& params, double* loss_out,
                     const HeadGrads& grads);

}  // namespace laborspace::cuda
