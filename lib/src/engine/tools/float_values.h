// Reading floating-point elements of any of tessera's float dtypes as double,
// without LibTorch: float16 (IEEE binary16) and bfloat16 are widened by hand.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tessera::engine {

// bfloat16 is the top half of a float32.
inline float bfloat16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

// IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
inline float float16_to_float(uint16_t h) {
  const bool negative = h & 0x8000;
  const uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float f;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    f = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {  // inf or NaN
    f = mantissa ? NAN : INFINITY;
  } else {
    const uint32_t bits = ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
    std::memcpy(&f, &bits, 4);
  }
  return negative ? -f : f;
}

// Reads element `i` of a dense array as double.
using ElementReader = double (*)(const std::byte* data, size_t i);

// The reader for a float dtype (float32, float64, float16, bfloat16), or
// nullptr for any other dtype.
inline ElementReader element_reader(std::string_view dtype) {
  if (dtype == "float32")
    return [](const std::byte* d, size_t i) {
      float f;
      std::memcpy(&f, d + i * 4, 4);
      return static_cast<double>(f);
    };
  if (dtype == "float64")
    return [](const std::byte* d, size_t i) {
      double x;
      std::memcpy(&x, d + i * 8, 8);
      return x;
    };
  if (dtype == "float16")
    return [](const std::byte* d, size_t i) {
      uint16_t bits;
      std::memcpy(&bits, d + i * 2, 2);
      return static_cast<double>(float16_to_float(bits));
    };
  if (dtype == "bfloat16")
    return [](const std::byte* d, size_t i) {
      uint16_t bits;
      std::memcpy(&bits, d + i * 2, 2);
      return static_cast<double>(bfloat16_to_float(bits));
    };
  return nullptr;
}

}  // namespace tessera::engine
