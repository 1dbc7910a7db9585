#pragma once
// Precompiled header for every torch-using target: ATen and the nn-free parts we use.
// Only core/, experiments/, tests/ and the kernels' torch bridge include torch.
#include <ATen/ATen.h>
#include <torch/types.h>
