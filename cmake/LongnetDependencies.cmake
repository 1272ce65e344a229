# Every dependency comes from Debian's packages (tools/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(LONGNET_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas-pthread openblas
  PATHS /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu REQUIRED)
add_library(longnet_blas INTERFACE)
target_include_directories(longnet_blas SYSTEM INTERFACE ${LONGNET_CBLAS_INCLUDE_DIR})
target_link_libraries(longnet_blas INTERFACE ${BLAS_LIBRARIES})

find_package(absl REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)  # config.json and safetensors headers
find_package(Protobuf REQUIRED)
# Debian's gRPC ships pkg-config files and the C++ plugin as a separate binary.
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++)
find_program(LONGNET_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_program(LONGNET_GRPC_PYTHON_PLUGIN grpc_python_plugin REQUIRED)
# Server reflection (v1alpha in Debian's gRPC) lives in its own library.
find_library(LONGNET_GRPCPP_REFLECTION grpc++_reflection REQUIRED)
# grpc.health.v1's proto for clients and tests (the server side is built into grpc++).
find_path(LONGNET_GRPC_PROTO_DIR grpc/health/v1/health.proto PATHS /usr/share/grpc-proto REQUIRED)
find_package(spdlog REQUIRED)
find_package(prometheus-cpp REQUIRED)
# The tiktoken pre-tokenizer regex needs Unicode properties and lookahead (std::regex has neither).
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

if(LONGNET_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(LONGNET_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
