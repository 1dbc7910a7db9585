#include "core/gguf_dequant.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace kvf {

namespace {

// IEEE half -> float, exact for every input: normals, subnormals, zeros, infinities and NaNs (payload kept).
uint32_t half_bits_to_float_bits(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return sign | 0x7f800000u | (mant << 13);
  if (exp != 0) return sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  if (mant == 0) return sign;
  // Subnormal half: mant * 2^-24 is exactly representable as a normal float.
  return sign | std::bit_cast<uint32_t>(float(mant) * 0x1p-24f);
}

// All 65536 halves, built once: a table lookup is faster than bit twiddling per element.
const std::array<float, 65536>& half_table() {
  static const auto table = [] {
    std::array<float, 65536> t{};
    for (uint32_t i = 0; i < 65536; ++i) t[i] = std::bit_cast<float>(half_bits_to_float_bits(uint16_t(i)));
    return t;
  }();
  return table;
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Block layouts from ggml-common.h; the arithmetic follows ggml-quants.c dequantize_row_* (and gguf-py).
void dequant_q4_0(const uint8_t* src, float* dst, int64_t nb, const std::array<float, 65536>& ht) {
  for (int64_t b = 0; b < nb; ++b, src += 18, dst += 32) {
    const float d = ht[load_u16(src)];
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = float((qs[j] & 0x0F) - 8) * d;
      dst[j + 16] = float((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, float* dst, int64_t nb, const std::array<float, 65536>& ht) {
  for (int64_t b = 0; b < nb; ++b, src += 20, dst += 32) {
    const float d = ht[load_u16(src)];
    const float m = ht[load_u16(src + 2)];
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      // Two roundings (product, then sum), like ggml and numpy; no fused multiply-add.
      const float p0 = float(qs[j] & 0x0F) * d;
      const float p1 = float(qs[j] >> 4) * d;
      dst[j] = p0 + m;
      dst[j + 16] = p1 + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, float* dst, int64_t nb, const std::array<float, 65536>& ht) {
  for (int64_t b = 0; b < nb; ++b, src += 34, dst += 32) {
    const float d = ht[load_u16(src)];
    const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) dst[j] = float(qs[j]) * d;
  }
}

}  // namespace

float fp16_to_float(uint16_t h) { return std::bit_cast<float>(half_bits_to_float_bits(h)); }
float bf16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

bool ggml_can_dequantize(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1:
      return true;
    default:
      return false;
  }
}

int64_t ggml_block_size(GgmlType t) {
  int64_t block = 0;
  size_t bytes = 0;
  if (!ggml_type_layout(t, block, bytes))
    throw Error("unknown ggml type " + std::to_string(static_cast<uint32_t>(t)));
  return block;
}

size_t ggml_type_size(GgmlType t) {
  int64_t block = 0;
  size_t bytes = 0;
  if (!ggml_type_layout(t, block, bytes))
    throw Error("unknown ggml type " + std::to_string(static_cast<uint32_t>(t)));
  return bytes;
}

size_t ggml_nbytes(GgmlType t, int64_t n) {
  const int64_t block = ggml_block_size(t);
  const size_t bytes = ggml_type_size(t);
  if (n < 0 || n % block != 0)
    throw Error(std::string(ggml_type_name(t)) + ": element count " + std::to_string(n) +
                " is not a non-negative multiple of the block size " + std::to_string(block));
  const auto blocks = static_cast<uint64_t>(n / block);
  if (blocks > std::numeric_limits<size_t>::max() / bytes)
    throw Error(std::string(ggml_type_name(t)) + ": byte size of " + std::to_string(n) + " elements overflows");
  return static_cast<size_t>(blocks) * bytes;
}

void dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n) {
  if (!ggml_can_dequantize(t))
    throw Error("cannot dequantise ggml type " + std::string(ggml_type_name(t)) +
                " (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
  (void)ggml_nbytes(t, n);  // validates n against the block size
  if (n == 0) return;
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::F16: {
      const auto& ht = half_table();
      for (int64_t i = 0; i < n; ++i) dst[i] = ht[load_u16(src + 2 * i)];
      return;
    }
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::Q8_0: dequant_q8_0(src, dst, n / 32, half_table()); return;
    case GgmlType::Q4_0: dequant_q4_0(src, dst, n / 32, half_table()); return;
    case GgmlType::Q4_1: dequant_q4_1(src, dst, n / 32, half_table()); return;
    default: break;
  }
}

}  // namespace kvf
