# Compiler flags shared by every target of the project: warnings, sanitizers, the CPU baseline.
add_library(longnet_flags INTERFACE)
target_compile_options(longnet_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wconversion -Wno-sign-conversion -Wimplicit-fallthrough>)
if(LONGNET_WERROR)
  target_compile_options(longnet_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()

if(LONGNET_SANITIZE AND LONGNET_TSAN)
  message(FATAL_ERROR "LONGNET_SANITIZE (ASan+UBSan) and LONGNET_TSAN cannot be combined: build them apart")
endif()
if(LONGNET_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
elseif(LONGNET_TSAN)
  set(_san -fsanitize=thread)
endif()
if(_san)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX,C>:${_san}>")
  add_link_options(${_san})
endif()

# SIMD kernels are compiled for AVX2+FMA (and AVX-512) in their own translation units and chosen at run time
# (see kernels/cpu/cpu_features.h); everything else keeps the distribution's baseline.
set(LONGNET_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(LONGNET_AVX512_FLAGS -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma -mf16c)
