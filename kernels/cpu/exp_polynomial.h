#pragma once

// The constants of the vector e^x of every SIMD path: x = n ln2 + r with n = round(x / ln2) and
// |r| <= ln2 / 2, then e^r by a degree-6 polynomial fit (2e-9 relative) and e^x = 2^n e^r.
namespace longnet::kernels::cpu::exp_polynomial {

inline constexpr float kLog2e = 1.4426950216293335f;
inline constexpr float kLn2Hi = 0.693145751953125f;  // 15 significant bits: n * kLn2Hi is exact
inline constexpr float kLn2Lo = 1.428606765330187e-06f;
// e^r ~ ((((((c6 r + c5) r + c4) r + c3) r + c2) r + c1) r + c0
inline constexpr float kC6 = 0.0013941108481958508f;
inline constexpr float kC5 = 0.00837512593716383f;
inline constexpr float kC4 = 0.04166635125875473f;
inline constexpr float kC3 = 0.16666415333747864f;
inline constexpr float kC2 = 0.5f;
inline constexpr float kC1 = 1.0f;
inline constexpr float kC0 = 1.0f;

}  // namespace longnet::kernels::cpu::exp_polynomial
